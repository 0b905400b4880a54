"""The ``alife-nas`` command: a thin click layer over the library.

:data:`main` (the group) lives in ``_group``; each group of subcommands lives in its own module
and registers itself on it when imported here.
"""
from __future__ import annotations

from alife_nas.cli import compare, pictures, report, run, train  # noqa: F401  (registers the commands)
from alife_nas.cli._group import main

__all__ = ["main"]
