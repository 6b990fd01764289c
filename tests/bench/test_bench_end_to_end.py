"""bench/run_bench.py end to end on generated MRPC with the tiny teacher: two search seeds, every
control trained once per seed from one architecture picked per task, results read back."""

from __future__ import annotations

import json

import pytest
from bench_report import main as report_main
from run_bench import main


@pytest.mark.slow
def test_two_seeds_train_every_control_per_seed(tmp_path, demo_data_dir, tiny_bench_toml):
    config = tiny_bench_toml
    out = tmp_path / "out"
    argv = ["--glue-dir", str(demo_data_dir), "--tasks", "mrpc", "--config", str(config)]
    assert main([*argv, "--seeds", "1,2", "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["complete"]
    (task,) = report["tasks"]
    assert task["status"] == "done", task.get("error")
    assert [row["seed"] for row in task["seeds"]] == [1, 2]
    assert len(task["searched_over_seeds"]["values"]) == 2
    shares = [row["search_entropy_share"] for row in task["seeds"]]
    assert all(0.0 < share <= 1.0 for share in shares)
    for control in ("random_genotype", "random_any_size", "bag_of_embeddings", "bert_style"):
        record = task[control]
        assert [row["seed"] for row in record["by_seed"]] == [1, 2], control
        values = [row["metrics"]["f1"] for row in record["by_seed"]]
        assert record["over_seeds"]["mean"] == pytest.approx(sum(values) / 2), control
        assert "model" not in record and "shape" not in record, control
    # The any-size control draws one architecture per seed, each recorded beside its figures,
    # none of them the searched genotype.
    draws = task["random_any_size"]["by_seed"]
    assert all(d["params"] > 0 and d["genotype_summary"] for d in draws)
    assert task["searched"]["genotype_hash"] not in {d["genotype_hash"] for d in draws}
    # Every other control has one architecture, picked once: its records are kept once.
    assert task["random_genotype"]["choice"]["samples"] == 20
    picked = task["bert_style"]["choice"]
    assert picked["chosen"] in {"1x32", "2x32"}
    assert task["bert_style"]["architecture"]["num_hidden_layers"] == int(picked["chosen"][0])
    # A pair task is timed twice: each sentence at seq 128, and on the transformers' text.
    assert task["latency_meta"]["seq_len"] == 128
    timed = task["latency_ms"]["threads=1"]
    assert {"searched_b1", "searched_equal_text_b1", "bert_base_b1"} <= set(timed)
    assert task["ratios"]["speedup_b1_vs_bert_base_equal_text"] == pytest.approx(
        timed["bert_base_b1"] / timed["searched_equal_text_b1"]
    )
    markdown = (out / "bench.md").read_text()
    assert "± " in markdown and "| mrpc | 2 x 64 | 1 | 1 |" in markdown
    assert markdown.count("α entropy") == 2  # one per seed's genotype line
    assert "| mrpc | random, any size (seed 1) |" in markdown
    assert "| mrpc | random, any size (seed 2) |" in markdown
    # bench_report --render writes the same bench.md from bench.json and leaves bench.json be.
    saved = (out / "bench.json").read_bytes()
    (out / "bench.md").unlink()
    assert report_main(["--render", str(out)]) == 0
    assert (out / "bench.md").read_text() == markdown
    assert (out / "bench.json").read_bytes() == saved


def test_render_without_a_bench_json_exits_2(tmp_path, capsys):
    assert report_main(["--render", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path} has no bench.json\n"
    assert not (tmp_path / "bench.md").exists()


@pytest.mark.slow
def test_a_single_sentence_task_trains_every_control(tmp_path, demo_data_dir, tiny_bench_toml):
    """SST-2: the CNN students share one sentence in slots a and b, the BERT-style control
    carries token types in slot b; each control must train on its own inputs."""
    config = tiny_bench_toml
    out = tmp_path / "out"
    argv = ["--glue-dir", str(demo_data_dir), "--tasks", "sst2", "--config", str(config)]
    assert main([*argv, "--seeds", "1", "--out", str(out)]) == 0
    (task,) = json.loads((out / "bench.json").read_text())["tasks"]
    assert task["status"] == "done", task.get("error")
    for control in ("random_genotype", "random_any_size", "bag_of_embeddings", "bert_style"):
        assert 0.0 <= task[control]["metrics"]["accuracy"] <= 1.0, control
    assert "searched_equal_text_b1" not in task["latency_ms"]["threads=1"]
