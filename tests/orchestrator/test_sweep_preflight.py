"""Bad input to ``adabert sweep`` and ``adabert run`` is one ``error:`` line and exit 2, found
before Ray starts and before anything is written: a re-run after fixing it is never blocked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sweeps import write_sweep

from orchestrator.cli import main


def _exit_2_one_line(capsys, argv: list[str], needle: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert needle in err, err
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()
    return err


@pytest.fixture
def sweep_file(tmp_path, tiny_teacher_dir):
    return write_sweep(tmp_path, tiny_teacher_dir, name="bad")


def _entries(tmp_path: Path, teacher: Path, entry: str, *, extra: str = "") -> Path:
    text = write_sweep(tmp_path, teacher, name="bad").read_text()
    head, _, space = text.partition("[space]")
    head = head.split("[[tasks]]")[0]
    path = tmp_path / "custom.toml"
    path.write_text(f"{head}{extra}\n{entry}\n[space]{space}")
    return path


def _no_folder(tmp_path: Path) -> None:
    assert not (tmp_path / "bad").exists()
    assert not list(tmp_path.glob("**/sweep.json"))


@pytest.mark.parametrize(
    "override, needle",
    [
        ("sweep.name=5", "sweep.name must be a string"),
        ("sweep.seed=1.5", "sweep.seed must be an integer"),
        ("sweep.cpus_per_trial=true", "sweep.cpus_per_trial must be a number"),
        ("sweep.trials_per_task=abc", "sweep.trials_per_task must be an integer"),
        ("sweep.register_best=1", "sweep.register_best must be true or false"),
        ("sweep.grace_period=2.5", "sweep.grace_period must be an integer"),
        ("sweep.root=7", "sweep.root must be a string"),
        ("sweep.max_failures=-1", "sweep.max_failures"),
    ],
)
def test_wrong_typed_sweep_settings(capsys, tmp_path, sweep_file, override, needle):
    _exit_2_one_line(capsys, ["sweep", str(sweep_file), "--set", override], needle)
    _no_folder(tmp_path)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("sweep.name='../../escape'", "sweep.name must be"),
        ("sweep.name='a/b'", "sweep.name must be"),
        ("""sweep.name="bob's" """, "sweep.name must be"),
        ("sweep.name='..'", "sweep.name must be"),
        ("sweep.name=''", "sweep.name must be"),
    ],
)
def test_path_like_and_quoted_sweep_names(capsys, tmp_path, sweep_file, override, needle):
    _exit_2_one_line(capsys, ["sweep", str(sweep_file), "--set", override.strip()], needle)
    _no_folder(tmp_path)
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("name", ["../../escape", "bob's", "a b", "x/y", '"q"'])
def test_path_like_and_quoted_task_names(capsys, tmp_path, tiny_teacher_dir, name):
    entry = f"[[tasks]]\nname = {json.dumps(name)}\ntrain_file = 'a.csv'\ndev_file = 'b.csv'\n"
    path = _entries(tmp_path, tiny_teacher_dir, entry)
    _exit_2_one_line(capsys, ["sweep", str(path)], "tasks[0].name must be")
    _no_folder(tmp_path)


def test_run_refuses_a_path_like_task_name(capsys, tmp_path, tiny_teacher_dir):
    argv = ["run", "--task", "../../escape", "--teacher", str(tiny_teacher_dir),
            "--set", f"run.output_dir='{tmp_path / 'runs'}'"]  # fmt: skip
    _exit_2_one_line(capsys, argv, "task.name must be")
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_sweep_root_must_be_a_writable_folder(capsys, tmp_path, sweep_file, where):
    if where == "file":
        root = tmp_path / "occupied"
        root.write_text("not a folder")
        needle = "is a file, not a folder"
    else:
        root, needle = Path("/proc/adabert-sweeps"), "is not writable"  # even root cannot
    _exit_2_one_line(capsys, ["sweep", str(sweep_file), "--set", f"sweep.root='{root}'"], needle)
    _no_folder(tmp_path)


def test_an_unwritable_cache_folder_is_found_first(capsys, tmp_path, sweep_file):
    argv = ["sweep", str(sweep_file), "--set", "base.run.cache_dir='/proc/adabert-cache'"]
    _exit_2_one_line(capsys, argv, "run.cache_dir")
    _no_folder(tmp_path)


def test_too_little_free_space_is_refused(capsys, tmp_path, sweep_file):
    argv = ["sweep", str(sweep_file), "--set", "sweep.min_free_mb=1000000000"]
    _exit_2_one_line(capsys, argv, "less than the 1000000000 MB reserve")
    _no_folder(tmp_path)


def test_a_missing_train_file(capsys, tmp_path, tiny_teacher_dir):
    entry = (
        f"[[tasks]]\nname = 'mine'\ntrain_file = '{tmp_path / 'missing.csv'}'\n"
        f"dev_file = '{tmp_path / 'missing.csv'}'\ntext_a = 'text'\nlabels = ['a', 'b']\n"
    )
    path = _entries(tmp_path, tiny_teacher_dir, entry)
    _exit_2_one_line(capsys, ["sweep", str(path)], "missing.csv does not exist")
    _no_folder(tmp_path)


def test_a_data_file_without_the_text_column(capsys, tmp_path, tiny_teacher_dir):
    data = tmp_path / "train.csv"
    data.write_text("review,label\ngood film,pos\nbad film,neg\n")
    entry = (
        f"[[tasks]]\nname = 'mine'\ntrain_file = '{data}'\ndev_file = '{data}'\n"
        "text_a = 'text'\nlabels = ['neg', 'pos']\n"
    )
    path = _entries(tmp_path, tiny_teacher_dir, entry)
    _exit_2_one_line(capsys, ["sweep", str(path)], "text")
    _no_folder(tmp_path)


@pytest.mark.parametrize("kind", ["empty folder", "no weights", "missing", "hub offline"])
def test_a_teacher_that_is_not_a_model(capsys, tmp_path, sweep_file, tiny_teacher_dir, kind):
    if kind == "empty folder":
        teacher = tmp_path / "empty"
        teacher.mkdir()
        needle = "has no config.json"
    elif kind == "no weights":
        teacher = tmp_path / "configonly"
        teacher.mkdir()
        (teacher / "config.json").write_text((tiny_teacher_dir / "config.json").read_text())
        needle = "has no weights"
    elif kind == "missing":
        teacher, needle = tmp_path / "nowhere", "teacher folder not found"
    else:
        teacher, needle = "no-such-org/no-such-model-xyz", "cannot load teacher"
    argv = ["sweep", str(sweep_file), "--set", f"base.teacher.name_or_path='{teacher}'"]
    _exit_2_one_line(capsys, argv, needle)
    _no_folder(tmp_path)


def test_resume_of_a_sweep_that_never_existed(capsys, tmp_path, sweep_file):
    _exit_2_one_line(capsys, ["sweep", str(sweep_file), "--resume"], "no sweep to resume")
    _no_folder(tmp_path)


def test_a_folder_that_is_not_a_sweep(capsys, tmp_path):
    _exit_2_one_line(capsys, ["sweep", str(tmp_path), "--resume"], "without a sweep record")


def test_an_existing_sweep_needs_resume_and_its_own_settings(capsys, tmp_path, sweep_file):
    from orchestrator.sweep.config import load_sweep_config

    folder = tmp_path / "bad"
    folder.mkdir()
    raw = load_sweep_config(str(sweep_file)).raw
    (folder / "sweep.json").write_text(json.dumps({"format": 1, "config": raw}))
    _exit_2_one_line(capsys, ["sweep", str(sweep_file)], "pass --resume")
    argv = ["sweep", str(sweep_file), "--resume", "--set", "sweep.trials_per_task=9"]
    _exit_2_one_line(capsys, argv, "sweep.trials_per_task")
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.json"]


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_run_output_folder_is_checked_before_the_run(capsys, tmp_path, tiny_teacher_dir, where):
    if where == "file":
        output = tmp_path / "runs"
        output.write_text("a file")
        needle = "is a file, not a folder"
    else:
        output, needle = Path("/proc/adabert-runs"), "is not writable"
    argv = ["run", "--task", "sst2", "--teacher", str(tiny_teacher_dir),
            "--set", f"run.output_dir='{output}'",
            "--set", f"run.cache_dir='{tmp_path / 'cache'}'"]  # fmt: skip
    err = _exit_2_one_line(capsys, argv, "run.output_dir")
    assert needle in err
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("sweep.optuna_storage='postgresql://bob:hunter2@db/optuna'", "password in plain text"),
        ("sweep.tracking_uri='postgresql://bob:hunter2@db/mlflow'", "password in plain text"),
        ("sweep.optuna_storage='postgresql://bob:${ADABERT_TEST_UNSET_PW}@db/optuna'",
         "ADABERT_TEST_UNSET_PW"),
    ],
)  # fmt: skip
def test_store_passwords_come_from_the_environment(
    capsys, tmp_path, sweep_file, monkeypatch, override, needle
):
    monkeypatch.delenv("ADABERT_TEST_UNSET_PW", raising=False)
    err = _exit_2_one_line(capsys, ["sweep", str(sweep_file), "--set", override], needle)
    assert "hunter2" not in err
    _no_folder(tmp_path)


def test_a_password_reference_is_recorded_as_written_and_expanded_only_to_connect(monkeypatch):
    from orchestrator.sweep import secrets

    monkeypatch.setenv("ADABERT_TEST_PW", "s3cr3t")
    url = "postgresql://bob:${ADABERT_TEST_PW}@db:5432/optuna"
    secrets.check_no_plain_password(url, "sweep.optuna_storage")  # a reference is fine
    assert secrets.expand(url) == "postgresql://bob:s3cr3t@db:5432/optuna"
    assert secrets.references(url) == ["ADABERT_TEST_PW"]
    from orchestrator.sweep.config import load_sweep_config

    config = load_sweep_config("demo", [f"sweep.optuna_storage={json.dumps(url)}"])
    assert "s3cr3t" not in json.dumps(config.raw) + json.dumps(config.to_dict())
