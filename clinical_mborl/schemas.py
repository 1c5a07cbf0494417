"""JSON Schemas exported from the pydantic contracts (checked against `schemas/` by a test).

>>> sorted(contract_schemas())[:2]  # doctest: +SKIP
['artifact_manifest', 'cohort_manifest']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clinical_mborl.cohort.manifest import CohortManifest
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.core.artifacts import ArtifactManifest
from clinical_mborl.core.io import atomic_write_text


def contract_schemas() -> dict[str, dict[str, Any]]:
    """Every published contract as {file stem: JSON Schema}."""
    from clinical_mborl.ehr.rows import ehr_json_schemas

    out: dict[str, dict[str, Any]] = {f"ehr_{k}": v for k, v in ehr_json_schemas().items()}
    out["cohort_spec"] = CohortSpec.model_json_schema()
    out["cohort_manifest"] = CohortManifest.model_json_schema()
    out["artifact_manifest"] = ArtifactManifest.model_json_schema()
    return out


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export_schemas(out_dir: str | Path) -> list[Path]:
    """Write one `<name>.schema.json` per contract into `out_dir` (atomically each)."""
    out_dir = Path(out_dir)
    written = []
    for name, schema in sorted(contract_schemas().items()):
        path = out_dir / f"{name}.schema.json"
        atomic_write_text(path, render_schema(schema))
        written.append(path)
    return written
