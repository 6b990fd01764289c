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


def _parent_statuses(folder: Path, name: str) -> dict[str, str]:
    _, _, runs = mlflow_runs(folder, name)
    return {
        r.data.tags["adabert.task"]: r.info.status
        for r in runs
        if r.data.tags.get("adabert.role") == "task"
    }


def test_a_killed_driver_and_a_failing_task_then_resume(tmp_path, tiny_teacher_dir, sweep_cache):
    """Two tasks: "sentiment", healthy, and "broken", whose teacher's weights are corrupt (its
    config and tokenizer pass the checks; loading it fails inside Ray). The driver is SIGKILLed
    after the first trial completes; ``--resume`` finishes the healthy task, each planned trial
    once in Optuna and once in MLflow, and reruns only what failed. (Two healthy tasks side by
    side are the subject of test_sweep.py and of the Ctrl-C test.)"""
    healthy = ("sentiment",)
    broken = tmp_path / "broken-teacher"
    shutil.copytree(tiny_teacher_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    name, planned = "kd", 2
    config = write_sweep(
        tmp_path, tiny_teacher_dir, name=name, trials=planned, cache=sweep_cache,
        tasks=(*healthy, "broken=paraphrase"),
        overrides={"broken": [f"teacher.name_or_path={json.dumps(str(broken))}"]},
    )  # fmt: skip
    folder = tmp_path / name
    process = start(adabert("sweep", str(config)), cwd=tmp_path)
    wait_for(lambda: _any_state(folder, name, "COMPLETE", healthy), timeout=600,
             what="a complete trial", process=process)  # fmt: skip
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    wait_session_gone(process.pid)

    result = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=900)
    assert result.returncode == 1, result.stdout[-6000:]
    assert "task broken failed:" in result.stdout
    assert len(result.stdout.splitlines()) < 200
    outcome = summary(folder)
    assert outcome["state"] == "failed" and list(outcome["failures"]) == ["broken"]
    assert [t["task"] for t in outcome["tasks"]] == list(healthy)
    assert (folder / "errors" / "broken.txt").is_file()
    _assert_nothing_running(folder, name, (*healthy, "broken"))
    assert _parent_statuses(folder, name) == {"sentiment": "FINISHED", "broken": "FAILED"}
    for task in healthy:
        trials = optuna_trials(folder, name, task)
        assert sorted(t.number for t in trials) == list(range(planned)), task
        assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
        children = _children(folder, name, task)
        assert sorted(c.info.run_name for c in children) == [
            f"{task}-t{n:02d}" for n in range(planned)
        ]
        assert {t.user_attrs["mlflow_run_id"] for t in trials} == {c.info.run_id for c in children}

    again = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=600)
    assert again.returncode == 1 and "task broken failed:" in again.stdout
    assert "sweep kd: 1 task(s)" in again.stdout  # the finished tasks are not run again
    assert _parent_statuses(folder, name)["sentiment"] == "FINISHED"
    _assert_nothing_running(folder, name, (*healthy, "broken"))

    # The cause mended (as a user frees a full disk), the next resume completes the task.
    shutil.copy(tiny_teacher_dir / "model.safetensors", broken / "model.safetensors")
    mended = run(adabert("sweep", str(folder), "--resume"), cwd=tmp_path, timeout=600)
    assert mended.returncode == 0, mended.stdout[-6000:]
    outcome = summary(folder)
    assert outcome["state"] == "complete" and not outcome["failures"]
    assert sorted(t["task"] for t in outcome["tasks"]) == ["broken", "sentiment"]
    assert not (folder / "errors" / "broken.txt").exists()  # no stale error beside a result
    assert _parent_statuses(folder, name) == {"sentiment": "FINISHED", "broken": "FINISHED"}
    _assert_nothing_running(folder, name, (*healthy, "broken"))


def _trial_workers(sid: int) -> list[int]:
    workers = []
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if title.startswith("ray::ImplicitFunc"):
                workers.append(pid)
    return workers


