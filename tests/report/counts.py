"""Find every published count in report.json via the `x-count` marker of the AuditReport schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from clinical_mborl.report.model import AuditReport

SCHEMA = AuditReport.model_json_schema()
DEFS = SCHEMA.get("$defs", {})
COUNT_SPAN = re.compile(r'<span class="count">([^<]*)</span>')


def _resolve(s: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in s:
        s = DEFS[s["$ref"].split("/")[-1]]
    return s


def _is_count(s: dict[str, Any]) -> bool:
    s = _resolve(s)
    return bool(s.get("x-count"))


def count_values(data: Any, schema: dict[str, Any] | None = None, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) for every field typed `Count` in a report.json document."""
    s = _resolve(schema or SCHEMA)
    if data is None:
        return
    if _is_count(s):
        yield path, data
        return
    for branch in s.get("anyOf", []):
        b = _resolve(branch)
        if _is_count(b) and (isinstance(data, int) or data in ("<11", "*")):
            yield path, data
            return
        if b.get("type") == "object" and isinstance(data, dict) or b.get("type") == "array" and isinstance(data, list):
            yield from count_values(data, b, path)
            return
    if isinstance(data, dict):
        props = s.get("properties", {})
        extra = s.get("additionalProperties")
        for k, v in data.items():
            sub = props.get(k) or (extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from count_values(v, sub, f"{path}.{k}")
    elif isinstance(data, list) and isinstance(s.get("items"), dict):
        for i, v in enumerate(data):
            yield from count_values(v, s["items"], f"{path}[{i}]")


def free_ints(data: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Every int inside the free-form metric and diagnostic dicts."""
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{path}.{k}"
            if k in ("metrics", "diagnostics") and isinstance(v, dict):
                yield from ((q, x) for q, x in _ints(v, p))
            else:
                yield from free_ints(v, p)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from free_ints(v, f"{path}[{i}]")


def _ints(data: Any, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(data, bool):
        return
    if isinstance(data, int):
        yield path, data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from _ints(v, f"{path}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _ints(v, f"{path}[{i}]")


def small(values: Iterator[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(p, v) for p, v in values if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10]


def html_count_cells(html: str) -> list[str]:
    return COUNT_SPAN.findall(html)
