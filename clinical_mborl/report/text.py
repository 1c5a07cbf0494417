"""Standard prose of the report: limitations, the model card and the data sheet.

Only published (suppressed) counts are ever put into text.
"""

from __future__ import annotations

from collections.abc import Mapping

from clinical_mborl.report.inputs import ReportInputs
from clinical_mborl.report.model import DataSheet, ModelCard
from clinical_mborl.report.suppress import Cell

STANDARD_LIMITATIONS = (
    "Unobserved confounding: off-policy evaluation assumes the recorded state contains every "
    "reason clinicians had for their doses. Information outside the EHR (bedside assessment, "
    "goals of care) can bias every estimate in this report, in either direction.",
    "Estimates rest on overlap with clinician behaviour: actions clinicians rarely took are "
    "evaluated on few patients (see ESS and the support check), and importance-sampling "
    "estimators are biased toward the clinician's value when ESS is low.",
    "The clinician model is itself estimated; its calibration bounds the reliability of the "
    "importance weights and the support mask.",
    "The intervals are narrower than their nominal level suggests: in the project's simulation "
    "studies with known truth (docs/coverage.md; sepsis simulator, 1,000-5,000 patients) the 95% "
    "intervals of the bootstrapped FQE estimate covered the true value in 57-87% of data sets. FQE "
    "overestimated withholding treatment when clinicians also acted inside the decision steps, and "
    "underestimated policies that treat differently from clinicians. Read a lower bound for "
    "withholding or reducing treatment as optimistic. Allowing for unobserved confounding "
    "(`evaluate --sensitivity`: clinicians' odds of each dose off by a factor of 1.1 per decision) "
    "widened them to cover the truth in 92-100% of data sets, except the paired bound for "
    "withholding treatment (90%).",
    "The dynamics model was evaluated on held-out patients only as far as the horizons shown; "
    "model-based value estimates beyond them extrapolate.",
    "The data are retrospective and from the sites in the cohort; the policy has not been "
    "validated prospectively, and performance may differ at other sites or times.",
    "Small cells are suppressed; subgroup results for small groups are not evaluated and are "
    "uncertain.",
    "Attributions explain the policy network's contrast between actions, not causal effects "
    "of the features on outcomes.",
)


#: share of a dimension's orders charted >= 1 h into their step above which the report warns
WITHIN_STEP_SHARE = 0.10


def within_step_limitation(inputs: ReportInputs) -> str | None:
    """The cohort's own within-step decision share (`CohortManifest.action_timing`) as a limitation,
    when some dimension with at least 11 orders has `WITHIN_STEP_SHARE` or more of them late."""
    late = [t for t in inputs.cohort.action_timing
            if t.orders >= 11 and t.share_after_first_hour >= WITHIN_STEP_SHARE]
    if not late:
        return None
    shares = ", ".join(f"{100 * t.share_after_first_hour:.0f}% of the {t.dimension} orders" for t in late)
    return (f"Decisions inside the decision step: {shares} were charted an hour or more into their "
            f"{inputs.cohort.step_hours:g}-hour step. The state holds only what was charted before the step, "
            "so these doses can answer what happened inside it; steps without a drug then mark patients "
            "who stayed stable, and withholding or reducing treatment looks better than it is (Jeter et al. "
            "2019). In the project's simulation study FQE overestimated withholding all treatment by +0.06 "
            "when clinicians acted inside the steps, and underestimated it by 0.03 when the same clinicians "
            "acted only at the steps' start (docs/coverage.md). Shorter decision steps reduce this.")


#: Adam steps per FQE iteration in the simulation studies whose coverage figures the report quotes
#: (1,000 patients: 4 epochs of 7 batches; 5,000 patients: 1 epoch of about 32 batches)
STUDIED_FQE_STEPS = (28, 32)


def fqe_budget_limitation(steps: int | None) -> str | None:
    """FQE's optimisation budget on this cohort (`OPEReport.fqe_steps_per_iteration`) beside the one
    the simulation studies measured its intervals at; None when no network FQE ran."""
    if steps is None:
        return None
    lo, hi = STUDIED_FQE_STEPS
    where = ("the budget the simulation studies measured" if lo <= steps <= hi else
             f"outside the {lo}-{hi} steps at which the simulation studies measured its intervals")
    return (f"FQE's optimisation budget: each of its iterations took {steps} Adam steps ({where}). FQE's "
            "values move with this budget, most for policies far from practice: in the project's simulation study "
            "(docs/coverage.md, lessons 16-17; 1,000 patients, 16 paired data sets) withholding all treatment "
            "was overestimated by +0.02 at 28 steps, +0.09 at 32 and +0.10 at 56, while values near practice "
            "moved by 0.05 or less; with 5,000 patients, 24 or 40 steps instead of 32 moved values by up to 0.1. "
            "Its intervals do not hold this uncertainty; read FQE values of policies "
            "that often recommend doses clinicians rarely gave (the support check) as less certain than shown.")


