"""A real two-task sweep on local Ray with two concurrent trials per task, read back through
MLflow, Optuna and Ray Tune (not through our own files): every trial ran on its own task's data,
every record is final and linked to the others, the registered student classifies raw text
without pickle, and the local Ray listened on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import free_port
from sweeps import (
    TASKS,
    adabert,
    environment,
    finish,
    kill_session,
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
NAME, TRIALS = "two", 2


def _listening(sid: int) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP socket of the sweep's processes."""
    pids = set(session_pids(sid))
    found = []
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    for line in lines:
        fields = line.split()
        owners = [part for part in line.split("pid=")[1:]]
        if any(int(owner.split(",")[0]) in pids for owner in owners):
            found.append((fields[3], fields[-1]))
    return found


@pytest.fixture(scope="module")
def sweep(tiny_teacher_dir, tmp_path_factory, sweep_cache):
    root = tmp_path_factory.mktemp("sweeps")
    config = write_sweep(
        root,
        tiny_teacher_dir,
        name=NAME,
        trials=TRIALS,
        concurrent=2,
        log_model=True,
        cache=sweep_cache,
        train_size=256,  # enough to learn: a student better than a constant is registered
        retrain_epochs=3,
    )
    process = start(adabert("sweep", str(config)), cwd=root)
    sockets = []
    if shutil.which("ss"):
        folder = root / NAME

        def trials_running():
            return any("RUNNING" in optuna_states(folder, NAME, task) for task in TASKS)

        wait_for(trials_running, timeout=300, what="a running trial", process=process)
        sockets = _listening(process.pid)
    result = finish(process, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    return root / NAME, result.stdout, sockets, config


def _parents(folder: Path):
    client, experiment, runs = mlflow_runs(folder, NAME)
    parents = {
        r.data.tags["adabert.task"]: r for r in runs if r.data.tags.get("adabert.role") == "task"
    }
    children = [r for r in runs if r.data.tags.get("adabert.role") == "trial"]
    return client, parents, children


def test_sweep_prints_progress_and_a_table_of_every_trial(sweep):
    folder, stdout, _, _ = sweep
    assert "running" in stdout and "best" in stdout  # the progress view
    assert "| task | metric | teacher | champion |" in stdout
    assert "Every trial:" in stdout and f"adabert ui --sweep {folder}" in stdout
    result = summary(folder)
    assert result["state"] == "complete" and result["failures"] == {}
    assert [t["task"] for t in result["tasks"]] == list(TASKS)
    for task in result["tasks"]:
        assert sorted(t["number"] for t in task["trials"]) == list(range(TRIALS))
        for row in task["trials"]:
            assert f"| {task['task']} | t{row['number']:02d}" in stdout


def test_every_trial_ran_on_its_own_task_and_data(sweep):
    folder, _, _, _ = sweep
    _, parents, children = _parents(folder)
    assert sorted(parents) == sorted(TASKS)
    fingerprints = {p.data.tags["adabert.data_fingerprint"] for p in parents.values()}
    assert len(fingerprints) == len(TASKS)  # the two tasks have different data
    assert len(children) == TRIALS * len(TASKS)
    by_id = {p.info.run_id: task for task, p in parents.items()}
    for child in children:
        task = by_id[child.data.tags["mlflow.parentRunId"]]
        assert child.data.tags["adabert.task"] == task
        assert child.data.params["task.name"] == task
        assert (
            child.data.tags["adabert.data_fingerprint"]
            == parents[task].data.tags["adabert.data_fingerprint"]
        )
        assert Path(child.data.params["task.train_file"]).parent.name == task


def test_tune_results_are_readable_and_name_their_task(sweep):
    from ray.tune import ExperimentAnalysis

    folder, _, _, _ = sweep
    for task in TASKS:
        frame = ExperimentAnalysis(str(folder / "tune" / task)).dataframe()
        assert len(frame) == TRIALS
        assert set(frame["config/adabert.task"]) == {task}


def test_records_are_final_and_linked_both_ways(sweep):
    folder, _, _, _ = sweep
    client, parents, children = _parents(folder)
    assert all(p.info.status == "FINISHED" for p in parents.values())
    runs = {c.info.run_id: c for c in children}
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    for task in TASKS:
        trials = optuna_trials(folder, NAME, task)
        assert len(trials) == TRIALS
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        for trial in trials:
            run_ = runs[trial.user_attrs["mlflow_run_id"]]
            assert run_.info.run_name == f"{task}-t{trial.number:02d}"
            assert run_.data.tags["adabert.trial_number"] == str(trial.number)
            expected = "FINISHED" if trial.state.name == "COMPLETE" else "KILLED"
            assert run_.info.status == expected
            # A stopped trial keeps its picture and its last metrics.
            paths = {a.path for a in client.list_artifacts(run_.info.run_id, "architecture")}
            assert "architecture/cell.png" in paths
            assert run_.data.metrics[f"dev/{'f1' if task == 'paraphrase' else 'accuracy'}"] >= 0
            if trial.state.name == "COMPLETE":
                assert trial.user_attrs["genotype_hash"] == run_.data.tags["adabert.genotype_hash"]
                assert trial.values[1] == run_.data.metrics["student/params"]


def test_only_students_better_than_a_constant_are_registered_and_they_read_raw_text(
    sweep, monkeypatch
):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    folder, stdout, _, _ = sweep
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    registered = {m.name for m in MlflowClient(uri).search_registered_models()}
    inputs = {
        "sentiment": {"sentence": ["a warm and funny film", "dull"]},
        "paraphrase": {"sentence1": ["the cat sat", "a b"], "sentence2": ["a cat sat", "c d"]},
    }
    labels = {"sentiment": {"negative", "positive"},
              "paraphrase": {"not_equivalent", "equivalent"}}  # fmt: skip
    for task in summary(folder)["tasks"]:
        name = task["task"]
        finished = [t for t in task["trials"] if t["state"] == "complete"]
        healthy = [t for t in finished if not t["degenerate"]]
        if not healthy:  # a student no better than a constant is never registered
            assert f"adabert-{NAME}-{name}" not in registered
            assert f"task {name}: no finished student beat a constant prediction" in stdout
            continue
        best = max(healthy, key=lambda t: (t["metric"], -t["params"]))
        version = MlflowClient(uri).get_model_version(f"adabert-{NAME}-{name}", "1")
        assert version.tags["genotype_hash"] == best["genotype_hash"]
        model = mlflow.pyfunc.load_model(f"models:/adabert-{NAME}-{name}/1")
        output = model.predict(pd.DataFrame(inputs[name]))
        assert len(output) == 2 and set(output["label"]) <= labels[name]
        probabilities = output[[f"prob_{label}" for label in sorted(labels[name])]].sum(axis=1)
        assert all(abs(p - 1.0) < 1e-5 for p in probabilities)
        _check_champion(uri, folder, name, best, inputs[name], list(output["label"]))
    assert registered, "no task registered a student: the registration path went untested"
    stored = list((folder / "mlartifacts").rglob("*"))
    assert not [p for p in stored if p.suffix in (".pkl", ".pickle", ".pt", ".pth")]


def _check_champion(uri, folder, task, best, inputs, pyfunc_labels):
    """The champion alias, its description and source; ``adabert predict`` on the registered
    model gives the pyfunc's labels and those of the trial's own student files."""
    from mlflow import MlflowClient

    from orchestrator.student.source import open_student

    mlflow_client = MlflowClient(uri)
    name = f"adabert-{NAME}-{task}"
    champion = mlflow_client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "1"
    assert champion.source.startswith("models:/m-"), champion.source
    assert task in champion.description and best["genotype_hash"] in champion.description
    assert f"{best['metric']:.4f}" in champion.description
    columns = list(inputs)
    args = ["predict", f"models:/{name}@champion", "--tracking-uri", uri]
    for index in range(2):
        args += ["--text", inputs[columns[0]][index]]
        if len(columns) == 2:
            args += ["--text-b", inputs[columns[1]][index]]
    # A fresh process: nothing of this test's MLflow set-up (its global tracking URI) helps.
    env = environment()
    env.pop("MLFLOW_TRACKING_URI", None)
    printed = run(adabert(*args), cwd=folder, timeout=300, env=env)
    assert printed.returncode == 0, printed.stdout[-3000:]
    lines = [line for line in printed.stdout.splitlines() if line.startswith("{")]
    predicted = [json.loads(line)["label"] for line in lines]
    assert predicted == pyfunc_labels
    files = Path(mlflow_client.download_artifacts(champion.run_id, "student_files", str(folder)))
    own = open_student(str(files)).classifier
    second = inputs[columns[1]] if len(columns) == 2 else None
    assert own.predict(inputs[columns[0]], second).labels == predicted


def test_the_champion_serves_raw_text_over_http_on_loopback(sweep, tmp_path):
    """``mlflow models serve`` of the registered model answers a POST of raw text."""
    import urllib.request

    from mlflow import MlflowClient

    folder = sweep[0]
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    registered = sorted(m.name for m in MlflowClient(uri).search_registered_models())
    assert registered
    name = registered[0]
    columns = ["sentence"] if name.endswith("sentiment") else ["sentence1", "sentence2"]
    rows = [["a warm and funny film"] * len(columns), ["dull"] * len(columns)]
    port = free_port()
    # MLflow starts its scoring server as `uvicorn` from PATH: the venv's bin, as after
    # `source .venv/bin/activate`.
    serve_env = environment(MLFLOW_TRACKING_URI=uri)
    serve_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{serve_env['PATH']}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=serve_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:

        def answers():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status
            except OSError:
                return None

        wait_for(answers, timeout=120, what="mlflow models serve", process=server)
        body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
        assert len(predictions) == 2
        assert all(p["label"] for p in predictions)
        assert all(key.startswith(("label", "prob_")) for p in predictions for key in p)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_session(server.pid)
            server.wait()
        wait_session_gone(server.pid)


def _snapshot(folder: Path) -> dict:
    _, _, runs = mlflow_runs(folder, NAME)
    return {
        "runs": sorted((r.info.run_id, r.info.status, r.info.end_time) for r in runs),
        "trials": {
            task: [(t.number, t.state.name, t.values) for t in optuna_trials(folder, NAME, task)]
            for task in TASKS
        },
        "files": {
            name: (folder / name).stat().st_mtime_ns
            for name in ("sweep.json", "state.json", "summary.json", "summary.md")
        },
    }


def test_resuming_a_complete_sweep_changes_no_record(sweep):
    folder, _, _, config = sweep
    before = _snapshot(folder)
    time.sleep(0.05)
    for args in ([str(folder), "--resume"], [str(config), "--resume"]):
        result = run(adabert("sweep", *args), cwd=folder.parent, timeout=120)
        assert result.returncode == 0, result.stdout
        assert "is complete; nothing to resume" in result.stdout
        assert _snapshot(folder) == before


def test_the_local_ray_listened_on_loopback_only(sweep):
    _, _, sockets, _ = sweep
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed")
    assert len(sockets) >= 5, sockets  # GCS, raylet, workers, agents: the check saw them
    exposed = [s for s in sockets if not s[0].startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:"))]
    assert not exposed, exposed


def test_sweep_record_is_the_resolved_config_with_absolute_paths(sweep):
    folder, _, _, _ = sweep
    record = json.loads((folder / "sweep.json").read_text())
    assert record["config"]["sweep"]["root"] == str(folder.parent)
    assert os.path.isabs(record["config"]["base"]["run"]["cache_dir"])
