"""bench/collapse_table.py: the per-arm figures are the right aggregates of the seeds' runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from collapse_table import (
    ARMS,
    arm_row,
    done_runs,
    main,
    param_free_share,
    prepare_key,
    render,
    run_record,
    write,
)
from run_bench import read_settings, task_config

from searchspace import SupernetConfig
from searchspace.genotype import Edge, Genotype

BENCH_TOML = Path(__file__).resolve().parents[2] / "bench" / "bench.toml"


def _genotype(*ops: str) -> Genotype:
    sources = [(0, 2), (1, 2), (0, 3), (2, 3)]
    edges = tuple(Edge(t, s, op) for (s, t), op in zip(sources, ops, strict=False))
    return Genotype(edges, num_cells=2, nodes_per_cell=2)


def _run(arm: str, seed: int, score: float, **extra) -> dict:
    record = {
        "arm": arm, "seed": seed, "score": score, "metric": "dev/f1", "teacher": 0.84,
        "degenerate": False, "one_class": False, "num_cells": 2, "param_free_share": 0.5,
        "collapsed": False, "genotype_summary": "K=2", "genotype_hash": "0" * 10,
        "seconds": {"search": 60.0, "retrain": 30.0},
    }  # fmt: skip
    record.update(extra)
    return record


def test_param_free_share_counts_pooling_and_identity_only():
    assert param_free_share(_genotype("identity", "std_conv_3", "avg_pool_3", "dil_conv_5")) == 0.5
    assert param_free_share(_genotype("max_pool_3", "identity", "avg_pool_3", "identity")) == 1.0
    assert param_free_share(_genotype("std_conv_3", "std_conv_5", "dil_conv_3", "dil_conv_7")) == 0


def test_an_arms_row_is_mean_and_population_std_over_its_seeds():
    runs = [
        _run("cap2", 2, 0.80, num_cells=4, param_free_share=0.25),
        _run("cap2", 1, 0.70, num_cells=2, param_free_share=1.0, collapsed=True),
        _run("cap2", 3, 0.90, num_cells=3, param_free_share=0.5, one_class=True),
    ]
    row = arm_row("cap2", runs)
    assert row["seeds"] == [1, 2, 3]
    assert row["score"]["mean"] == pytest.approx(0.80)
    assert row["score"]["std"] == pytest.approx((0.02 / 3) ** 0.5)  # population, not sample
    assert row["num_cells"]["values"] == [2, 4, 3]
    assert row["param_free_share"]["mean"] == pytest.approx(0.5833333)
    assert (row["collapsed"], row["degenerate"]) == (1, 1)
    assert row["minutes"] == pytest.approx(4.5)


def test_the_table_has_one_row_per_arm_run_and_resumes_only_the_same_settings(tmp_path):
    report = {
        "command": "python bench/collapse_table.py --glue mrpc", "task": "mrpc",
        "metric": "dev/f1", "teacher": 0.84, "overrides": ["retrain.epochs=1"],
        "arms": ["beta0"],  # a resumed table: earlier arms' runs are still shown
        "runs": [_run("default", 1, 0.8), _run("default", 2, 0.82), _run("cap2", 1, 0.7)],
    }  # fmt: skip
    text = render(report)
    rows = [line for line in text.splitlines() if line.startswith("| default") or
            line.startswith("| cap2") or line.startswith("| beta0")]  # fmt: skip
    assert len(rows) == 2  # beta0 has no run yet
    assert "0.810 ± 0.010" in rows[0] and "0.800 / 0.820" in rows[0]
    write(tmp_path, report)
    assert json.loads((tmp_path / "collapse.json").read_text())["runs"] == report["runs"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert len(done_runs(tmp_path, "mrpc", ["retrain.epochs=1"])) == 3
    assert done_runs(tmp_path, "mrpc", []) == []  # other settings: nothing is reused
    assert done_runs(tmp_path, "rte", ["retrain.epochs=1"]) == []


def test_every_arm_names_valid_settings_and_bad_input_exits_2(tmp_path, capsys):
    glue = tmp_path / "glue"
    (glue / "MRPC").mkdir(parents=True)
    for split in ("train.tsv", "dev.tsv"):
        (glue / "MRPC" / split).write_text("")
    for name, (what, source, overrides) in ARMS.items():
        assert what and source, name
        settings = read_settings(str(BENCH_TOML), list(overrides))
        cfg = task_config(settings, "mrpc", glue)  # an unknown key or bad value raises
        assert cfg.search.epochs >= 1
    (glue / "MRPC" / "dev.tsv").unlink()
    assert main(["--glue", "mrpc", "--glue-dir", str(glue), "--out", str(tmp_path / "o")]) == 2
    assert "MRPC" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--glue", "mrpc", "--arms", "nonsense"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists()


def test_arms_that_change_only_the_search_share_one_prepared_task(tmp_path):
    glue = tmp_path / "glue"
    (glue / "MRPC").mkdir(parents=True)
    for split in ("train.tsv", "dev.tsv"):
        (glue / "MRPC" / split).write_text("")

    def key(arm: str) -> str:
        settings = read_settings(str(BENCH_TOML), list(ARMS[arm][2]))
        return prepare_key(task_config(settings, "mrpc", glue))

    assert key("default") == key("cap2") == key("beta0") == key("pf_dropout")
    assert key("no_aug") != key("default")  # fewer augmented copies: another transfer set


def test_ranked_runs_list_every_candidate_and_mark_the_kept_one():
    candidates = [
        {"genotype": "K=2 | pool", "score": 0.81},
        {"genotype": "K=2 | conv", "score": 0.83},
    ]
    report = {
        "command": "python bench/collapse_table.py --glue mrpc", "task": "mrpc",
        "metric": "dev/f1", "teacher": 0.84, "overrides": [], "arms": ["rank"],
        "runs": [_run("rank", 1, 0.83, candidates=candidates, chosen=1.0),
                 _run("default", 1, 0.81, candidates=candidates[:1], chosen=0.0)],
    }  # fmt: skip
    lines = render(report).splitlines()
    listed = [line for line in lines if "candidate" in line and line.startswith("- ")]
    assert listed == [
        "- rank seed 1 candidate 1: 0.810 `K=2 | pool`",
        "- rank seed 1 candidate 2: **0.830** `K=2 | conv`",
    ]
    assert "Derive-time candidates" not in render(report | {"runs": report["runs"][1:]})


def test_a_run_keeps_its_whole_genotype_and_every_candidates_flops():
    import types

    config = SupernetConfig(
        vocab_size=30, max_positions=16, hidden_size=8, nodes_per_cell=2, pair_encoding="joint"
    )
    pool, conv = _genotype(*["avg_pool_3"] * 4), _genotype(*["std_conv_3"] * 4)
    result = types.SimpleNamespace(
        genotype=conv, score=0.83, primary_metric="dev/f1", teacher_score=0.84,
        supernet_config=config, student=types.SimpleNamespace(num_parameters=lambda: 1234),
        metrics={"student/flops": 1.0, "derive/chosen": 1.0, "derive/within_budget": 1.0},
        history={"candidates": [{"genotype": pool.summary(), "dev/f1": 0.81},
                                {"genotype": conv.summary(), "dev/f1": 0.83}]},
    )  # fmt: skip
    record = run_record("rank", 1, result, {"search": 1.0}, seq_len=16)
    assert Genotype.from_dict(record["genotype"]) == conv
    assert (record["flops"], record["within_budget"]) == (1.0, 1.0)
    # By hand, two cells of one sentence: four 3-wide pools (3·8·16) or convolutions
    # (2·3·8²·16), then the 2-label output linear on 8 features (2·8·2).
    flops = [c["flops"] for c in record["candidates"]]
    assert flops == [2 * 4 * 3 * 8 * 16 + 32, 2 * 4 * 2 * 3 * 64 * 16 + 32]
    report = {
        "command": "c", "task": "mrpc", "metric": "dev/f1", "teacher": 0.84, "overrides": [],
        "arms": ["rank"], "runs": [_run("rank", 1, 0.83, candidates=record["candidates"],
                                        chosen=1.0)],
    }  # fmt: skip
    assert f"candidate 2: **0.830** ({flops[1] / 1e6:.1f}M FLOPs) `{conv.summary()}`" in render(
        report
    )
