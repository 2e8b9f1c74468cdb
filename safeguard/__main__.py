"""`python -m safeguard ...`: the same command line as the `safeguard` console script."""

from safeguard.cli import main

main()
