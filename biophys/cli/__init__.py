"""Argument parsing of ``python -m biophys``'s subcommands, one module per subcommand group.

Each module defines ``register_cli(subparsers)`` and the command functions that turn parsed arguments into
calls of the library modules and their errors into one-line messages with exit status 2; nothing else lives
here. ``biophys/__main__.py`` assembles them.
"""
