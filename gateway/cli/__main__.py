"""`python -m gateway.cli`: the same as the `smsgw` command."""

from gateway.cli import main

main()
