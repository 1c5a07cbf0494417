"""The built report: suppression everywhere, no identifiers, every section, typed inputs."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_mborl.core.errors import ClinicalMBORLError, InputError
from clinical_mborl.report.build import build_audit_report
from clinical_mborl.report.model import SECTIONS, AuditReport
from clinical_mborl.report.render import render_html, write_report
from clinical_mborl.report.suppress import COMPLEMENT, SUPPRESSED, flow_relations

from .counts import count_values, free_ints, html_count_cells, small
from .factory import SENTINEL_PATIENT, SENTINEL_STAY, manifest_with_counts, subgroups

NON_COUNT_INTS = {"schema_version", "level", "seed", "n_steps", "horizon", "n_repeats", "ig_steps", "ig_max_steps",
                  "n_baselines", "gradient_shap_samples", "shapley_samples", "sanity_rows", "sanity_repeats",
                  "max_rows", "top_k", "min_subgroup_size", "row", "seeds"}


def _non_count_int_fields(schema, defs, out, name=""):
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
        if id(schema) in out["seen"]:
            return
        out["seen"].add(id(schema))
    if schema.get("x-count"):
        return
    if schema.get("type") == "integer":
        out["names"].add(name)
    for k, v in schema.get("properties", {}).items():
        _non_count_int_fields(v, defs, out, k)
    for key in ("anyOf", "allOf", "oneOf"):
        for v in schema.get(key, []):
            _non_count_int_fields(v, defs, out, name)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _non_count_int_fields(schema[key], defs, out, name)


def test_every_integer_field_is_a_count_or_known_not_to_be():
    schema = AuditReport.model_json_schema()
    out = {"names": set(), "seen": set()}
    _non_count_int_fields(schema, schema["$defs"], out)
    assert out["names"] <= NON_COUNT_INTS, out["names"] - NON_COUNT_INTS


def test_toy_report_suppresses_counts_and_keeps_decision(workspace):
    _, _, _, inputs = workspace
    r = build_audit_report(inputs)
    data = json.loads(r.model_dump_json())
    found = list(count_values(data))
    assert len(found) > 40
    assert small(iter(found)) == [] and small(free_ints(data)) == []
    assert any(v == SUPPRESSED for _, v in found)
    assert data["ope"][0]["diagnostics"]["n_clipped"] == SUPPRESSED
    assert data["gate"]["status"] == "pass" and data["gate"]["checks"]
    assert [c.label for c in r.trajectories] == ["Case A", "Case B"]


def test_flow_is_complementarily_suppressed(workspace):
    _, _, _, inputs = workspace  # flow removes 3 then 25 stays
    flow = build_audit_report(inputs).cohort_flow
    cells = [flow.stays_in] + [c for s in flow.steps for c in (s.removed, s.remaining)]
    assert flow.steps[0].removed == SUPPRESSED
    hidden = sum(c in (SUPPRESSED, COMPLEMENT) for c in cells)
    assert hidden >= 2


def test_no_identifier_anywhere(workspace, tmp_path):
    ts, _, _, inputs = workspace
    ids = ts.frame["stay_id"].to_list() + ts.frame["patient_key"].to_list()
    paths = write_report(build_audit_report(inputs), tmp_path / "r", identifiers=ids, figures=False)
    text = paths.json.read_text() + paths.html.read_text()
    assert "SENTINEL" not in text
    assert all(i not in text for i in ids)


def test_an_identifier_smuggled_into_an_input_refuses_the_write(workspace, tmp_path):
    ts, _, _, inputs = workspace
    sentinel = SENTINEL_STAY.format(3)
    assert sentinel in ts.frame["stay_id"].to_list()
    bad = inputs.model_copy(update={"limitations": [f"see stay {sentinel}"]})
    with pytest.raises(ClinicalMBORLError, match="identifier"):
        write_report(build_audit_report(bad), tmp_path / "r", identifiers=ts.frame["stay_id"].to_list(), figures=False)
    assert not (tmp_path / "r" / "report.json").exists()
    patient = SENTINEL_PATIENT.format(5)
    bad = inputs.model_copy(update={"policy_description": f"tuned on {patient}"})
    with pytest.raises(ClinicalMBORLError):
        write_report(build_audit_report(bad), tmp_path / "r", identifiers=ts.frame["patient_key"].to_list(), figures=False)


def test_inconsistent_flow_is_rejected(workspace):
    _, _, _, inputs = workspace
    m = inputs.cohort
    broken = m.model_copy(update={"exclusion_flow": [m.exclusion_flow[0].model_copy(update={"stays_remaining": 1})]})
    with pytest.raises(InputError, match="does not add up"):
        build_audit_report(inputs.model_copy(update={"cohort": broken}))


small_or_zero = st.integers(0, 14)


@st.composite
def small_cohorts(draw):
    counts = {}
    for s in ("train", "val", "test"):
        patients = draw(small_or_zero)
        stays = patients + draw(st.integers(0, 3))
        counts[s] = (patients, stays, stays * draw(st.integers(1, 4)), draw(st.integers(0, stays)))
    removed = tuple(draw(st.lists(st.integers(0, 14), min_size=1, max_size=4)))
    n_test = counts["test"][0]
    f = draw(st.integers(0, n_test))
    sizes = {"sex": {"F": f, "M": n_test - f}, "severity": {"low": draw(small_or_zero), "high": draw(small_or_zero)}}
    n_steps = draw(st.integers(0, 30))

    def split_into(levels):
        cuts = sorted(draw(st.lists(st.integers(0, n_steps), min_size=levels - 1, max_size=levels - 1)))
        return [b - a for a, b in zip([0, *cuts], [*cuts, n_steps], strict=True)]

    doses = {"n_steps": n_steps, "clinician": [split_into(3), split_into(3)], "policy": [split_into(3), split_into(3)],
             "exact": draw(st.integers(0, n_steps)), "within": draw(st.integers(0, n_steps))}
    return counts, removed, sizes, [draw(small_or_zero) for _ in range(4)], draw(small_or_zero), doses


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(small_cohorts())
def test_no_small_count_survives_in_json_or_html(workspace, case):
    _, _, _, inputs = workspace
    counts, removed, sizes, bins, n_clipped, doses = case
    manifest = manifest_with_counts(inputs.cohort, counts, removed)
    cal = inputs.calibration.model_copy(update={"bins": [b.model_copy(update={"n": n}) for b, n in zip(inputs.calibration.bins, bins, strict=True)],
                                                "metrics": {"n": sum(bins), "brier": 0.2}})
    ope = [e.model_copy(update={"n_patients": counts["test"][0], "diagnostics": {"n_clipped": n_clipped}}) for e in inputs.ope]
    dims = [d.model_copy(update={"clinician_counts": c, "policy_counts": p})
            for d, c, p in zip(inputs.doses.dimensions, doses["clinician"], doses["policy"], strict=True)]
    dose_in = inputs.doses.model_copy(update={"dimensions": dims, "n_steps": doses["n_steps"],
                                              "n_exact_agreement": doses["exact"], "n_within_one_level": doses["within"]})
    inp = inputs.model_copy(update={"cohort": manifest, "calibration": cal, "ope": ope, "subgroups": subgroups(sizes),
                                    "doses": dose_in})
    report = build_audit_report(inp)
    data = json.loads(report.model_dump_json())
    assert small(count_values(data)) == []
    assert small(free_ints(data)) == []
    html = render_html(report, figures=False)
    assert not [c for c in html_count_cells(html) if c.strip().isdigit() and 1 <= int(c) <= 10]
    # flow: no suppressed step can be recomputed from the published cells
    flow = report.cohort_flow
    published = {"flow.0.remaining": flow.stays_in}
    for i, s in enumerate(flow.steps, start=1):
        published[f"flow.{i}.removed"], published[f"flow.{i}.remaining"] = s.removed, s.remaining
    for rel in flow_relations(len(flow.steps)):
        assert sum(not isinstance(published[k], int) for k in rel) != 1
    # a published percentage never sits next to a suppressed numerator or denominator
    for row in report.splits:
        if row.mortality_pct is not None:
            assert isinstance(row.deaths, int) and isinstance(row.stays, int)
    for d in report.doses:
        if d.clinician_pct is not None:
            assert isinstance(d.clinician, int) and isinstance(report.agreement.n_steps, int)
    if report.agreement.exact_pct is not None:  # shown agreement: its complement is not small
        assert not 1 <= doses["n_steps"] - doses["exact"] <= 10


def test_sections_in_order(workspace):
    _, _, _, inputs = workspace
    r = build_audit_report(inputs)
    assert [s.anchor for s in r.sections] == [a for a, _, _ in SECTIONS]
    assert Path(__file__).exists()


def test_the_cohort_within_step_decision_share_becomes_a_limitation(workspace):
    from clinical_mborl.cohort.manifest import ActionTiming
    from clinical_mborl.report.text import STANDARD_LIMITATIONS

    _, _, _, inputs = workspace
    dims = [d.name for d in inputs.cohort.action_space.dimensions]

    def report_limitations(shares: list[tuple[int, float]]) -> list[str]:
        timing = [ActionTiming(dimension=d, orders=n, share_after_first_hour=s)
                  for d, (n, s) in zip(dims, shares, strict=False)]
        changed = inputs.model_copy(update={"cohort": inputs.cohort.model_copy(update={"action_timing": timing})})
        return build_audit_report(changed).limitations

    quiet = report_limitations([(500, 0.0), (500, 0.05)])
    assert quiet[:len(STANDARD_LIMITATIONS)] == list(STANDARD_LIMITATIONS)
    marker = "Decisions inside the decision step:"
    assert not any(t.startswith(marker) for t in quiet)
    assert not any(t.startswith(marker) for t in report_limitations([(10, 0.9)]))  # too few orders
    loud = [t for t in report_limitations([(500, 0.55), (500, 0.72)]) if t.startswith(marker)]
    assert len(loud) == 1 and f"55% of the {dims[0]} orders" in loud[0] and f"72% of the {dims[1]}" in loud[0]


def test_fqe_budget_limitation_states_the_budget_against_the_studied_one():
    from clinical_mborl.report.text import STUDIED_FQE_STEPS, fqe_budget_limitation

    assert fqe_budget_limitation(None) is None
    inside = fqe_budget_limitation(STUDIED_FQE_STEPS[0])
    assert inside is not None and "the budget the simulation studies measured" in inside
    for steps in (STUDIED_FQE_STEPS[0] - 1, STUDIED_FQE_STEPS[1] + 1, 400):
        text = fqe_budget_limitation(steps)
        assert text is not None and f"took {steps} Adam steps (outside" in text


def test_fqe_prior_limitation_appears_only_with_priors():
    from clinical_mborl.report.text import fqe_prior_limitation

    assert fqe_prior_limitation(0.0) is None
    text = fqe_prior_limitation(0.3)
    assert text is not None and "spread 0.3 in reward units, at every dose" in text and "lowered every FQE value" in text
    masked = fqe_prior_limitation(0.3, "off_support")
    assert masked is not None and "at doses outside the clinicians' support" in masked
    assert "nearly twofold" in masked and "lowered every FQE value" not in masked
