"""`python -m portrait.cli`: the `portrait` command."""

from portrait.cli.app import main

main()
