"""Writing result files whole or not at all, and saying in one line why a file could not be used.

Pictures, exports, comparison reports and saved models all go through :func:`write_atomically`:
a full disk or a kill otherwise leaves a 0-byte or cut-off file that looks like a result.
:func:`describe_os_error` is the one wording of an environment failure (full disk, permission,
read-only folder) and :func:`environment_message` decides which errors are the machine's
state, for the CLI's one-line errors. Standard library and :func:`alife_nas.genome.one_line` only.
"""
from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from pathlib import Path
from typing import IO, Any, Callable, Union

from alife_nas.genome import one_line

__all__ = ["write_atomically", "describe_os_error", "environment_message", "ENVIRONMENT_ERRNOS", "HEATMAP_DPI",
           "FIGURE_DPI", "TOP_K"]

#: How many distinct architectures an export lists by default: the seed's top-15 table.
TOP_K = 15

#: Resolution (dots per inch) of the pictures: lattice heatmaps (their GIF frames stay small), and
#: the curves and comparison plots. Defaults of the commands and of the library's renderers alike.
HEATMAP_DPI = 110
FIGURE_DPI = 120

#: What to write: the bytes, the text (UTF-8), or a function writing into a binary file.
Content = Union[bytes, str, Callable[[IO[bytes]], Any]]

#: OSErrors that are the machine's state, not a bug: full disk, quota, size limit, permission,
#: read-only file system, missing folder, I/O error. The CLI makes them one line and exit 2.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
                                errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EIO, errno.ENAMETOOLONG})

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_FOLDER = {errno.ENOENT, errno.ENOTDIR}


def write_atomically(path: str | os.PathLike, content: Content) -> Path:
    """Write ``path`` through a temporary file beside it and one rename: afterwards ``path`` is the
    whole new file, or (on any failure, Ctrl-C included) exactly what it was before.

    The folder must exist (a missing one is an error naming ``path``, like any other). The rename
    replaces a symbolic link at ``path`` itself, never the file it points to. On failure the
    temporary file is removed and the OSError is raised again naming ``path``.
    """
    path = Path(path)
    # same folder, so the rename stays on one file system; a hidden name nobody takes for a result
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


def describe_os_error(exc: OSError, elsewhere: str = "another folder", writing: bool = True) -> str:
    """One line for a file that could not be written (or, ``writing=False``, used): which file,
    why, and what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _NO_SPACE:
        advice = f"free some disk space or write to {elsewhere}"
    elif exc.errno == errno.EFBIG:
        advice = f"raise the file size limit (ulimit -f) or write to {elsewhere}"
    elif exc.errno in _NOT_WRITABLE:
        advice = f"write to {elsewhere}, one you may write to" if writing else "check its permissions"
    elif exc.errno in _NO_FOLDER:
        advice = f"write to {elsewhere}, one that exists or can be created" if writing else "check the path"
    else:
        advice = f"write to {elsewhere}" if writing else "check the file and the disk"
    return one_line(f"{'cannot write ' if writing else ''}{where}: {reason}; {advice}", None)


def environment_message(exc: BaseException) -> str | None:
    """One line for a failure of the machine or of a run's database (full disk, permission,
    read-only folder, a damaged or locked database), or None when ``exc`` is a bug to show whole.

    SQLite's ProgrammingError and InterfaceError (a closed connection, a wrong statement) are
    mistakes in the code, never the user's, so they stay tracebacks.
    """
    if isinstance(exc, OSError):
        return describe_os_error(exc, writing=False) if exc.errno in ENVIRONMENT_ERRNOS else None
    if isinstance(exc, sqlite3.Error) and not isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return f"run database error: {one_line(exc)}"
    return None
