"""Repository checks: cohort specs load, JSON Schemas do not drift, import layers hold, README."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_mborl.cohort import load_cohort_spec
from clinical_mborl.schemas import contract_schemas, render_schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "cohorts").glob("*.yaml")), ids=lambda p: p.name)
def test_every_cohort_spec_loads_and_opens_with_its_clinical_definition(path):
    spec = load_cohort_spec(path)
    assert spec.description.strip() and spec.sources and spec.assumptions
    assert path.read_text().lstrip().startswith("#"), "each spec opens with its clinical definition"


def test_both_required_cohort_specs_exist():
    names = {p.stem for p in (ROOT / "cohorts").glob("*.yaml")}
    assert {"sepsis_fluids_vasopressors", "sepsis_continuous"} <= names
    discrete = load_cohort_spec(ROOT / "cohorts" / "sepsis_fluids_vasopressors.yaml")
    assert discrete.time.step_hours == 4 and discrete.gamma == 0.99
    assert [a.levels for a in discrete.actions] == [5, 5]
    assert load_cohort_spec(ROOT / "cohorts" / "sepsis_continuous.yaml").action_kind == "continuous"


def test_exported_schemas_match_the_contracts():
    committed = {p.name.removesuffix(".schema.json"): p.read_text() for p in (ROOT / "schemas").glob("*.schema.json")}
    current = {name: render_schema(schema) for name, schema in contract_schemas().items()}
    assert set(committed) == set(current), "run `make schemas` and commit schemas/"
    drifted = [name for name in current if committed[name] != current[name]]
    assert not drifted, f"schemas drifted from the pydantic contracts: {drifted}; run `make schemas`"
    for text in committed.values():
        json.loads(text)


def test_import_layers_hold():
    # import-linter is a dev extra: `make test` installs it (and runs lint-imports itself after
    # pytest); an environment without it (e.g. a GPU image with the runtime packages) skips here.
    pytest.importorskip("importlinter", reason="import-linter (the dev extra) is not installed")
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    res = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_readme_opens_with_the_two_commands_and_makefile_has_them():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    assert "make demo" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo:", "test:", "install:"):
        assert re.search(rf"^{target}", makefile, re.M), target
    assert "torch==2.13.0" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_lists_every_contract_command():
    from typer.testing import CliRunner

    from clinical_mborl.cli import app

    out = CliRunner().invoke(app, ["--help"]).output
    for command in ("simulate", "cohort", "train", "evaluate", "explain", "report", "score", "recommend",
                    "ground-truth", "demo", "schemas", "study"):
        assert command in out, command
