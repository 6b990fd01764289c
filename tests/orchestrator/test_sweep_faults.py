"""Sweeps under fault injection, each a real local sweep in a subprocess: a SIGKILLed driver
then ``--resume``, a SIGKILLed trial worker, Ctrl-C, a disk running full, and a Ray cluster that
already runs on the machine. Afterwards the stores are read back: every planned trial exactly
once, nothing left RUNNING."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from sweeps import (
    TASKS,
    adabert,
    environment,
    finish,
    max_step,
    mlflow_runs,
    optuna_states,
    optuna_trials,
    run,
    session_pids,
    start,
    summary,
    wait_for,
    wait_session_gone,
    write_sweep,
)

pytestmark = pytest.mark.slow


def _assert_nothing_running(folder: Path, name: str, tasks=TASKS) -> None:
    _, _, runs = mlflow_runs(folder, name)
    running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert not running, running
    for task in tasks:
        assert "RUNNING" not in optuna_states(folder, name, task)


def _children(folder: Path, name: str, task: str):
    _, _, runs = mlflow_runs(folder, name)
    return [
        r
        for r in runs
        if r.data.tags.get("adabert.role") == "trial" and r.data.tags.get("adabert.task") == task
    ]


def _any_state(folder: Path, name: str, state: str, tasks=TASKS) -> bool:
    return any(state in optuna_states(folder, name, task) for task in tasks)


def test_a_killed_driver_is_resumed_and_every_trial_recorded_once(tmp_path, tiny_teacher_dir):
    name, planned = "kd", 2
    config = write_sweep(tmp_path, tiny_teacher_dir, name=name, trials=planned)
    folder = tmp_path / name
    process = start(adabert("sweep", str(config)), cwd=tmp_path)
    wait_for(lambda: _any_state(folder, name, "COMPLETE"), timeout=600,
             what="a complete trial", process=process)  # fmt: skip
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    wait_session_gone(process.pid)

    result = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    assert summary(folder)["state"] == "complete"
    _assert_nothing_running(folder, name)
    for task in TASKS:
        trials = optuna_trials(folder, name, task)
        assert sorted(t.number for t in trials) == list(range(planned)), task
        assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
        children = _children(folder, name, task)
        assert len(children) == planned, [c.info.run_name for c in children]
        assert sorted(c.info.run_name for c in children) == [
            f"{task}-t{n:02d}" for n in range(planned)
        ]
        assert {t.user_attrs["mlflow_run_id"] for t in trials} == {c.info.run_id for c in children}


def _trial_workers(sid: int) -> list[int]:
    workers = []
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if title.startswith("ray::ImplicitFunc"):
                workers.append(pid)
    return workers


def test_a_killed_trial_worker_resumes_from_its_checkpoint_with_the_same_result(
    tmp_path, tiny_teacher_dir, ray_head
):
    """Also: an unrelated Ray cluster runs on this machine and RAY_ADDRESS points at it; the
    sweep still starts its own local Ray."""
    task = "sentiment"
    common = {"trials": 1, "scheduler": "fifo", "search_epochs": 4, "tasks": (task,)}
    (tmp_path / "calm").mkdir()
    (tmp_path / "hit").mkdir()
    calm = write_sweep(tmp_path / "calm", tiny_teacher_dir, name="calm", **common)
    env = environment(RAY_ADDRESS=ray_head.gcs)
    undisturbed = run(adabert("sweep", str(calm)), cwd=tmp_path, env=env, timeout=600)
    assert undisturbed.returncode == 0, undisturbed.stdout[-6000:]
    assert "on a local Ray on 127.0.0.1" in undisturbed.stdout
    expected = summary(tmp_path / "calm" / "calm")["tasks"][0]["trials"][0]

    hit = write_sweep(tmp_path / "hit", tiny_teacher_dir, name="hit", **common)
    folder = tmp_path / "hit" / "hit"
    process = start(adabert("sweep", str(hit)), cwd=tmp_path)

    def two_epochs() -> int:
        step = max_step(folder, task)
        return step if step >= 2 else 0

    reached = wait_for(two_epochs, timeout=600, what="two search epochs", process=process)
    workers = wait_for(lambda: _trial_workers(process.pid), timeout=60, what="the trial worker")
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    result = finish(process, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]

    trial = summary(folder)["tasks"][0]["trials"][0]
    assert trial["state"] == "complete"
    assert trial["genotype_hash"] == expected["genotype_hash"]
    assert trial["metric"] == expected["metric"]
    (child,) = _children(folder, "hit", task)
    resumed_from = int(child.data.tags["adabert.resumed_from_epoch"])
    assert reached - 1 <= resumed_from < 4 + 1  # at most the epoch under way is run again
    client, _, _ = mlflow_runs(folder, "hit")
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "train/loss_total")]
    assert len(steps) - len(set(steps)) <= 1, steps  # epochs reported twice
    _assert_nothing_running(folder, "hit", (task,))


def test_ctrl_c_closes_every_record_and_resume_finishes(tmp_path, tiny_teacher_dir):
    name, planned = "cc", 2
    config = write_sweep(tmp_path, tiny_teacher_dir, name=name, trials=planned, search_epochs=4)
    folder = tmp_path / name
    process = start(adabert("sweep", str(config)), cwd=tmp_path)
    wait_for(lambda: all(max_step(folder, t) >= 1 for t in TASKS), timeout=600,
             what="both tasks training", process=process)  # fmt: skip
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
    result = finish(process, timeout=180)
    assert result.returncode == 130, result.stdout[-6000:]
    assert "interrupted: resume with" in result.stdout
    assert len(result.stdout.splitlines()) < 200
    _assert_nothing_running(folder, name)
    failed = {task: [t for t in optuna_trials(folder, name, task) if t.state.name == "FAIL"]
              for task in TASKS}  # fmt: skip
    assert all(t.user_attrs["adabert.ended"] == "interrupted" for ts in failed.values() for t in ts)
    assert any(failed.values())

    resumed = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-6000:]
    _assert_nothing_running(folder, name)
    for task in TASKS:
        assert len(_children(folder, name, task)) == planned
        trials = optuna_trials(folder, name, task)
        interrupted = {t.number for t in failed[task]}
        copies = [t for t in trials if "adabert.resumed_from" in t.user_attrs]
        # Each interrupted trial that Tune resumed is recorded again with its outcome.
        assert {t.user_attrs["adabert.resumed_from"] for t in copies} <= interrupted
        assert len(trials) == planned + len(copies)


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_disk_running_full_stops_the_sweep_with_final_records(small_disk, tiny_teacher_dir):
    name = "full"
    config = write_sweep(small_disk, tiny_teacher_dir, name=name, trials=2, min_free_mb=32)
    folder = small_disk / name
    process = start(adabert("sweep", str(config)), cwd=small_disk)
    wait_for(lambda: _any_state(folder, name, "COMPLETE"), timeout=600,
             what="a complete trial", process=process)  # fmt: skip
    ballast = small_disk / "ballast"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    with open(ballast, "wb") as handle:  # leave about 16 MB: below the 32 MB reserve
        handle.write(b"\0" * max(0, free - 16 * 2**20))
    result = finish(process, timeout=300)
    assert result.returncode == 1, result.stdout[-6000:]
    assert "stopped:" in result.stdout and "MB free" in result.stdout
    assert len(result.stdout.splitlines()) < 200
    _assert_nothing_running(folder, name)
    assert summary(folder)["state"] == "stopped"

    ballast.unlink()
    resumed = run(adabert("sweep", str(folder), "--resume"), cwd=small_disk, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-6000:]
    assert summary(folder)["state"] == "complete"
    _assert_nothing_running(folder, name)


def test_a_failed_task_ends_its_records_and_spares_the_other(tmp_path, tiny_teacher_dir):
    """The paraphrase teacher's weights are corrupt: its config and tokenizer pass the checks,
    loading it fails inside Ray. The sentiment task still finishes."""
    broken = tmp_path / "broken-teacher"
    shutil.copytree(tiny_teacher_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    name = "ft"
    config = write_sweep(
        tmp_path, tiny_teacher_dir, name=name, trials=1,
        overrides={"paraphrase": [f"teacher.name_or_path={json.dumps(str(broken))}"]},
    )  # fmt: skip
    folder = tmp_path / name
    result = run(adabert("sweep", str(config)), cwd=tmp_path, timeout=600)
    assert result.returncode == 1, result.stdout[-6000:]
    assert "task paraphrase failed:" in result.stdout
    assert len(result.stdout.splitlines()) < 200
    outcome = summary(folder)
    assert outcome["state"] == "failed" and list(outcome["failures"]) == ["paraphrase"]
    assert [t["task"] for t in outcome["tasks"]] == ["sentiment"]
    _assert_nothing_running(folder, name)
    _, _, runs = mlflow_runs(folder, name)
    parents = {r.data.tags["adabert.task"]: r.info.status for r in runs
               if r.data.tags.get("adabert.role") == "task"}  # fmt: skip
    assert parents == {"sentiment": "FINISHED", "paraphrase": "FAILED"}
    assert (folder / "errors" / "paraphrase.txt").is_file()

    again = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=600)
    assert again.returncode == 1 and "task paraphrase failed:" in again.stdout
    assert "sentiment" not in [line.split(":")[0] for line in again.stdout.splitlines()]
    _assert_nothing_running(folder, name)
