"""`adabert run` end to end on generated data and a tiny teacher: run folder, cache, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orchestrator.cli import main
from orchestrator.method.run_folder import INCOMPLETE_SUFFIX, load_student

TINY = [
    "data.max_seq_length=16",
    "data.batch_size=16",
    "data.augment_copies=0",
    "teacher.epochs=1",
    "teacher.batch_size=16",
    "teacher.probe_epochs=1",
    "supernet.hidden_size=16",
    "supernet.max_cells=2",
    "search.epochs=2",
    "retrain.epochs=1",
    "run.latency_seq_length=16",
    "run.latency_repeats=1",
    "run.progress_bar=false",
]


def run_args(tmp_path: Path, teacher: Path, data_dir: Path, task: str = "sst2", extra=()):
    folder = {"sst2": "SST-2", "mrpc": "MRPC"}[task]
    return [
        "run",
        "--task",
        task,
        "--teacher",
        str(teacher),
        "--data-dir",
        str(data_dir / folder),
        *[item for pair in (("--set", s) for s in TINY) for item in pair],
        "--set",
        f'run.output_dir="{tmp_path / "runs"}"',
        "--set",
        f'run.cache_dir="{tmp_path / "cache"}"',
        *extra,
    ]


def complete_runs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    if not root.exists():
        return []
    return [p for p in root.iterdir() if not p.name.endswith(INCOMPLETE_SUFFIX)]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "mrpc"])
def test_run_writes_complete_folder_and_student_round_trips(
    tmp_path, tiny_teacher_dir, demo_data_dir, task, capsys
):
    # The single-sentence run also gets a FLOPs budget nothing fits: it says so, once.
    budget = ["--set", "search.max_student_flops=1"] if task == "sst2" else []
    assert main(run_args(tmp_path, tiny_teacher_dir, demo_data_dir, task, budget)) == 0
    (folder,) = complete_runs(tmp_path)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "genotype.json", "student.safetensors", "metrics.json"} <= names
    assert {"task.json", "tokenizer", "student_config.json", "cell.png"} <= names
    record = json.loads((folder / "metrics.json").read_text())
    metrics = record["metrics"]
    for key in (
        "dev/accuracy",
        "teacher/accuracy",
        "student/params",
        "student/flops",
        "latency/student_b1_ms",
        "latency/teacher_b32_ms",
        "speedup/b1",
        "speedup/b32",
    ):
        assert key in metrics, key
    # A pair student is timed on equal text too: each sentence at half the teacher's length.
    equal_text = {"latency/student_equal_text_b1_ms", "speedup/b1_equal_text"}
    assert (equal_text <= set(metrics)) == (task == "mrpc")
    if task == "mrpc":
        assert metrics["speedup/b1_equal_text"] == pytest.approx(
            metrics["latency/teacher_b1_ms"] / metrics["latency/student_equal_text_b1_ms"]
        )
    assert {"data", "teacher", "search", "retrain", "latency"} <= set(record["phase_seconds"])
    config = json.loads((folder / "config.json").read_text())
    assert config["search"]["epochs"] == 2 and config["task"]["name"] == task

    student = load_student(folder)
    assert student.num_parameters() == metrics["student/params"]
    ids = torch.randint(5, 30, (3, 16))
    mask = torch.ones_like(ids)
    first = student(ids, mask, ids, mask)
    second = load_student(folder)(ids, mask, ids, mask)
    assert torch.equal(first, second)
    out = capsys.readouterr()
    assert "run folder:" in out.out
    # The α the genotype came from: its entropy share, and a warning exactly when it is near 1.
    chosen = metrics["search/best_epoch"]
    history = json.loads((folder / "history.json").read_text())
    (epoch,) = [h for h in history["search"] if h["epoch"] == chosen]
    assert metrics["search/entropy_share"] == epoch["arch/entropy_share"]
    assert 0.0 < metrics["search/entropy_share"] <= 1.0
    assert ("the search did not decide" in out.err) == bool(metrics["search/undecided"])
    assert out.err.count("no derived student fits search.max_student_flops") == len(budget) // 2
    assert metrics.get("derive/within_budget") == (0.0 if budget else None)


@pytest.mark.slow
def test_second_run_is_a_cache_hit_with_zero_teacher_forward_passes(
    tmp_path, tiny_teacher_dir, demo_data_dir, monkeypatch
):
    from orchestrator.teacher import knowledge

    assert main(run_args(tmp_path, tiny_teacher_dir, demo_data_dir)) == 0
    calls = []
    original = knowledge.compute_knowledge

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(knowledge, "compute_knowledge", counting)
    from orchestrator.config import load_config
    from orchestrator.method.pipeline import prepare_task

    cfg = load_config(
        None,
        [
            *TINY,
            'task.name="sst2"',
            f'task.data_dir="{demo_data_dir / "SST-2"}"',
            f'teacher.name_or_path="{tiny_teacher_dir}"',
            f'run.cache_dir="{tmp_path / "cache"}"',
        ],
    )
    with knowledge.count_teacher_forwards() as counter:
        prepared = prepare_task(cfg)
    assert prepared.cache_hit
    assert counter.count == 0
    assert calls == []


def test_unknown_task_exits_2_without_a_run_folder(tmp_path, tiny_teacher_dir, capsys):
    args = ["run", "--task", "nope", "--teacher", str(tiny_teacher_dir)]
    args += ["--set", f'run.output_dir="{tmp_path / "runs"}"']
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope" in err and "\n" not in err
    assert complete_runs(tmp_path) == []


def test_the_teacher_comes_from_the_flag_the_config_or_a_set_and_is_never_guessed(
    tmp_path, tiny_teacher_dir, capsys
):
    base = ["run", "--task", "nope", "--set", f'run.output_dir="{tmp_path / "runs"}"']
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "error: no teacher: pass --teacher or set teacher.name_or_path in --config or --set"
    )
    config = tmp_path / "run.toml"
    config.write_text(f'[teacher]\nname_or_path = "{tiny_teacher_dir}"\n')
    for extra in (
        ["--config", str(config)],
        ["--set", f'teacher.name_or_path="{tiny_teacher_dir}"'],
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert "nope" in err and "teacher" not in err  # got past the teacher, to the task check
    assert complete_runs(tmp_path) == []


@pytest.mark.parametrize(
    "override, needle",
    [
        ("search.epochs=0", "search.epochs"),
        ("search.nonsense=1", "nonsense"),
        ("supernet.max_cells=0", "max_cells"),
        ("loss.efficiency_weight=-1", "efficiency_weight"),
        ("bogus.key=1", "bogus"),
        ("search.epochs=fast", "search.epochs"),
    ],
)
def test_invalid_config_exits_2(
    tmp_path, tiny_teacher_dir, demo_data_dir, override, needle, capsys
):
    args = run_args(tmp_path, tiny_teacher_dir, demo_data_dir, extra=("--set", override))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err
    assert complete_runs(tmp_path) == []


def test_missing_data_file_exits_2(tmp_path, tiny_teacher_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["run", "--task", "sst2", "--teacher", str(tiny_teacher_dir), "--data-dir", str(empty)]
    args += ["--set", f'run.output_dir="{tmp_path / "runs"}"']
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert complete_runs(tmp_path) == []


def test_teacher_with_wrong_label_count_exits_2(tmp_path, tiny_teacher_dir, demo_data_dir, capsys):
    from transformers import AutoModelForSequenceClassification

    wrong = tmp_path / "three-label-teacher"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_teacher_dir, num_labels=3, ignore_mismatched_sizes=True
    )
    model.save_pretrained(wrong)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_teacher_dir / name).exists():
            (wrong / name).write_bytes((tiny_teacher_dir / name).read_bytes())
    args = run_args(tmp_path, wrong, demo_data_dir, extra=("--set", "teacher.fine_tuned=true"))
    capsys.readouterr()  # drop the load report of building the wrong teacher above
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "label" in err
    assert complete_runs(tmp_path) == []


def test_failed_write_leaves_no_complete_folder(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from orchestrator.config import RunConfig
    from orchestrator.method import run_folder
    from searchspace import DerivedStudent, Edge, Genotype, SupernetConfig

    config = SupernetConfig(vocab_size=20, max_positions=8, hidden_size=8, max_cells=1)
    genotype = Genotype((Edge(2, 0, "identity"),), 1, 3)
    result = SimpleNamespace(
        genotype=genotype,
        student=DerivedStudent(config, genotype),
        supernet_config=config,
        metrics={},
        phase_seconds={},
        history={},
    )

    def broken(folder, **kwargs):
        (folder / "student.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(run_folder, "write_student_package", broken)
    with pytest.raises(OSError):
        run_folder.write_run_folder(RunConfig(), result=result, prepared=None, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.endswith(lines[0]), err
    return lines[0]


def test_tokenizer_bigger_than_teacher_embedding_exits_2(
    tmp_path, tiny_teacher_dir, demo_data_dir, capsys
):
    from transformers import AutoTokenizer, BertTokenizer

    mismatched = tmp_path / "mismatched-teacher"
    mismatched.mkdir()
    for name in ("config.json", "model.safetensors"):
        (mismatched / name).write_bytes((tiny_teacher_dir / name).read_bytes())
    vocab = AutoTokenizer.from_pretrained(tiny_teacher_dir).get_vocab()
    vocab.update({f"extra{i}": len(vocab) + i for i in range(50)})
    BertTokenizer(vocab=vocab).save_pretrained(mismatched)
    assert main(run_args(tmp_path, mismatched, demo_data_dir)) == 2
    line = _one_error_line(capsys)
    assert "tokenizer" in line and "embedding" in line
    assert complete_runs(tmp_path) == []


@pytest.mark.parametrize(
    "content, needle",
    [
        ("text\tlabel\nsome words\t1\n", "sentence"),  # the text column is missing
        ("sentence\tlabel\nsome words\t7\n", "7"),  # a label outside {0, 1}
        ("sentence\tlabel\n", "no data rows"),  # a header and no rows
    ],
)
def test_malformed_data_exits_2(tmp_path, tiny_teacher_dir, demo_data_dir, content, needle, capsys):
    folder = tmp_path / "data" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(content, encoding="utf-8")
    (folder / "dev.tsv").write_bytes((demo_data_dir / "SST-2" / "dev.tsv").read_bytes())
    assert main(run_args(tmp_path, tiny_teacher_dir, tmp_path / "data")) == 2
    line = _one_error_line(capsys)
    assert needle in line.lower(), line
    assert complete_runs(tmp_path) == []
