"""The one error every data set reader raises (:mod:`alife_nas.data`, :mod:`alife_nas.imagefolder`)."""
from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data set cannot be loaded; the one-line message says where and what was expected."""
