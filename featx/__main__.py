"""``python -m featx`` runs the command line."""

from featx.cli import main

main()
