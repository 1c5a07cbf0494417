"""`score_candidates` end to end on a toy cohort: rows, ranking, reference row, outputs, parallelism."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import OPEReport
from clinical_mborl.report.audit_log import read_entries, verify_log
from clinical_mborl.scoring import (
    SCORES_CSV,
    SCORES_HTML,
    ScoreRow,
    ScoreTable,
    ScoringConfig,
    score_candidates,
    score_columns,
)

from .conftest import FAST_OPE, Toy


def _specs(toy: Toy) -> list[str]:
    return ["no-treatment", "clinician", str(toy.morel), str(toy.protocol), "random",
            str(toy.root / "no_such_run")]


@pytest.fixture(scope="module")
def scored(toy: Toy, tmp_path_factory: pytest.TempPathFactory) -> tuple[ScoreTable, Path]:
    out = tmp_path_factory.mktemp("serial")
    return score_candidates(_specs(toy), toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=1),
                            out, progress=False), out


def _row(table: ScoreTable, name: str) -> ScoreRow:
    return next(r for r in table.rows if r.candidate == name)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_every_candidate_gets_a_row_and_a_bad_path_an_error_row(scored: tuple[ScoreTable, Path]) -> None:
    table, _ = scored
    assert sorted(r.candidate for r in table.rows) == sorted(
        ["no-treatment", "clinician", "morel_run", "map_protocol", "random", "no_such_run"])
    bad = _row(table, "no_such_run")
    assert bad.status == "error" and bad.rank is None and table.rows[-1] is bad
    assert "expected a policy artifact folder" in bad.reasons[0] and bad.estimates == []
    assert table.n_scored == 5
    assert {r.status for r in table.rows if r is not bad} <= {"pass", "fail", "inconclusive"}
    assert {r.kind for r in table.rows} == {"named", "artifact", "protocol", "unknown"}


def test_rows_are_ranked_by_the_primary_lower_bound_then_the_difference(scored: tuple[ScoreTable, Path]) -> None:
    table, _ = scored
    primary = table.primary_estimator
    keys = [(e.diff_lower_bound, e.diff) for r in table.rows if r.status != "error"
            for e in [r.estimate(primary)] if e is not None]
    assert len(keys) == table.n_scored and all(lb is not None for lb, _ in keys)
    assert keys == sorted(keys, key=lambda k: (-k[0], -k[1]))  # type: ignore[operator]
    assert [r.rank for r in table.rows] == [1, 2, 3, 4, 5, None]


def test_the_clinician_scores_a_paired_difference_of_exactly_zero(scored: tuple[ScoreTable, Path]) -> None:
    table, out = scored
    row = _row(table, "clinician")
    for e in row.estimates:
        if e.skipped is None:
            assert (e.diff, e.diff_ci_low, e.diff_ci_high, e.diff_lower_bound) == (0.0, 0.0, 0.0, 0.0)
    assert row.estimate("wis").value == pytest.approx(row.clinician_value, abs=1e-12)  # type: ignore[union-attr]
    assert any("margin (wdr): fail" in r for r in row.reasons)  # 0 does not clear a margin of 0
    cells = next(c for c in _csv_rows(out / SCORES_CSV) if c["candidate"] == "clinician")
    assert cells["wdr_diff"] == "0.0" and cells["wdr_diff_lower_bound"] == "0.0"


def test_the_other_candidates_carry_nonzero_differences_and_measurements(scored: tuple[ScoreTable, Path]) -> None:
    table, _ = scored
    no_treat = _row(table, "no-treatment")
    assert no_treat.estimate("wdr").diff != 0.0  # type: ignore[union-attr]
    assert no_treat.agreement is not None and 0.0 <= no_treat.agreement <= 1.0
    assert no_treat.agreement == pytest.approx(no_treat.mean_prob_logged)  # one-hot policy
    assert no_treat.out_of_support_rate is not None and no_treat.ess is not None and no_treat.ess >= 1.0
    assert no_treat.halt_rate is None and any("not a MOReL artifact" in n for n in no_treat.notes)
    morel = _row(table, "morel_run")
    assert morel.halt_rate is not None and 0.0 <= morel.halt_rate <= 1.0


def test_every_candidate_uses_the_same_resamples(scored: tuple[ScoreTable, Path]) -> None:
    _, out = scored
    files = sorted((out / "ope").glob("*/ope.json"))
    assert [f.parent.name for f in files] == ["01_no-treatment", "02_clinician", "03_morel_run",
                                              "04_map_protocol", "05_random"]
    reports = [OPEReport.model_validate_json(f.read_text()) for f in files]
    clinician = {(r.clinician.value, r.clinician.ci_low, r.clinician.ci_high) for r in reports}
    assert len(clinician) == 1  # identical bootstrap interval of the reference: one resample plan
    assert {r.settings.seed for r in reports} == {FAST_OPE.seed}


def test_a_projected_estimate_is_named_in_its_rows_notes(scored: tuple[ScoreTable, Path]) -> None:
    table, out = scored
    projected = {}
    for f in sorted((out / "ope").glob("*/ope.json")):
        report = OPEReport.model_validate_json(f.read_text())
        projected[f.parent.name.split("_", 1)[1]] = {e.estimator for e in report.estimates if e.value_projected}
    for row in table.rows:
        if row.status == "error":
            continue
        noted = {n.split(":")[0] for n in row.notes if "projected onto it" in n}
        assert noted == projected[row.candidate], row.candidate


def test_a_precomputed_report_is_reused_and_gives_the_same_row(scored: tuple[ScoreTable, Path], toy: Toy,
                                                                 tmp_path: Path) -> None:
    serial, out = scored
    morel = OPEReport.model_validate_json((out / "ope" / "03_morel_run" / "ope.json").read_text())
    specs = [str(toy.morel), "clinician"]
    reused = score_candidates(specs, toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=1),
                              tmp_path / "a", progress=False, reports={str(toy.morel): morel})
    assert _row(reused, "morel_run").model_copy(update={"rank": None}) == \
        _row(serial, "morel_run").model_copy(update={"rank": None})
    # the report is what the row shows: not evaluated again
    fqe = morel.estimate("fqe").model_copy(update={"value": 0.123})
    marked = morel.model_copy(update={"estimates": [fqe if e.estimator == "fqe" else e for e in morel.estimates]})
    table = score_candidates(specs, toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=1),
                             tmp_path / "b", progress=False, reports={str(toy.morel): marked})
    assert _row(table, "morel_run").estimate("fqe").value == 0.123  # type: ignore[union-attr]
    other = morel.model_copy(update={"settings": morel.settings.model_copy(update={"seed": 99})})
    with pytest.raises(InputError, match="other settings"):
        score_candidates(specs, toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=1),
                         tmp_path / "c", progress=False, reports={str(toy.morel): other})
    with pytest.raises(InputError, match="not among the candidates"):
        score_candidates(["clinician"], toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=1),
                         tmp_path / "d", progress=False, reports={str(toy.morel): morel})


def test_csv_has_the_documented_columns(scored: tuple[ScoreTable, Path]) -> None:
    table, out = scored
    rows = _csv_rows(out / SCORES_CSV)
    assert list(rows[0]) == score_columns(FAST_OPE.estimators)
    assert [r["candidate"] for r in rows] == [r.candidate for r in table.rows]
    assert rows[-1]["status"] == "error" and rows[-1]["rank"] == "" and rows[-1]["wdr_value"] == ""


def test_html_is_self_contained_and_lists_every_candidate(scored: tuple[ScoreTable, Path], toy: Toy) -> None:
    table, out = scored
    html = (out / SCORES_HTML).read_text()
    assert not re.search(r"https?://", html, flags=re.IGNORECASE)
    assert "<script" not in html and "<link" not in html
    for r in table.rows:
        assert f"{r.candidate} <span" in html
    stays = set(toy.transitions.frame["stay_id"].to_list()) | set(toy.transitions.frame["patient_key"].to_list())
    assert not [s for s in stays if s in html]


def test_gate_decisions_are_appended_to_a_valid_audit_log(scored: tuple[ScoreTable, Path]) -> None:
    table, out = scored
    log = out / "audit_log.jsonl"
    assert verify_log(log).ok
    entries = read_entries(log)
    assert [e["payload"]["candidate"] for e in entries] == ["no-treatment", "clinician", "morel_run",
                                                            "map_protocol", "random"]
    by_name = {e["payload"]["candidate"]: e["payload"]["status"] for e in entries}
    assert by_name == {r.candidate: r.status for r in table.rows if r.status != "error"}


def test_an_explicit_full_gate_fails_on_missing_subgroup_evidence(toy: Toy, tmp_path: Path) -> None:
    from clinical_mborl.report.gate import GateConfig

    cfg = ScoringConfig(ope=FAST_OPE, gate=GateConfig(), jobs=1)
    table = score_candidates(["random"], toy.transitions, toy.behavior, None, cfg, tmp_path, progress=False)
    row = table.rows[0]
    assert row.status == "fail" and any("subgroups (sex): fail" in r for r in row.reasons)
    assert any("explanation sanity: fail" in r for r in row.reasons)
    assert any("model_based skipped" in n for n in row.notes)  # no dynamics given


def test_a_config_whose_gate_estimators_are_not_run_is_refused(toy: Toy, tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="primary estimators"):
        ScoringConfig(ope=FAST_OPE.model_copy(update={"estimators": ("wis",)}))
    with pytest.raises(InputError, match="at least one candidate"):
        score_candidates([], toy.transitions, toy.behavior, None, toy.config(), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_parallel_run_equals_serial_run(scored: tuple[ScoreTable, Path], toy: Toy,
                                        tmp_path: Path) -> None:
    serial, serial_out = scored
    table = score_candidates(_specs(toy), toy.transitions, toy.behavior, toy.dynamics, toy.config(jobs=2),
                             tmp_path, progress=False)
    assert table.rows == serial.rows  # the configs differ only in `jobs`
    for name in (SCORES_CSV, SCORES_HTML):
        assert (tmp_path / name).read_bytes() == (serial_out / name).read_bytes()
    for f in sorted((serial_out / "ope").glob("*/ope.json")):
        assert json.loads((tmp_path / "ope" / f.parent.name / "ope.json").read_text()) == json.loads(f.read_text())


def test_sensitivity_columns_nest_around_fqe_and_skip_the_reference_difference(toy: Toy, tmp_path: Path) -> None:
    ope = FAST_OPE.model_copy(update={"estimators": ("wis", "wdr", "fqe"), "sensitivity_lambdas": (1.5, 1.2)})
    table = score_candidates(["no-treatment", "clinician"], toy.transitions, toy.behavior, None,
                             ScoringConfig(ope=ope, jobs=1), tmp_path, progress=False)
    assert table.estimators == ("wis", "wdr", "fqe", "fqe_msm1.2", "fqe_msm1.5")
    header = _csv_rows(tmp_path / SCORES_CSV)[0].keys()
    assert {"fqe_msm1.2_ci_low", "fqe_msm1.5_diff_lower_bound"} <= set(header)
    row = _row(table, "no-treatment")
    fqe, small, large = (row.estimate(n) for n in ("fqe", "fqe_msm1.2", "fqe_msm1.5"))
    assert fqe and small and large
    for inner, outer in ((fqe, small), (small, large)):  # nested in Lambda, FQE's interval innermost
        assert outer.ci_low <= inner.ci_low <= inner.ci_high <= outer.ci_high
        assert outer.diff_lower_bound <= inner.diff_lower_bound
    report = OPEReport.model_validate_json((tmp_path / "ope" / "01_no-treatment" / "ope.json").read_text())
    raw = next(b for b in report.sensitivity if b.lam == 1.2)
    assert small.ci_low == min(fqe.ci_low, raw.lower.ci_low)  # the raw bound, hulled with FQE's
    clinician = _row(table, "clinician").estimate("fqe_msm1.5")
    assert clinician and clinician.ci_low is not None and clinician.diff is None and clinician.diff_lower_bound is None
