"""``python -m chronik``: the command line."""

from chronik.cli import main

main()
