"""The `clinical-mborl` command line: a thin typer layer over the library API.

Each command parses its options, calls one library function, writes, and exits
0 (success), 2 (bad input or refused: the message says what and how to fix) or 1 (internal error).
Command groups live in sibling modules and are registered in `app.py`.
"""

from clinical_mborl.cli.app import app, main

__all__ = ["app", "main"]
