"""``python -m cell`` is the ``intern`` command."""

from cell.cli import main

main()
