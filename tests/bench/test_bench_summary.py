"""summary.json from hand-written bench.json files: a 3-seed file and an old-format one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import bench_report
import pytest
from bench_summary import mean_std, summarize

SEED_SCORES = [0.80, 0.82, 0.87]  # mean 0.83; deviations -0.03, -0.01, 0.04


def _new_format() -> dict:
    """An MRPC entry as run_bench writes it now (only the fields the summary reads, plus a few
    it must ignore)."""
    return {
        "task": "mrpc",
        "status": "done",
        "metric": "f1",
        "data": {"train_examples": 3668, "augmented_examples": 110040, "dev_examples": 408},
        "teacher": {"metrics": {"f1": 0.85, "accuracy": 0.78}},
        "searched": {"seed": 1, "metrics": {"f1": SEED_SCORES[0]}, "params": 3923747},
        "seeds": [
            {"seed": seed, "metrics": {"f1": score, "accuracy": 0.7}}
            for seed, score in zip([1, 2, 3], SEED_SCORES)
        ],
        "random_genotype": {"metrics": {"f1": 0.79}},
        "bag_of_embeddings": {"metrics": {"f1": 0.81}},
        "bert_style": {"metrics": {"f1": 0.78}, "choice": {"chosen": "1x128"}},
        "majority_baseline": {"label": 1, "score": 0.8122},
        "ratios": {"size_vs_bert_base": 27.9, "speedup_b1_vs_bert_base": 233.1},
        "phase_seconds": {
            "teacher": 1023.0,
            "knowledge": 51.5,
            "search": 1100.0,
            "retrain": 70.0,
            "baseline_floor": 12.0,
        },
        "config": {"run": {"seed": 42}},
    }


def _old_format() -> dict:
    """An SST-2 entry from before seeds, the floor, the majority baseline and augmentation."""
    return {
        "task": "sst2",
        "status": "done",
        "metric": "accuracy",
        "data": {"train_examples": 8000, "dev_examples": 872},
        "teacher": {"metrics": {"accuracy": 0.90}},
        "searched": {"metrics": {"accuracy": 0.846}, "params": 3923619},
        "random_genotype": {"metrics": {"accuracy": 0.83}},
        "bert_style": {"metrics": {"accuracy": 0.80}},
        "ratios": {"size_vs_bert_base": 27.9, "speedup_b1_vs_bert_base": 180.0},
        "phase_seconds": {"data": 2.0, "teacher": 800.0, "search": 400.0, "retrain": 30.0},
        "config": {"run": {"seed": 42}},
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for task, entry in (("mrpc", _new_format()), ("sst2", _old_format())):
        (tmp_path / task).mkdir()
        failed = {"task": "rte", "status": "failed", "error": "boom"}
        report = {"tasks": [entry, failed] if task == "mrpc" else [entry]}
        (tmp_path / task / "bench.json").write_text(json.dumps(report), encoding="utf-8")
    return tmp_path


def test_three_seeds_give_mean_and_population_std(results):
    row = next(r for r in summarize(results) if r["task"] == "mrpc")
    assert row["searched"] == pytest.approx(0.83)
    assert row["searched_std"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 3))
    assert row["searched_std"] == pytest.approx(0.0294392, abs=1e-6)
    assert row["seeds"] == [1, 2, 3]
    assert row["searched_by_seed"] == SEED_SCORES
    assert row["retention"] == pytest.approx(0.83 / 0.85)
    expected = {
        "metric": "f1",
        "teacher": 0.85,
        "random_genotype": 0.79,
        "bag_of_embeddings": 0.81,
        "bert_style": 0.78,
        "bert_style_matched_by": "latency",
        "majority_baseline": 0.8122,
        "params": 3923747,
        "size_vs_bert_base": 27.9,
        "speedup_b1_vs_bert_base": 233.1,
        "train_examples": 3668,
        "augmented_examples": 110040,
        "teacher_seconds": 1023.0,
        "knowledge_seconds": 51.5,
        "search_seconds": 1100.0,
        "retrain_seconds": 70.0,
        "source": "mrpc/bench.json",
    }
    assert {k: row[k] for k in expected} == expected


def test_old_format_fields_are_null(results):
    row = next(r for r in summarize(results) if r["task"] == "sst2")
    for field in ("bag_of_embeddings", "majority_baseline", "augmented_examples"):
        assert row[field] is None, field
    assert row["knowledge_seconds"] is None  # the pipeline never timed it apart
    # One search, with the seed its config recorded: its score, spread 0.
    assert row["searched"] == 0.846 and row["searched_std"] == 0.0
    assert row["seeds"] == [42]
    assert row["bert_style_matched_by"] == "params"
    assert (row["teacher_seconds"], row["search_seconds"], row["retrain_seconds"]) == (
        800.0,
        400.0,
        30.0,
    )
    assert row["train_examples"] == 8000 and row["teacher"] == 0.90


def test_every_row_has_the_required_fields(results):
    required = {
        "task", "metric", "teacher", "searched", "searched_std", "random_genotype",
        "bag_of_embeddings", "bert_style", "params", "size_vs_bert_base",
        "speedup_b1_vs_bert_base", "train_examples", "augmented_examples", "seeds",
        "majority_baseline", "teacher_seconds", "knowledge_seconds", "search_seconds",
        "retrain_seconds",
    }  # fmt: skip
    rows = summarize(results)
    assert [r["task"] for r in rows] == ["mrpc", "sst2"]  # the failed rte entry is left out
    for row in rows:
        assert required <= set(row)


def test_command_line_writes_summary_json(results, capsys):
    assert bench_report.main(["--summary", str(results)]) == 0
    written = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    assert written == summarize(results)
    assert str(results / "summary.json") in capsys.readouterr().out
    other = results / "elsewhere.json"
    assert bench_report.main(["--summary", str(results), "--summary-out", str(other)]) == 0
    assert json.loads(other.read_text(encoding="utf-8")) == written


def test_a_multi_task_run_folder_is_read_too(results):
    """``--out DIR`` with several tasks writes DIR/bench.json itself."""
    report = {"tasks": [dict(_old_format(), task="cola")]}
    (results / "bench.json").write_text(json.dumps(report), encoding="utf-8")
    assert [r["task"] for r in summarize(results)] == ["cola", "mrpc", "sst2"]


def test_command_line_rejects_a_missing_folder(tmp_path):
    assert bench_report.main(["--summary", str(tmp_path / "nope")]) == 2


def test_mean_std_edge_cases():
    assert mean_std([0.5]) == {"values": [0.5], "mean": 0.5, "std": 0.0}
    assert mean_std([None])["mean"] is None and mean_std([])["std"] is None


def test_degenerate_seeds_and_controls_are_named(results):
    """The product's rule: no better than the constant prediction, or one class for >= 98% of
    the dev examples (the share is recorded for the searched seeds)."""
    entry = _new_format()
    entry["seeds"][0]["metrics"] |= {"f1": 0.8122, "majority_share": 1.0}  # the constant
    entry["seeds"][1]["metrics"] |= {"majority_share": 0.99}  # above it, but one class
    entry["bert_style"]["metrics"]["f1"] = 0.8122
    (results / "mrpc" / "bench.json").write_text(json.dumps({"tasks": [entry]}), encoding="utf-8")
    row = next(r for r in summarize(results) if r["task"] == "mrpc")
    assert row["searched_degenerate_seeds"] == [1, 2]
    # 0.81 and 0.79 are below the constant 0.8122 too
    assert row["degenerate_controls"] == ["bag_of_embeddings", "bert_style", "random_genotype"]
    mean = (0.8122 + SEED_SCORES[1] + SEED_SCORES[2]) / 3
    assert row["retention_above_baseline"] == pytest.approx((mean - 0.8122) / (0.85 - 0.8122))
    old = next(r for r in summarize(results) if r["task"] == "sst2")
    assert old["searched_degenerate_seeds"] is None and old["retention_above_baseline"] is None
    assert old["degenerate_controls"] is None  # no majority baseline in that file: unknown


def test_a_correlation_task_is_judged_against_zero_without_a_majority_baseline(results):
    """STS-B has no majority class: every constant prediction has a Pearson correlation of 0."""
    entry = _new_format() | {"task": "stsb", "metric": "pearson", "majority_baseline": None}
    entry["teacher"] = {"metrics": {"pearson": 0.8}}
    entry["seeds"] = [
        {"seed": seed, "metrics": {"pearson": score}}
        for seed, score in zip([1, 2, 3], [0.0, 0.6, 0.7])
    ]
    entry["bag_of_embeddings"] = {"metrics": {"pearson": -0.1}}
    entry["random_genotype"] = {"metrics": {"pearson": 0.5}}
    entry["bert_style"] = {"metrics": {"pearson": 0.2}}
    (results / "stsb").mkdir(exist_ok=True)
    (results / "stsb" / "bench.json").write_text(json.dumps({"tasks": [entry]}), encoding="utf-8")
    row = next(r for r in summarize(results) if r["task"] == "stsb")
    assert row["searched_degenerate_seeds"] == [1]
    assert row["degenerate_controls"] == ["bag_of_embeddings"]
    assert row["retention_above_baseline"] == pytest.approx((1.3 / 3) / 0.8)


def test_a_control_trained_per_seed_is_reported_as_its_mean_and_spread(results):
    entry = _new_format()
    by_seed = [{"seed": s, "metrics": {"f1": v}} for s, v in zip([1, 2, 3], [0.79, 0.83, 0.78])]
    by_seed[2]["metrics"]["majority_share"] = 0.99  # one seed's control is one-class
    entry["majority_baseline"]["score"] = 0.5  # every control beats the constant on its score
    entry["random_genotype"] |= {
        "by_seed": by_seed,
        "over_seeds": {"metric": "f1", **mean_std([0.79, 0.83, 0.78])},
    }
    (results / "mrpc" / "bench.json").write_text(json.dumps({"tasks": [entry]}), encoding="utf-8")
    row = next(r for r in summarize(results) if r["task"] == "mrpc")
    assert row["random_genotype"] == pytest.approx(0.80)
    assert row["random_genotype_std"] == pytest.approx(math.sqrt((0.01**2 + 0.03**2 + 0.02**2) / 3))
    assert row["bag_of_embeddings"] == 0.81 and row["bag_of_embeddings_std"] is None  # one run
    assert row["degenerate_controls"] == ["random_genotype"]
    assert bench_report.control_text(entry, "random_genotype") == "0.800 ± 0.022 (3 seeds)"
    assert bench_report.control_text(entry, "bag_of_embeddings") == "0.810"


def test_the_any_size_control_gives_its_mean_score_and_mean_size(results):
    entry = _new_format()
    draws = [
        {"seed": s, "metrics": {"f1": v}, "params": p, "genotype_hash": h}
        for s, v, p, h in zip([1, 2, 3], [0.70, 0.76, 0.82], [4e6, 5e6, 9e6], "abc")
    ]
    entry["random_any_size"] = {
        "by_seed": draws,
        "over_seeds": {"metric": "f1", **mean_std([0.70, 0.76, 0.82])},
    }
    (results / "mrpc" / "bench.json").write_text(json.dumps({"tasks": [entry]}), encoding="utf-8")
    rows = {r["task"]: r for r in summarize(results)}
    assert rows["mrpc"]["random_any_size"] == pytest.approx(0.76)
    assert rows["mrpc"]["random_any_size_std"] == pytest.approx(math.sqrt(0.0072 / 3))
    assert rows["mrpc"]["random_any_size_params"] == pytest.approx(6e6)
    # A file from before the control: null, never a figure no run measured.
    assert rows["sst2"]["random_any_size"] is None
    assert rows["sst2"]["random_any_size_params"] is None
