"""Shared CLI plumbing: error-to-exit-code mapping and the --quiet switch."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from clinical_mborl.core.errors import ClinicalMBORLError

T = TypeVar("T")

QUIET = {"value": False}


def run_library_call(fn: Callable[[], T]) -> T:
    """Call `fn`; turn our errors into a message on stderr and the error's exit code."""
    try:
        return fn()
    except ClinicalMBORLError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=exc.exit_code) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def progress_enabled() -> bool:
    return not QUIET["value"]
