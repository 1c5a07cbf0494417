"""Markdown tables of a study result (`coverage.md`, `gate.md`).

>>> _num(None), _num(0.12345), _pct(0.951)
('—', '0.123', '95.1%')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clinical_mborl.simulators.sepsis.ground_truth import Z95
from clinical_mborl.studies.coverage import COVERAGE_RANGE, LOWER_BOUND_TARGET, SPEARMAN_TARGET
from clinical_mborl.studies.gate_summary import REFUSAL_TARGET
from clinical_mborl.studies.truth import paired_difference

if TYPE_CHECKING:
    from clinical_mborl.ope.fqe import FQEConfig


def _num(x: float | None, nd: int = 3) -> str:
    if x is None:
        return "—"
    return f"{x:.2e}" if abs(x) >= 1e4 else f"{x:.{nd}f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def _settings(result: Any) -> list[str]:
    c = result.config
    o = c.ope
    dyn = "none (model-based skipped)" if c.dynamics is None else (
        f"{c.dynamics.n_members} members / {c.dynamics.n_elites} elites, {list(c.dynamics.hidden_sizes)}, "
        f"<= {c.dynamics.max_epochs} epochs, {o.model_rollouts} rollouts per stay")
    t = result.timing
    ran = (f"{t.wall_seconds:.0f} s wall for this invocation ({t.replicates_run} replicates run); "
           if t.replicates_run else "summary recomputed from the saved replicates; ")
    projected = _num(None if t.projected_wall_seconds_r200 is None else t.projected_wall_seconds_r200 / 60, 1)
    return [
        f"- Data sets: R = {result.n_replicates} independent simulations of N = {c.patients} patients "
        f"(one stay each); {result.n_errors} refused by the pipeline. Evaluated (test split, share "
        f"{c.test_share}): {_num(result.mean_patients_evaluated, 1)} patients on average.",
        f"- Candidates: {', '.join(c.candidates)}. Learned ones trained once on {c.training_patients} separate "
        f"simulated patients ({c.learner_updates} updates).",
        f"- OPE: {', '.join(o.estimators)}; patient bootstrap B = {o.n_resamples}, {o.method}, level {o.level}; "
        f"softening eps = {o.soften_epsilon}; clip = {o.clip}.",
        f"- Clinician model per replicate: {c.behavior.n_folds} folds (cross-fitted), hidden "
        f"{list(c.behavior.hidden_sizes)}, <= {c.behavior.max_epochs} epochs. FQE: hidden "
        f"{list(o.fqe.hidden_sizes)}, {_fqe_budget(o.fqe)}, batch {o.fqe.batch_size}, "
        f"lr {o.fqe.learning_rate}, {o.fqe.n_members} member(s)"
        f"{' (bootstrapped FQE: Bayesian-bootstrap refits, resample b uses member b mod M)' if o.fqe.n_members > 1 else ''}"
        f"{_fqe_prior(o.fqe)}"
        f". Dynamics: {dyn}.",
        f"- Truth: {c.truth_episodes} closed-loop episodes per candidate (common random numbers).",
        *_weights_line(result),
        f"- Time: {ran}{_num(t.mean_replicate_seconds, 1)} s per replicate and worker; projected {projected} min "
        f"wall for R = 200 with {t.jobs} worker(s).",
        "",
    ]


def _weights_line(result: Any) -> list[str]:
    weights = getattr(result, "reference_weights", None) or {}
    if not weights:
        return []
    listed = ", ".join(f"{name} `{digest[:12]}`" for name, digest in weights.items())
    return [f"- Reference weights (sha256 digest, first 12 hex): {listed}. Studies whose digests differ evaluated "
            "different policies: training is deterministic on one machine, not across CPU types."]


def _truth_table(result: Any) -> list[str]:
    clin = result.truths["clinician"]
    rows = []
    for c, t in result.truths.items():
        d, se = (0.0, 0.0) if c == "clinician" else paired_difference(t, clin)
        rows.append([c, _num(t.value), f"±{_num(Z95 * t.mc_se)}", _pct(t.mortality),
                     "—" if c == "clinician" else f"{d:+.3f} ±{Z95 * se:.3f}", t.evaluated])
    return ["## Truth (closed loop)", "",
            *_table(["candidate", "value", "MC 95%", "mortality", "Δ vs clinician", "evaluated"], rows)]


def _overlap_table(result: Any) -> list[str]:
    rows = [[r.candidate, _num(r.ess_mean, 1), _num(r.ess_median, 1), _num(r.ess_min_step_mean, 1),
             _num(r.max_weight_share_mean), _pct(r.support_outside_mean)] for r in result.overlap]
    return ["## Overlap (importance weights of the softened candidates, mean over replicates)", "",
            f"Kish ESS of the trajectory weights out of {_num(result.mean_patients_evaluated, 0)} evaluated "
            "patients; the smallest per-decision ESS over steps; the largest single weight's share; the share "
            "of recommended steps outside clinician support.", "",
            *_table(["candidate", "ESS mean", "ESS median", "min per-step ESS", "max weight share",
                     "outside support"], rows)]


def render_coverage(result: Any) -> str:
    """The coverage study as markdown."""
    lines = [f"# Coverage study — sepsis simulator, N = {result.config.patients}, R = {result.n_replicates}", ""]
    lines += _settings(result) + _truth_table(result) + _overlap_table(result)
    lines += ["## Coverage of the nominal 95% intervals", "",
              "Coverage and lower-bound (LB) validity in % of the replicates where the estimate was defined "
              "(n), Wilson 95% interval in brackets; Δ = paired difference vs the clinician (what the gate "
              "uses). Width, bias and RMSE in reward units (return in [-1, 1]). Projected: share of "
              "replicates whose estimate lay outside the return range and was projected onto it.", ""]
    rows = [[r.estimator, r.candidate, str(r.n_defined), _pct(r.coverage) + _ci(r.coverage_ci),
             _pct(r.lower_bound_valid), _pct(r.difference_coverage),
             _pct(r.difference_lower_bound_valid) + _ci(r.difference_lower_bound_valid_ci),
             _num(r.mean_width), _num(r.bias), _num(r.rmse), _num(r.mean_ess, 1), _pct(r.projected_share)]
            for r in sorted(result.coverage, key=lambda r: (r.estimator, r.candidate))]
    lines += _table(["estimator", "candidate", "n", "coverage", "LB valid", "Δ coverage", "Δ LB valid",
                     "width", "bias", "RMSE", "mean ESS", "projected"], rows)
    lines += ["## Ranking across candidates (Spearman vs truth, per replicate)", ""]
    pairs = result.unresolved_truth_pairs
    lines += _table(["estimator", "replicates", "mean", "median", f"share ≥ {SPEARMAN_TARGET}",
                     "mean, unresolved truth pairs in either order", "mean, in the scoring table's order"],
                    [[r.estimator, str(r.n_replicates), _num(r.spearman_mean), _num(r.spearman_median),
                      _pct(r.share_at_least_target),
                      "—" if r.spearman_mean_range is None else "–".join(_num(x) for x in r.spearman_mean_range),
                      _num(r.spearman_lower_bound_mean)]
                     for r in result.ranking])
    lines += ["- The scoring table's order: by the one-sided lower bound of the paired difference to the clinician "
              "(the clinician at 0), as `clinical-mborl score` ranks. It is pessimistic by design, so it is not a "
              "ranking by value: a candidate with a wide interval ranks low whatever its value.", ""]
    if pairs:
        listed = "; ".join(f"{p.higher} vs {p.lower} ({p.difference:+.4f} ±{Z95 * p.mc_se:.4f})" for p in pairs)
        lines += ["- True order within the truths' Monte Carlo error (|Δ| < 1.96 SE; the SE of paired chunk means, "
                  f"or of independent errors for truths of fewer than 10 chunks): {listed}. The last column ranks "
                  "against each order of these pairs.", ""]
    ch = result.choice
    if ch is not None:
        lines += ["## Which estimator the gate should use", "",
                  f"Targets: two-sided coverage in [{COVERAGE_RANGE[0]}, {COVERAGE_RANGE[1]}] for every "
                  f"non-clinician candidate; paired lower bound valid in ≥ {LOWER_BOUND_TARGET:.0%} of replicates "
                  f"for every candidate worse than the clinician ({', '.join(ch.worse_candidates) or 'none'}).", ""]
        lines += _table(["estimator", "coverage min–max", "Δ LB valid (worse, min)", "LB valid (worse, min)",
                         "mean width", "coverage ok", "LB ok"],
                        [[e, f"{_pct(p['coverage_min'])}–{_pct(p['coverage_max'])}",
                          _pct(p["difference_lower_bound_valid_min_worse"]),
                          _pct(p["value_lower_bound_valid_min_worse"]), _num(p["mean_width"]),
                          "yes" if p["coverage_ok"] else "no", "yes" if p["lower_bound_ok"] else "no"]
                         for e, p in ch.per_estimator.items()])
        lines += [f"- Chosen: **{ch.chosen}** — {ch.reason}. Meets targets: {'yes' if ch.meets_targets else 'NO'}.",
                  f"- Best ranking: **{ch.best_ranking}** (mean Spearman {_num(ch.best_spearman)}; target "
                  f"{SPEARMAN_TARGET}){_ranking_range(result, ch.best_ranking)}.", ""]
    if result.errors:
        lines += ["## Replicates refused by the pipeline", "", *[f"- {e}" for e in result.errors], ""]
    return "\n".join(lines)


def _ranking_range(result: Any, estimator: str | None) -> str:
    row = next((r for r in result.ranking if r.estimator == estimator), None)
    if row is None or row.spearman_mean_range is None:
        return ""
    low, high = row.spearman_mean_range
    return f"; {_num(low)}–{_num(high)} over the true orders the truths' Monte Carlo error leaves open"


def render_gate(result: Any) -> str:
    """The gate study as markdown."""
    lines = [f"# Gate study — sepsis simulator, N = {result.config.patients}, R = {result.n_replicates}", ""]
    g = result.config.gate
    lines += _settings(result) + [
        f"- Gate: GateConfig defaults (primary {', '.join(g.primary_estimators)}, ESS floor {g.ess_floor}, max "
        f"weight share {g.max_weight_share}, support ≥ {g.min_support_share} at {g.support_threshold}, margin "
        f"{g.margin}, subgroups {', '.join(g.subgroup_attributes)} with ≥ {g.min_subgroup_size} patients) "
        "except the explanation check (no explanations in a study).", ""]
    lines += _truth_table(result) + _overlap_table(result)
    lines += ["## Gate outcomes", "", "Refused = not passed (fail or inconclusive); Wilson 95% intervals. "
              "'Passed without overlap checks': every check but ESS floor, max weight share and support "
              "passed (estimator agreement, margins, subgroups), i.e. what the bounds alone would release.", ""]
    rows = []
    for r in result.gate:
        top = sorted(r.check_rates.items(), key=lambda kv: -kv[1])[:4]
        rows.append([r.candidate, f"{r.truth_difference:+.3f}", "yes" if r.worse_than_clinician else "no",
                     str(r.n_replicates), _pct(r.refused) + _ci(r.refused_ci), _pct(r.failed),
                     _pct(r.inconclusive), _pct(r.passed) + _ci(r.passed_ci), _pct(r.passed_without_overlap),
                     "; ".join(f"{k} {_pct(v)}" for k, v in top)])
    lines += _table(["candidate", "Δ truth", "worse", "n", "refused", "fail", "inconclusive", "passed",
                     "passed without overlap checks", "most frequent reasons"], rows)
    v = result.verdict
    if v is not None:
        lines += [f"- Worse than the clinician: {', '.join(v.worse_candidates) or 'none'}; smallest refusal share "
                  f"{_pct(v.min_refusal_worse)} (target ≥ {REFUSAL_TARGET:.0%}): "
                  f"{'met' if v.all_worse_refused else 'NOT met'}.",
                  f"- Best learned candidate: {v.best_learned or '—'}, passes in {_pct(v.best_learned_pass_share)}"
                  f"{_ci(v.best_learned_pass_ci)} of the data sets.", ""]
    if result.errors:
        lines += ["## Replicates refused by the pipeline", "", *[f"- {e}" for e in result.errors], ""]
    return "\n".join(lines)


def _fqe_budget(fqe: FQEConfig) -> str:
    """How each FQE iteration's regression is run, as the study header states it."""
    if fqe.function_class == "linear":
        return f"linear, solved exactly (penalties {fqe.shared_penalty} shared, {fqe.action_penalty} per dose level)"
    if fqe.steps_per_iteration is not None:
        return f"{fqe.steps_per_iteration} Adam steps/iteration"
    return f"{fqe.epochs_per_iteration} epochs/iteration"


def _fqe_prior(fqe: FQEConfig) -> str:
    """The members' randomized priors, as the study header states them ('' without)."""
    if not fqe.prior_spread:
        return ""
    where = ("only at doses the clinician model gives with probability under the support threshold"
             if fqe.prior_where == "off_support" else "at every dose")
    return f", each with a frozen random prior of spread {fqe.prior_spread} {where}"
