"""Subcommands of the ``n3f`` command line, one module per stage."""
