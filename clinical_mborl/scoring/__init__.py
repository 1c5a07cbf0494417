"""Batch scoring: many candidate policies evaluated off-policy, gate-checked and ranked.

`score_candidates(candidates, transitions, behavior, dynamics, config, out_dir)` writes
`scores.csv` and a self-contained `scores.html` (`clinical-mborl score`).

>>> from clinical_mborl.scoring import ScoringConfig, score_columns
>>> ScoringConfig().primary_estimator, score_columns(("wdr",))[5]
('wdr', 'wdr_value')
"""

from clinical_mborl.scoring.candidates import Candidate, candidate_labels
from clinical_mborl.scoring.config import ScoringConfig, screening_gate_config
from clinical_mborl.scoring.metrics import Agreement, HaltRate, clinician_agreement, halt_rate
from clinical_mborl.scoring.render import render_scores_html
from clinical_mborl.scoring.score import (
    SCORES_CSV,
    SCORES_HTML,
    CandidateResult,
    score_candidate,
    score_candidates,
)
from clinical_mborl.scoring.table import (
    EstimatorScore,
    ScoreRow,
    ScoreTable,
    rank_rows,
    score_columns,
)

__all__ = [
    "SCORES_CSV",
    "SCORES_HTML",
    "Agreement",
    "Candidate",
    "CandidateResult",
    "EstimatorScore",
    "HaltRate",
    "ScoreRow",
    "ScoreTable",
    "ScoringConfig",
    "candidate_labels",
    "clinician_agreement",
    "halt_rate",
    "rank_rows",
    "render_scores_html",
    "score_candidate",
    "score_candidates",
    "score_columns",
    "screening_gate_config",
]
