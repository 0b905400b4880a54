"""``python -m alife_nas`` is the ``alife-nas`` command."""
from alife_nas.cli import main

main()