def _reference_result(config: Path, folder: Path, task: str):
    """The same trial run undisturbed, in this process: the default point of the study is the
    base config, the data is the sweep's, and both run on one thread (``run.threads``)."""
    from orchestrator.method.pipeline import prepare_task, run_one_task
    from orchestrator.sweep.config import load_sweep_config, task_run_config

    sweep_config = load_sweep_config(str(config))
    (entry,) = [t for t in sweep_config.tasks if t.name == task]
    cfg = task_run_config(sweep_config, entry, data_root=folder / "data")
    return run_one_task(cfg, prepare_task(cfg, progress=False))


def test_a_killed_trial_worker_resumes_from_its_checkpoint_with_the_same_result(
    tmp_path, tiny_teacher_dir, sweep_cache, ray_head
):
    """Also: an unrelated Ray cluster runs on this machine and RAY_ADDRESS points at it; the
    sweep still starts its own local Ray."""
    task, epochs = "sentiment", 4
    config = write_sweep(
        tmp_path, tiny_teacher_dir, name="hit", trials=1, scheduler="fifo",
        search_epochs=epochs, tasks=(task,), cache=sweep_cache,
    )  # fmt: skip
    folder = tmp_path / "hit"
    process = start(adabert("sweep", str(config)), cwd=tmp_path,
                    env=environment(RAY_ADDRESS=ray_head.gcs))  # fmt: skip

    def two_epochs() -> int:
        step = max_step(folder, task)
        return step if step >= 2 else 0

    reached = wait_for(two_epochs, timeout=600, what="two search epochs", process=process)
    workers = wait_for(lambda: _trial_workers(process.pid), timeout=60, what="the trial worker")
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    result = finish(process, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "on a local Ray on 127.0.0.1" in result.stdout

    trial = summary(folder)["tasks"][0]["trials"][0]
    assert trial["state"] == "complete"
    expected = _reference_result(config, folder, task)
    assert trial["genotype_hash"] == expected.genotype.hash
    assert trial["metric"] == expected.score
    (child,) = _children(folder, "hit", task)
    resumed_from = int(child.data.tags["adabert.resumed_from_epoch"])
    assert reached - 1 <= resumed_from <= epochs  # at most the epoch under way runs again
    client, _, _ = mlflow_runs(folder, "hit")
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "train/loss_total")]
    assert len(steps) - len(set(steps)) <= 1, steps  # epochs reported twice
    _assert_nothing_running(folder, "hit", (task,))


def test_ctrl_c_closes_every_record_and_resume_finishes(tmp_path, tiny_teacher_dir, sweep_cache):
    name, planned = "cc", 1
    # The Ctrl-C goes as soon as one task has trained an epoch, with many more to go: the tiny
    # epochs take about 2 s, and with 3 or 8 of them both trials finished before the poll saw
    # one (reads of the MLflow store can miss while two trials write to it); 20 leave about 40 s.
    config = write_sweep(
        tmp_path, tiny_teacher_dir, name=name, trials=planned, search_epochs=20, cache=sweep_cache
    )
    folder = tmp_path / name
    process = start(adabert("sweep", str(config)), cwd=tmp_path)
    wait_for(lambda: any(max_step(folder, t) >= 1 for t in TASKS), timeout=600,
             what="a task training", process=process)  # fmt: skip
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


def test_a_disk_running_full_stops_the_sweep_with_final_records(
    small_disk, tiny_teacher_dir, sweep_cache
):
    """Resuming after space is freed is the path of the Ctrl-C test (state "stopped")."""
    name = "full"
    config = write_sweep(
        small_disk, tiny_teacher_dir, name=name, trials=2, min_free_mb=32, cache=sweep_cache
    )
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
    assert f"adabert sweep {folder} --resume" in result.stdout
    assert len(result.stdout.splitlines()) < 200
    _assert_nothing_running(folder, name)
    assert summary(folder)["state"] == "stopped"
