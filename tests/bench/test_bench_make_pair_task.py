"""bench/make_pair_task.py: a user's own pair task from STS-B's layout, and a config that loads."""

from __future__ import annotations

import json

import tomllib
from make_pair_task import BENCH_TOML, main

from orchestrator.config import load_config

HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


def _tsv(rows: list[tuple[str, str, float]]) -> str:
    lines = [f"{i}\tg\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{s:.3f}\n" for i, (a, b, s) in
             enumerate(rows)]  # fmt: skip
    return HEADER + "".join(lines)


def test_scores_from_3_are_similar_and_the_config_loads(tmp_path, capsys):
    glue = tmp_path / "glue" / "STS-B"
    glue.mkdir(parents=True)
    rows = [('He said "hi.', "A man spoke.", 3.0), ("A cat.", "A dog.", 2.999), ("x", "y", 5.0)]
    (glue / "train.tsv").write_text(_tsv(rows), encoding="utf-8")
    (glue / "dev.tsv").write_text(_tsv(rows[:2]), encoding="utf-8")
    out = tmp_path / "task"
    assert main(["--glue-dir", str(tmp_path / "glue"), "--out", str(out)]) == 0
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["relation"] for r in train] == ["similar", "different", "similar"]
    assert train[0]["sentence_one"] == 'He said "hi.'  # a stray quote stays in its sentence
    cfg = load_config(out / "simpairs.toml", ["task.name=simpairs"])
    assert (cfg.task.text_a, cfg.task.text_b, cfg.task.labels) == (
        "sentence_one", "sentence_two", ["different", "similar"],
    )  # fmt: skip
    assert cfg.task.train_file == str(out.resolve() / "train.jsonl")
    assert cfg.retrain.mode == "scratch"
    bench = tomllib.loads(BENCH_TOML.read_text())  # the budget follows bench.toml's STS-B
    stsb = bench["tasks"]["stsb"]
    assert cfg.data.augment_copies == stsb["data"]["augment_copies"]
    assert cfg.data.max_seq_length == stsb["data"]["max_seq_length"]
    assert cfg.teacher.epochs == stsb["teacher"]["epochs"]
    assert cfg.search.max_steps_per_epoch == bench["search"]["max_steps_per_epoch"]
    assert cfg.supernet.max_cells == stsb["supernet"]["max_cells"]  # over the base's
    assert cfg.supernet.mixed_op_mode == bench["supernet"]["mixed_op_mode"]


def test_a_glue_folder_without_sts_b_exits_2(tmp_path, capsys):
    assert main(["--glue-dir", str(tmp_path), "--out", str(tmp_path / "task")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "task").exists()
