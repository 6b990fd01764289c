"""A real ``adabert sweep --smoke-test`` on local Ray: two tasks, two trials each, read back
through the MLflow and Optuna APIs (not through our own files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from searchspace import Genotype

REPO = Path(__file__).resolve().parents[2]
SWEEP = """
[sweep]
name = "smoke"
root = "{root}"
max_concurrent_trials = 1
cpus_per_trial = 1.0
second_objective = "params"
object_store_mb = 128
scheduler = "asha"

[base.teacher]
name_or_path = "{teacher}"
batch_size = 16

[base.supernet]
hidden_size = 16
max_cells = 2
mixed_op_mode = "sampled"

[base.run]
cache_dir = "{root}/cache"
latency_seq_length = 32

[[tasks]]
demo = "sentiment"

[[tasks]]
demo = "paraphrase"

[space]
"loss.efficiency_weight" = {{ type = "float", low = 0.5, high = 8.0, log = true }}
"supernet.max_cells" = {{ type = "int", low = 1, high = 2 }}
"""
TASKS = ("sentiment", "paraphrase")


def run_command(args: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run in its own process group, so a timeout kills Ray's processes along with it."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled")
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"{args} timed out:\n{out[-4000:]}")
    return subprocess.CompletedProcess(args, process.returncode, out, "")


@pytest.fixture(scope="module")
def smoke_sweep(tiny_teacher_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    config = root / "smoke.toml"
    config.write_text(SWEEP.format(root=root, teacher=tiny_teacher_dir))
    command = [sys.executable, "-m", "orchestrator", "sweep", str(config), "--smoke-test"]
    result = run_command(command, cwd=root, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    folder = root / "smoke"
    return folder, json.loads((folder / "summary.json").read_text()), result.stdout


def test_sweep_prints_progress_and_a_results_table(smoke_sweep):
    folder, summary, stdout = smoke_sweep
    assert "running" in stdout and "best" in stdout  # the progress view
    assert "| task | metric | teacher | best student |" in stdout
    assert f"adabert ui --sweep {folder}" in stdout
    assert [t["task"] for t in summary["tasks"]] == list(TASKS)
    assert summary["failures"] == {}
    assert 0.0 <= summary["overhead_share"] < 1.0
    assert summary["work_seconds"] > 0


def test_mlflow_has_parents_children_artifacts_statuses_and_a_registered_model(smoke_sweep):
    import mlflow
    from mlflow import MlflowClient

    folder, summary, _ = smoke_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("adabert-smoke")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`adabert.role` = 'task'"
    )
    assert sorted(p.data.tags["adabert.task"] for p in parents) == sorted(TASKS)
    for parent in parents:
        task = parent.data.tags["adabert.task"]
        assert parent.info.status == "FINISHED"
        assert "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
        children = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        )
        assert len(children) == 2, task
        statuses = sorted(c.info.status for c in children)
        assert set(statuses) <= {"FINISHED", "KILLED"} and "FINISHED" in statuses, statuses
        task_summary = next(t for t in summary["tasks"] if t["task"] == task)
        expected = sorted(
            "FINISHED" if r["status"] == "complete" else "KILLED" for r in task_summary["trials"]
        )
        assert statuses == expected
        for child in children:
            run_id = child.info.run_id
            genotype = Genotype.from_dict(
                mlflow.artifacts.load_dict(f"runs:/{run_id}/architecture/genotype.json")
            )
            assert 1 <= genotype.num_cells <= 2
            metric = task_summary["metric_name"]
            history = client.get_metric_history(run_id, metric)
            assert history and all(0.0 <= m.value <= 1.0 for m in history)
            assert client.get_metric_history(run_id, "train/loss_efficiency")
            if child.info.status == "FINISHED":
                assert child.data.metrics["student/params"] > 0
                names = {a.path for a in client.list_artifacts(run_id, "architecture")}
                assert "architecture/cell.png" in names
        model = mlflow.pytorch.load_model(f"models:/adabert-smoke-{task}/1")
        ids = torch.randint(5, 30, (3, 12))
        mask = torch.ones_like(ids)
        assert model(ids, mask, ids, mask).shape == (3, 2)


def test_optuna_has_one_study_per_task_with_every_trial_final(smoke_sweep):
    import optuna

    folder, summary, _ = smoke_sweep
    storage = f"sqlite:///{folder / 'optuna.db'}"
    studies = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert studies == {f"adabert-smoke-{task}" for task in TASKS}
    for task in TASKS:
        study = optuna.load_study(study_name=f"adabert-smoke-{task}", storage=storage)
        states = [t.state for t in study.trials]
        assert len(states) == 2
        assert all(s.is_finished() for s in states), states
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert all(len(t.values) == 2 for t in complete)  # task metric and student params
        task_summary = next(t for t in summary["tasks"] if t["task"] == task)
        pruned = sum(r["status"] == "pruned" for r in task_summary["trials"])
        assert pruned == sum(s == optuna.trial.TrialState.PRUNED for s in states)
        assert study.best_trials  # the Pareto front is not empty
