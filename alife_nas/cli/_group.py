"""The ``alife-nas`` click group; the command modules register their commands on :data:`main`."""
from __future__ import annotations

import sqlite3
import sys
from typing import Any

import click

from alife_nas import __version__
from alife_nas.files import environment_message
from alife_nas.genome import one_line


class OneLineErrorGroup(click.Group):
    """A click group whose user errors, and environment failures that reach it (disk full, permission,
    read-only), are one line on stderr with exit code 2 (no usage block, no traceback)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"Error: {one_line(exc.format_message(), None)}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message(), None)}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except (OSError, sqlite3.Error) as exc:  # the machine's state (full disk, permissions), not a bug
            message = environment_message(exc)
            if message is None:
                raise
            click.echo(f"Error: {message}", err=True)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100})
@click.version_option(__version__, prog_name="alife-nas")
def main() -> None:
    """Find CNN architectures by artificial-life evolution on a lattice (NeuralFinder).

    Start with `alife-nas evolve --out runs/first` (a small search on the bundled digits set).
    """
