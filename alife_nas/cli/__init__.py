"""The ``alife-nas`` command: a thin click layer over the library.

Each group of subcommands lives in its own module and registers itself on :data:`main`.
"""
from __future__ import annotations

import click

from alife_nas import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100})
@click.version_option(__version__, prog_name="alife-nas")
def main() -> None:
    """Find CNN architectures by artificial-life evolution on a lattice (NeuralFinder).

    Start with `alife-nas evolve --out runs/first` (a small search on the bundled digits set).
    """


def _register() -> None:
    # Imported here so `alife_nas.cli.main` exists before the command modules attach to it.
    from alife_nas.cli import compare, pictures, run, train  # noqa: F401


_register()
