"""Figure annotations only ever carry published (suppressed) counts."""

import re

from matplotlib.text import Text

from clinical_mborl.report import plots
from clinical_mborl.report.build import build_audit_report

from .factory import subgroups


def _texts(fig):
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_forest_and_subgroup_annotations_are_suppressed(workspace):
    _, _, _, inputs = workspace
    n_test = inputs.cohort.counts["test"].patients  # subgroups partition the test split: M = n - F
    assert n_test >= 15
    small = inputs.model_copy(update={
        "ope": [e.model_copy(update={"n_patients": 7}) for e in inputs.ope],
        "subgroups": subgroups({"sex": {"F": 4, "M": n_test - 4}}),
    })
    r = build_audit_report(small)
    forest = _texts(plots.forest_figure(r.ope, 0.0))
    sub = _texts(plots.subgroup_figure(r.subgroups, 0.0))
    assert "n=<11  ESS=73.2" in forest
    assert "n=<11" in sub and "n=*" in sub
    for text in forest + sub:
        assert not re.search(r"n=([1-9]|10)\b", text), text


def test_dose_figure_draws_no_bar_for_a_suppressed_cell(workspace):
    _, _, _, inputs = workspace
    r = build_audit_report(inputs)
    hidden = [d for d in r.doses if d.clinician_pct is None or d.policy_pct is None]
    fig = plots.dose_figure(r.doses)
    texts = _texts(fig)
    assert len([t for t in texts if t in ("<11", "*")]) == sum(
        (d.clinician_pct is None) + (d.policy_pct is None) for d in hidden)
    n_bars = sum(len(ax.patches) for ax in fig.axes)
    assert n_bars == 2 * len(r.doses) - len([t for t in texts if t in ("<11", "*")])


def test_data_uri_is_png_without_url():
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    uri = plots.to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,iVBOR")
    assert "http" not in uri
