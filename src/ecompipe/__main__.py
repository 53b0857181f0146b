"""`python -m ecompipe` runs the CLI."""

from ecompipe.cli import main

main()
