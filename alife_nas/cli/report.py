"""``report`` and ``serve``: look at runs in a browser, as a file written once or a live page."""
from __future__ import annotations

import errno
from pathlib import Path

import click

from alife_nas.cli._common import UserError, user_errors
from alife_nas.cli._group import main

#: ``serve``'s port when none is given (0 would change the URL every time).
DEFAULT_PORT = 8765


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(), default=None,
              help="Folder for index.html.  [default: RUN_DIR/report for one run; required for several]")
def report(run_dirs: tuple[str, ...], out: str | None) -> None:
    """Write one self-contained web page (DIR/index.html; works offline, from disk) of RUN_DIRS: settings,
    best so far, the lattice per step, the top architectures with the command that re-trains each, size
    against fitness with the Pareto front, validation curves, the lineage of the best, the failures.
    Several runs: one page comparing them, then each run."""
    from alife_nas.report import REPORT_DIR, report_target, write_report

    if out is None:
        if len(run_dirs) > 1:
            raise UserError("give --out DIR for a report of several runs")
        out = str(Path(run_dirs[0]) / REPORT_DIR)
    try:
        report_target(run_dirs, out)  # before any run is read
    except ValueError as exc:
        raise UserError(f"--out {exc}") from None
    with user_errors():
        path = write_report(run_dirs, out)
    click.echo(f"wrote {_shown(path)} (open it in a browser)")


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on; 0: any free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but the loopback lets other machines reach the page "
                   "(still only with the token).")
def serve(path: str, port: int, host: str) -> None:
    """Serve a live page of PATH (a run, or a folder whose subfolders are runs) until Ctrl-C.

    Read-only: the runs are read, never written. The page follows the runs as they go (every 2 s).
    Only a browser given the printed URL (it holds a random token) gets an answer.
    """
    from alife_nas.serve import find_runs, make_server

    if not Path(path).is_dir():
        raise UserError(f"{path} is not a folder: give a run directory or a folder of runs")
    try:
        server = make_server(path, host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use; give another with --port (0: any free one)") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    runs = find_runs(path)
    what = ", ".join(runs) if runs else "no run yet (runs that appear are shown)"
    click.echo(f"serving {path}: {what}")
    click.echo(f"open {server.url}")
    click.echo("Ctrl-C to stop")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


__all__ = ["report", "serve"]
