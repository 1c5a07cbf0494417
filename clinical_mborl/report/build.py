"""`build_audit_report`: typed inputs -> the published `AuditReport`.

All counts of the whole report are registered in one `CountCells` table with the linear
relations that tie them (flow steps, split totals, deaths + survivors, dose levels per total,
agreement + disagreement, subgroup levels per split, ...), suppressed once by `suppress_counts`,
and only then read into the section models.
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clinical_mborl.core.errors import InputError
from clinical_mborl.report import text
from clinical_mborl.report.inputs import ReportInputs
from clinical_mborl.report.model import (
    SECTIONS,
    AgreementSection,
    AuditReport,
    CalibrationSection,
    CharacteristicRow,
    CohortFlow,
    DoseLevelRow,
    DynamicsSection,
    ExampleExplanation,
    ExplanationSection,
    FlowStep,
    Headline,
    MissingnessRow,
    ReportedBin,
    ReportedEstimate,
    ReportedSanity,
    ReportedSubgroup,
    Reproducibility,
    SectionInfo,
    SplitRow,
    SummaryCell,
    TrajectoryCase,
)
from clinical_mborl.report.suppress import (
    Cell,
    is_small,
    percent,
    sum_relation,
    suppress_counts,
    suppress_free_ints,
)

SPLIT_ORDER = ("train", "val", "test")
MEASURES = ("patients", "stays", "transitions", "deaths")
MAX_EXAMPLES = 5


class CountCells:
    """Every count of one report, its relations and its never-published (hidden) cells."""

    def __init__(self) -> None:
        self.counts: dict[Hashable, int] = {}
        self.relations: list[dict[Hashable, int]] = []
        self.hidden: set[Hashable] = set()
        self.cells: dict[Hashable, Cell] = {}

    def add(self, key: Hashable, n: int, hidden: bool = False) -> Hashable:
        if key in self.counts and self.counts[key] != int(n):
            raise InputError(f"report: count {key!r} registered twice with different values; inputs disagree.")
        self.counts[key] = int(n)
        if hidden:
            self.hidden.add(key)
        return key

    def relate_if_consistent(self, total: Hashable, parts: Sequence[Hashable]) -> bool:
        """Add `total = sum(parts)` when the numbers agree (inputs over other populations do not)."""
        if self.counts[total] != sum(self.counts[p] for p in parts):
            return False
        self.relations.append(sum_relation(total, parts))
        return True

    def resolve(self) -> None:
        self.cells = suppress_counts(self.counts, self.relations, self.hidden)

    def __getitem__(self, key: Hashable) -> Cell:
        return self.cells[key]


def _register_cohort(c: CountCells, inp: ReportInputs) -> list[str]:
    m = inp.cohort
    c.add("flow.0.remaining", m.stays_in)
    for i, step in enumerate(m.exclusion_flow, start=1):
        c.add(f"flow.{i}.removed", step.stays_removed)
        c.add(f"flow.{i}.remaining", step.stays_remaining)
        if not c.relate_if_consistent(f"flow.{i - 1}.remaining", [f"flow.{i}.removed", f"flow.{i}.remaining"]):
            raise InputError(f"report: exclusion flow step {i} does not add up (remaining before != removed + remaining); "
                             "rebuild the cohort.")
    splits = [s for s in SPLIT_ORDER if s in m.counts] + sorted(set(m.counts) - set(SPLIT_ORDER))
    for s in splits:
        sc = m.counts[s]
        for meas in MEASURES:
            c.add(f"split.{s}.{meas}", getattr(sc, meas))
        c.add(f"split.{s}.survivors", sc.stays - sc.deaths, hidden=True)
        c.relate_if_consistent(f"split.{s}.stays", [f"split.{s}.deaths", f"split.{s}.survivors"])
    for meas in (*MEASURES, "survivors"):
        total = sum(c.counts[f"split.{s}.{meas}"] for s in splits)
        c.add(f"split.total.{meas}", total, hidden=meas == "survivors")
        c.relate_if_consistent(f"split.total.{meas}", [f"split.{s}.{meas}" for s in splits])
    c.relate_if_consistent(f"flow.{len(m.exclusion_flow)}.remaining", ["split.total.stays"])
    return splits


def _register_rest(c: CountCells, inp: ReportInputs) -> None:
    if inp.calibration:
        for i, b in enumerate(inp.calibration.bins):
            events = round(b.observed * b.n)
            c.add(f"calib.{i}.n", b.n)
            c.add(f"calib.{i}.events", events, hidden=True)
            c.add(f"calib.{i}.nonevents", b.n - events, hidden=True)
            c.relate_if_consistent(f"calib.{i}.n", [f"calib.{i}.events", f"calib.{i}.nonevents"])
    if inp.doses:
        d = inp.doses
        c.add("agree.n_steps", d.n_steps)
        for name, n in (("exact", d.n_exact_agreement), ("within_one", d.n_within_one_level)):
            c.add(f"agree.{name}", n)
            c.add(f"agree.{name}.not", d.n_steps - n, hidden=True)
            c.relate_if_consistent("agree.n_steps", [f"agree.{name}", f"agree.{name}.not"])
        if f"split.{d.split}.transitions" in c.counts:
            c.relate_if_consistent(f"split.{d.split}.transitions", ["agree.n_steps"])
        for dim in d.dimensions:
            for who, counts in (("clinician", dim.clinician_counts), ("policy", dim.policy_counts)):
                keys = [c.add(f"dose.{dim.name}.{lvl}.{who}", n) for lvl, n in enumerate(counts)]
                if not c.relate_if_consistent("agree.n_steps", keys):
                    raise InputError(f"report: {who} dose counts of '{dim.name}' do not sum to n_steps.")
    for i, e in enumerate(inp.ope):
        c.add(f"ope.{i}.n_patients", e.n_patients)
        if f"split.{e.split}.patients" in c.counts:
            c.relate_if_consistent(f"split.{e.split}.patients", [f"ope.{i}.n_patients"])
    by_attr: dict[str, list[Hashable]] = {}
    for i, g in enumerate(inp.subgroups):
        by_attr.setdefault(g.attribute, []).append(c.add(f"subgroup.{i}.n", g.n_patients))
    for attr, keys in by_attr.items():
        total = f"split.{inp.subgroup_split}.patients"
        if total not in c.counts or not c.relate_if_consistent(total, list(keys)):
            hidden_total = c.add(f"subgroup.{attr}.total", sum(c.counts[k] for k in keys), hidden=True)
            c.relate_if_consistent(hidden_total, list(keys))
    if inp.explanation:
        c.add("explanation.n_rows", inp.explanation.n_rows)
        c.add("explanation.sanity_rows", inp.explanation.sanity.n_rows)


def _cohort_sections(c: CountCells, inp: ReportInputs, splits: list[str]) -> dict[str, Any]:
    m = inp.cohort
    steps = [FlowStep(reason=s.reason, removed=c[f"flow.{i}.removed"], remaining=c[f"flow.{i}.remaining"])
             for i, s in enumerate(m.exclusion_flow, start=1)]
    flow = CohortFlow(stays_in=c["flow.0.remaining"], steps=steps, final=c[f"flow.{len(steps)}.remaining"])
    rows = [SplitRow(split=s, **{k: c[f"split.{s}.{k}"] for k in MEASURES},
                     mortality_pct=percent(c[f"split.{s}.deaths"], c[f"split.{s}.stays"]))
            for s in [*splits, "total"]]
    small = {s for s in splits if is_small(m.counts[s].stays)}
    feats: dict[tuple[str, str], dict[str, SummaryCell | None]] = {}
    for f in inp.characteristics:
        cell = None if f.split in small or is_small(f.n_stays) else SummaryCell(
            mean=f.mean, sd=f.sd, median=f.median, q1=f.q1, q3=f.q3)
        feats.setdefault((f.feature, f.unit), {})[f.split] = cell
    chars = [CharacteristicRow(feature=k[0], unit=k[1], by_split=v) for k, v in feats.items()]
    n_trans = sum(sc.transitions for sc in m.counts.values())
    missing = []
    for name, frac in m.missingness.items():
        k = round(frac * n_trans)
        shown = not is_small(k) and not is_small(n_trans - k) and not is_small(n_trans)
        missing.append(MissingnessRow(feature=name, missing_pct=round(100 * frac, 1) if shown else None))
    return {"cohort_flow": flow, "splits": rows, "characteristics": chars, "missingness": missing}


def _model_sections(c: CountCells, inp: ReportInputs) -> dict[str, Any]:
    cal = None
    if inp.calibration:
        bins = []
        for i, b in enumerate(inp.calibration.bins):
            ok = all(not is_small(c.counts[f"calib.{i}.{k}"]) for k in ("events", "nonevents")) and isinstance(c[f"calib.{i}.n"], int)
            bins.append(ReportedBin(mean_predicted=b.mean_predicted, observed=b.observed if ok else None, n=c[f"calib.{i}.n"]))
        cal = CalibrationSection(metrics=suppress_free_ints(inp.calibration.metrics), bins=bins)
    dyn = None
    if inp.dynamics:
        d = inp.dynamics
        dyn = DynamicsSection(holdout_nll=d.holdout_nll, metrics=suppress_free_ints(d.metrics),
                              coverage=d.coverage, horizon_error=d.horizon_error)
    doses, agreement = [], None
    if inp.doses:
        total = c["agree.n_steps"]
        for dim in inp.doses.dimensions:
            for lvl in range(len(dim.clinician_counts)):
                cl, po = c[f"dose.{dim.name}.{lvl}.clinician"], c[f"dose.{dim.name}.{lvl}.policy"]
                med = dim.median_dose[lvl] if dim.median_dose and lvl < len(dim.median_dose) else None
                doses.append(DoseLevelRow(dimension=dim.name, unit=dim.unit, level=lvl, median_dose=med, clinician=cl,
                                          policy=po, clinician_pct=percent(cl, total), policy_pct=percent(po, total)))
        agreement = AgreementSection(split=inp.doses.split, n_steps=total, exact=c["agree.exact"],
                                     exact_pct=percent(c["agree.exact"], total), within_one=c["agree.within_one"],
                                     within_one_pct=percent(c["agree.within_one"], total))
    return {"calibration": cal, "dynamics": dyn, "doses": doses, "agreement": agreement}


def _evaluation_sections(c: CountCells, inp: ReportInputs) -> dict[str, Any]:
    ope = [ReportedEstimate(**e.model_dump(exclude={"n_patients", "diagnostics"}), n_patients=c[f"ope.{i}.n_patients"],
                            diagnostics=suppress_free_ints(e.diagnostics)) for i, e in enumerate(inp.ope)]
    status = {ch.name: ch.status for ch in inp.gate.checks}
    subgroups = [ReportedSubgroup(**g.model_dump(exclude={"n_patients"}), n_patients=c[f"subgroup.{i}.n"],
                                  gate_status=status.get(f"subgroup {g.attribute}={g.level}"))
                 for i, g in enumerate(inp.subgroups)]
    expl = None
    if inp.explanation:
        e = inp.explanation
        expl = ExplanationSection(
            target=e.target, n_rows=c["explanation.n_rows"], grouped_method=e.grouped_method, groups=e.groups,
            completeness=e.completeness, passed=e.passed,
            sanity=ReportedSanity(**e.sanity.model_dump(exclude={"n_rows"}), n_rows=c["explanation.sanity_rows"]), global_importance=e.global_importance,
            method_agreement_spearman=e.method_agreement_spearman,
            examples=[ExampleExplanation(label=f"State {k + 1}", contrast=r.contrast, top=r.top)
                      for k, r in enumerate(e.rows[:MAX_EXAMPLES])])
    labels = _case_labels(len(inp.trajectories))
    cases = [TrajectoryCase(label=lab, reason=t.reason, note=t.note, outcome=t.outcome, steps=t.steps)
             for lab, t in zip(labels, inp.trajectories, strict=True)]
    return {"ope": ope, "subgroups": subgroups, "explanation": expl, "trajectories": cases}


def _case_labels(n: int) -> list[str]:
    """"Case A", ..., "Case Z", "Case AA", ...: order of the inputs, nothing derived from the stay."""
    letters = string.ascii_uppercase
    out = []
    for i in range(n):
        label, k = "", i
        while True:
            label = letters[k % 26] + label
            k = k // 26 - 1
            if k < 0:
                break
        out.append(f"Case {label}")
    return out


def _headline(inp: ReportInputs, ope: list[ReportedEstimate]) -> Headline:
    primary = inp.gate.config.primary_estimators[0]
    diff = next((e for e in ope if e.target == "paired_difference" and e.estimator == primary), None)
    if diff is None:
        return Headline(status=inp.gate.status, passed=inp.gate.passed)
    return Headline(status=inp.gate.status, passed=inp.gate.passed, estimator=diff.estimator, difference=diff.value,
                    ci_low=diff.ci_low, ci_high=diff.ci_high, lower_bound=diff.lower_bound, n_patients=diff.n_patients)


def build_audit_report(inputs: ReportInputs, generated_at: str | None = None) -> AuditReport:
    """Suppress, pseudonymise and assemble every section of the audit report."""
    cells = CountCells()
    splits = _register_cohort(cells, inputs)
    _register_rest(cells, inputs)
    cells.resolve()
    parts: dict[str, Any] = {**_cohort_sections(cells, inputs, splits), **_model_sections(cells, inputs),
                             **_evaluation_sections(cells, inputs)}
    r = inputs.reproducibility
    repro = Reproducibility(policy=r.policy, cohort=r.cohort, spec_hash=inputs.cohort.spec_hash,
                            input_files=dict(inputs.cohort.input_files), configs=r.configs, seeds=r.seeds,
                            versions=r.versions, git_sha=r.git_sha, package_version=inputs.cohort.package_version,
                            commands=r.commands)
    totals: Mapping[str, Cell] = {k: cells[f"split.total.{k}"] for k in MEASURES}
    return AuditReport(
        title=inputs.title, generated_at=generated_at or datetime.now(UTC).isoformat(timespec="seconds"),
        policy_name=inputs.policy_name, algorithm=inputs.algorithm,
        sections=[SectionInfo(anchor=a, heading=h, tripod=t) for a, h, t in SECTIONS],
        headline=_headline(inputs, parts["ope"]), intended_use=inputs.intended_use, gate=inputs.gate,
        sensitivity=inputs.sensitivity, limitations=text.limitations(inputs), reproducibility=repro,
        model_card=text.model_card(inputs), data_sheet=text.data_sheet(inputs, totals), **parts,
    )