def fqe_prior_limitation(spread: float, where: str = "everywhere") -> str | None:
    """What randomized priors in FQE's members (`FQEConfig.prior_spread`, `prior_where`) do to its
    values and intervals; None without priors."""
    if not spread:
        return None
    place = "at every dose" if where == "everywhere" else "at doses outside the clinicians' support"
    return (f"FQE's members carried random prior networks (spread {spread:g} in reward units, {place}), so "
            "its intervals also hold the members' disagreement at doses the clinicians rarely gave. This is not "
            "the default. "
            + ("In the project's simulation study (docs/coverage.md, lesson 18; spread 0.3) the priors widened the "
               "intervals of two of the three policies far from practice by a quarter or more, but also lowered "
               "every FQE value by 0.01-0.07, and intervals for policies near practice covered less often."
               if where == "everywhere" else
               "In the project's simulation study (docs/coverage.md, lesson 18; spread 0.3, 34 data sets) the values "
               "stayed within about 0.02 of those without priors, and the intervals of policies far from practice "
               "widened, one of them nearly twofold; how often such intervals cover has not been measured at the study's full size."))


def limitations(inputs: ReportInputs) -> list[str]:
    """The standard limitations, the cohort's within-step decisions, then the pipeline's own."""
    timing = within_step_limitation(inputs)
    return [*STANDARD_LIMITATIONS, *([timing] if timing else []), *inputs.limitations]


def model_card(inputs: ReportInputs) -> ModelCard:
    spec = inputs.cohort.spec
    dims = ", ".join(f"{d.name} ({d.unit})" for d in inputs.cohort.action_space.dimensions)
    return ModelCard(
        model_details={
            "name": inputs.policy_name,
            "algorithm": inputs.algorithm,
            "description": inputs.policy_description or "Dosing policy learned offline from EHR transitions.",
            "actions": dims,
            "decision step (hours)": f"{inputs.cohort.step_hours:g}",
            "discount": f"{inputs.cohort.gamma:g}",
            "package version": inputs.cohort.package_version,
        },
        intended_use=inputs.intended_use.purpose,
        factors=["sex", "age band", "severity"] + [a for a in {g.attribute for g in inputs.subgroups}
                                                   if a not in ("sex", "age_band", "severity")],
        metrics=[
            "policy value and paired difference against the clinician (patient bootstrap intervals)",
            "effective sample size and weight concentration",
            "share of recommendations inside clinician support",
            "clinician agreement and dose distributions",
        ],
        evaluation_data=f"held-out split '{inputs.gate.config.heldout_split}' of cohort '{spec.name}' (patient-level split)",
        training_data=f"train split of cohort '{spec.name}'; normalisation fitted on train only",
        ethical_considerations=[
            "Recommendations are withheld unless the pre-registered gate passes.",
            "Identifiers are never shown; small counts are suppressed.",
            "Harm in subgroups is checked separately; small subgroups cannot be checked.",
        ],
        caveats=list(STANDARD_LIMITATIONS[:2]),
    )


def data_sheet(inputs: ReportInputs, totals: Mapping[str, Cell]) -> DataSheet:
    m = inputs.cohort
    spec = m.spec
    composition: dict[str, Cell | str] = {
        "patients": totals["patients"],
        "ICU stays": totals["stays"],
        "decision steps": totals["transitions"],
        "deaths": totals["deaths"],
        "state features": str(len(m.state_features)),
        "action space": m.action_space.kind,
    }
    return DataSheet(
        motivation=f"Cohort '{spec.name}' built to learn and audit dosing policies: {spec.description}".strip(),
        composition=composition,
        collection="Routinely collected EHR tables (stays, measurements, treatments) in the canonical "
                   "input contract; " + (f"{len(m.input_files)} input files, hashed in the manifest."
                                         if m.input_files else "no input files recorded (synthetic)."),
        preprocessing=[
            f"decision step {m.step_hours:g} h, {m.n_steps} steps per stay at most",
            "state at each step uses only data charted before the decision",
            "features normalised with statistics of the train split only",
            "patient-level split stratified by outcome",
            f"{len(m.exclusion_flow)} exclusion steps (see Cohort flow)",
        ],
        uses="Training and retrospective evaluation of dosing policies; not for individual-level inference.",
        distribution="Derived data stay with the data controller; this report publishes aggregates only.",
        maintenance="Rebuild the cohort from its specification; the manifest hash identifies each build.",
    )
