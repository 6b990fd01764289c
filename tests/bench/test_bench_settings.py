"""run_bench's new options: --seeds and the BERT-style candidate shapes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bench_report import equal_text_lines
from run_bench import (
    build_parser,
    over_seeds,
    parse_seeds,
    read_settings,
    speedup_ratios,
    with_seed,
)

from orchestrator.config import RunConfig
from orchestrator.errors import UserInputError


def test_seeds_parse_in_order():
    assert parse_seeds("3,1,2") == [3, 1, 2]
    assert parse_seeds("7") == [7]
    assert build_parser().parse_args(["--seeds", "1,2,3"]).seeds == [1, 2, 3]
    assert build_parser().parse_args([]).seeds is None  # each task's run.seed


@pytest.mark.parametrize("text", ["1,1", "", "a,b", "1.5"])
def test_bad_seeds_are_rejected(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds(text)


def test_with_seed_changes_only_the_seed():
    cfg = RunConfig()
    seeded = with_seed(cfg, 7)
    assert seeded.run.seed == 7 and seeded.run.cache_dir == cfg.run.cache_dir
    assert seeded.search == cfg.search and cfg.run.seed != 7


def test_candidate_shapes_settings():
    options = read_settings(None, ["bench.bert_layers=3", "bench.bert_widths=[64,128]"]).options
    assert options["bert_layers"] == [3] and options["bert_widths"] == [64, 128]
    with pytest.raises(UserInputError, match="bert_heads"):
        read_settings(None, ["bench.bert_heads=3"])  # 3 does not divide 64
    with pytest.raises(UserInputError, match="bert_widths"):
        read_settings(None, ["bench.bert_widths=[]"])
    with pytest.raises(UserInputError, match="unknown"):
        read_settings(None, ["bench.bert_max_layers=6"])  # replaced by bert_layers


def test_bench_toml_is_valid():
    toml = Path(__file__).resolve().parents[2] / "bench" / "bench.toml"
    options = read_settings(str(toml), []).options
    assert options["bert_layers"] and options["bert_widths"]


def test_a_control_is_trained_once_per_seed_and_reported_as_their_mean():
    seen = []

    def train(cfg: RunConfig) -> dict:
        seen.append(cfg.run.seed)
        score = {1: 0.80, 2: 0.70, 3: 0.90}[cfg.run.seed]
        return {"model": f"model-{cfg.run.seed}", "metrics": {"f1": score}, "best_epoch": 1}

    record = over_seeds(train, RunConfig(), [1, 2, 3], "f1")
    assert seen == [1, 2, 3]
    assert record["model"] == "model-1"  # the first seed's model is the one timed and saved
    assert record["metrics"] == {"f1": 0.80}
    assert [r["seed"] for r in record["by_seed"]] == [1, 2, 3]
    assert record["over_seeds"]["mean"] == pytest.approx(0.80)
    assert record["over_seeds"]["std"] == pytest.approx((0.02 / 3) ** 0.5)  # population std
    assert all("model" not in r for r in record["by_seed"])
    assert read_settings(None, []).options["controls_per_seed"] is True
    with pytest.raises(UserInputError, match="controls_per_seed"):
        read_settings(None, ["bench.controls_per_seed=3"])


def test_speedups_are_latency_ratios_and_equal_text_ones_only_when_timed():
    ms = {"searched_b1": 2.0, "teacher_b1": 50.0, "bert_base_b1": 300.0}
    ms |= {"searched_b32": 10.0, "teacher_b32": 1000.0, "bert_base_b32": 8000.0}
    single = speedup_ratios(ms)
    assert single == {
        "speedup_b1_vs_teacher": 25.0,
        "speedup_b1_vs_bert_base": 150.0,
        "speedup_b32_vs_teacher": 100.0,
        "speedup_b32_vs_bert_base": 800.0,
    }
    pair = speedup_ratios(ms | {"searched_equal_text_b1": 1.5, "searched_equal_text_b32": 4.0})
    assert pair["speedup_b1_vs_bert_base_equal_text"] == 200.0
    assert pair["speedup_b32_vs_teacher_equal_text"] == 250.0
    assert {k: v for k, v in pair.items() if "equal" not in k} == single


def _pair_record(task: str, seq_len: int, stored: float) -> dict:
    ms = {"searched_equal_text_b1": 2.0, "searched_equal_text_b32": 20.0}
    ms |= {"teacher_b1": 50.0, "bert_base_b1": 300.0, "teacher_b32": 500.0, "bert_base_b32": 3e3}
    ratios = {
        f"speedup_b{b}_vs_{o}_equal_text": stored for b in (1, 32) for o in ("teacher", "bert_base")
    }
    return {
        "task": task,
        "latency_meta": {"seq_len": seq_len, "runs": [{"label": "threads=1", "threads": 1}]},
        "latency_ms": {"threads=1": ms},
        "ratios": {"speedups_by_threads": {"threads=1": ratios}},
    }


def test_equal_text_table_shows_the_stored_ratios_and_each_tasks_length():
    lines = equal_text_lines([_pair_record("mrpc", 128, 123.4), _pair_record("rte", 256, 7.0)])
    rows = [line for line in lines if line.startswith("| mrpc") or line.startswith("| rte")]
    assert len(rows) == 4
    # The stored ratio, not 50 / 2 = 25x recomputed from the milliseconds.
    assert "| mrpc | 2 x 64 | 1 | 1 | 2.00 | 123.4x | 123.4x |" in rows
    assert "| rte | 2 x 128 | 1 | 32 | 20.00 | 7.0x | 7.0x |" in rows


def test_equal_text_table_is_absent_for_single_sentence_tasks():
    record = _pair_record("sst2", 64, 1.0)
    record["latency_ms"]["threads=1"] = {"searched_b1": 1.0}
    assert equal_text_lines([record]) == []
