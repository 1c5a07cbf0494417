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


def parse_names(text: str, option: str) -> tuple[str, ...]:
    """`--split` 'train,test' -> ('train', 'test'); refuses an empty list, naming the option."""
    from clinical_mborl.core.errors import InputError

    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise InputError(f"{option}: expected comma-separated names, got '{text}'.")
    return names


def parse_lambdas(text: str) -> tuple[float, ...]:
    """`--sensitivity` '1.1,1.25' -> (1.1, 1.25); '' -> () (the range check is OPEConfig's)."""
    from clinical_mborl.core.errors import InputError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--sensitivity: expected comma-separated numbers, got '{text}'") from None
