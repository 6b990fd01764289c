"""The per-epoch console line: metrics, and the constant check as one flag."""

from __future__ import annotations

import io

from orchestrator.progress import EpochReport, console_reporter


def _line(metrics: dict[str, float]) -> str:
    out = io.StringIO()
    console_reporter(out)(EpochReport("retrain", 2, 4, metrics, None))
    return out.getvalue().strip()


def test_the_constant_check_prints_as_one_flag_when_the_student_is_no_better():
    check = {"dev/majority_share": 1.0, "dev/constant_baseline": 0.8122, "dev/one_class": 1.0}
    line = _line({"retrain/loss_total": 0.5, "dev/f1": 0.8122, **check, "dev/degenerate": 1.0})
    assert line == "[retrain 2/4] loss_total 0.5 dev/f1 0.8122 (no better than a constant)"
    fine = _line({"dev/f1": 0.85, **check, "dev/degenerate": 0.0})
    assert fine == "[retrain 2/4] dev/f1 0.8500"


def test_a_candidate_retrain_says_which_candidate_it_is():
    out = io.StringIO()
    report = EpochReport("retrain", 1, 4, {"dev/f1": 0.8}, None, part="candidate 2/3")
    console_reporter(out)(report)
    assert out.getvalue().strip() == "[retrain 1/4, candidate 2/3] dev/f1 0.8000"
