"""run_bench.py --own: a task of the user's own (their files, their columns) benchmarked with
every control, its config layered over bench.toml, its problems found before any work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from run_bench import _teachers_text, build_parser, main, read_settings, task_configs

from orchestrator.errors import UserInputError
from orchestrator.sweep.config import demo_task_overrides
from orchestrator.tasks.demo import write_demo_task


def write_own_task(
    root: Path,
    *,
    name: str | None = "mypairs",
    file: str = "mypairs.toml",
    extra: str = "",
    prefix: str = "",
    **task_changes,
) -> Path:
    """The demo paraphrase pairs as JSONL and a run config naming them, as a user writes it:
    ``root/<file>``; ``task_changes`` replace [task] values (None drops one), ``prefix``
    and ``extra`` are TOML text before and after it."""
    folder = write_demo_task(root, "paraphrase", train_size=96, dev_size=48, seed=0, fmt="jsonl")
    task = {k.split(".", 1)[1]: v for k, v in demo_task_overrides("paraphrase", folder).items()}
    task = {"name": name, **task, **task_changes}
    lines = [prefix + "[task]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in task.items() if value is not None]
    path = root / file
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def bench_toml(tiny_bench_toml) -> Path:
    """The tiny budget, with a GLUE task's table that a task of your own must not pick up."""
    with tiny_bench_toml.open("a", encoding="utf-8") as handle:
        handle.write("[tasks.mrpc]\nsearch.epochs = 9\n")
    return tiny_bench_toml


def test_own_config_layers_over_bench_toml_and_set_wins(tmp_path, bench_toml):
    own = write_own_task(tmp_path, extra="[search]\nmax_steps_per_epoch = 5\n")
    settings = read_settings(str(bench_toml), ["retrain.epochs=2"])
    configs, files = task_configs(settings, [], [str(own)], tmp_path)
    cfg = configs["mypairs"]
    assert files == {"mypairs": str(own)}
    assert cfg.task.train_file.endswith("train.jsonl") and cfg.task.text_b == "sentence2"
    assert cfg.search.max_steps_per_epoch == 5  # the file over bench.toml
    assert cfg.search.epochs == 1  # bench.toml; [tasks.mrpc]'s 9 is not this task's
    assert cfg.retrain.epochs == 2  # --set over both
    assert cfg.data.max_seq_length == 32 and cfg.teacher.epochs == 1.0  # bench.toml's budget


def test_a_file_without_a_task_name_names_the_task_by_its_stem(tmp_path, bench_toml):
    unnamed = write_own_task(tmp_path, name=None, file="user_pairs.toml")
    settings = read_settings(str(bench_toml), [])
    configs, files = task_configs(settings, [], [str(unnamed)], tmp_path)
    assert list(configs) == ["user_pairs"] and configs["user_pairs"].task.text_b == "sentence2"
    hostile = tmp_path / "two words.toml"
    hostile.write_text(unnamed.read_text(), encoding="utf-8")
    with pytest.raises(UserInputError, match="task.name"):
        task_configs(settings, [], [str(hostile)], tmp_path)


def test_own_task_beside_glue_tasks_and_names_given_twice(tmp_path, bench_toml, demo_data_dir):
    settings = read_settings(str(bench_toml), [])
    own = write_own_task(tmp_path)
    configs, files = task_configs(settings, ["mrpc"], [str(own)], demo_data_dir)
    assert list(configs) == ["mrpc", "mypairs"] and list(files) == ["mypairs"]
    assert configs["mrpc"].search.epochs == 9
    shared = configs["mrpc"].teacher.name_or_path
    assert _teachers_text(configs) == shared  # one teacher: named once
    own_teacher = dataclasses.replace(configs["mypairs"].teacher, name_or_path="my/bert")
    configs["mypairs"] = dataclasses.replace(configs["mypairs"], teacher=own_teacher)
    assert _teachers_text(configs) == f"mrpc: {shared}, mypairs: my/bert"
    clash = write_own_task(tmp_path / "b", name="mrpc")
    with pytest.raises(UserInputError, match="'mrpc' is benchmarked twice"):
        task_configs(settings, ["mrpc"], [str(clash)], demo_data_dir)


@pytest.mark.parametrize(
    "changes, message",
    [
        (None, "config file not found"),  # the file itself is missing
        ({"text_b": "no_such_field"}, "no_such_field"),
        ({"labels": ["yes", "no"]}, "label"),
        ({"name": "../x"}, "task.name"),
        ({"prefix": "search = 3\n"}, "must be a table"),
    ],
)
def test_bad_own_task_exits_2_before_any_work(tmp_path, bench_toml, capsys, changes, message):
    if changes is None:
        path = tmp_path / "missing.toml"
    else:
        path = write_own_task(tmp_path / "own", **changes)
    out = tmp_path / "out"
    argv = ["--own", str(path), "--config", str(bench_toml), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()  # nothing half-written


def test_own_replaces_the_default_glue_tasks():
    parser = build_parser()
    assert parser.parse_args([]).tasks is None and parser.parse_args([]).own == []
    parsed = parser.parse_args(["--own", "a.toml", "b.toml"])
    assert parsed.own == ["a.toml", "b.toml"] and parsed.tasks is None


@pytest.mark.slow
def test_own_pair_task_is_benchmarked_on_its_own_files(tmp_path, bench_toml):
    own = write_own_task(tmp_path)
    out = tmp_path / "out"
    argv = ["--own", str(own), "--config", str(bench_toml), "--seeds", "1", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["complete"] and report["tasks_requested"] == ["mypairs"]
    assert report["own_configs"] == {"mypairs": str(own)}
    (task,) = report["tasks"]
    assert task["status"] == "done", task.get("error")
    # Trained and scored on the user's rows: 96 train (+ one augmented copy each), 48 dev.
    assert task["data"]["train_examples"] == task["data"]["train_available"] == 96
    assert task["data"]["dev_examples"] == 48 and task["metric"] == "f1"
    assert task["config"]["task"]["train_file"] == str(tmp_path / "paraphrase" / "train.jsonl")
    for control in ("random_genotype", "random_any_size", "bag_of_embeddings", "bert_style"):
        assert task[control]["by_seed"][0]["metrics"]["f1"] is not None, control
    assert "searched_equal_text_b1" in task["latency_ms"]["threads=1"]  # timed as a pair task
    markdown = (out / "bench.md").read_text()
    assert "tasks of your own: mypairs" in markdown and f"`mypairs` from `{own}`" in markdown
    targets = markdown.split("## Targets", 1)[1].splitlines()
    target_row = next(line for line in targets if line.startswith("| mypairs | "))
    assert "n/a" not in target_row.split("|")[2]  # held to the 90% retention target
