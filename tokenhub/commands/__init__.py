"""The ``tokenhub`` subcommands, one module each.

A module defines ``register(subparsers)``, which adds its parser and sets ``handler`` (a
function taking the parsed arguments and returning an exit code). Add a new module to
``COMMANDS`` below to make it part of the CLI.
"""

COMMANDS = (
    "kafka",
    "simulate",
    "replay",
    "worker",
    "land",
    "rate",
    "sql",
    "ui",
    "demo",
    "bench",
)
