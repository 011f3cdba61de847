"""``python -m chronik``: the command line (named ``chronik`` in its help and completion)."""

from chronik.cli import main

main(prog_name="chronik")
