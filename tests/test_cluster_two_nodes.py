"""A real two-node Ray cluster on this machine (loopback only, token authentication on): a head
and a second ``ray start --address`` node with its own CPU. ``adabert submit`` ships the demo's
smoke sweep; its trials run on both nodes, results land under ``--results-root`` and in MLflow,
nothing stays RUNNING; a wrong token is refused in one line. Every process started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def two_nodes():
    bin_dir = Path(sys.executable).parent
    token = secrets.token_hex(16)
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    env |= {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"  # the job's `python` is ours
    env.pop("RAY_ADDRESS", None)
    port, dashboard = free_port(), free_port()
    temp = Path(f"/tmp/adabert-2n-{os.getpid()}")  # Ray's socket paths must stay short
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]

    def own_ports() -> list[str]:
        """Ports Ray fixes by default (agent, metrics): two nodes on one host need their own."""
        flags = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--metrics-export-port", "--runtime-env-agent-port")  # fmt: skip
        return [item for flag in flags for item in (flag, str(free_port()))]

    head = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", "--port", str(port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--include-dashboard", "true", "--temp-dir", str(temp), *common, *own_ports()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    started = [head]
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait(lambda: _alive_nodes(address, env) >= 1, 120, "the head")
        worker = subprocess.Popen(
            [str(bin_dir / "ray"), "start", "--block", "--address", f"127.0.0.1:{port}",
             *common, *own_ports()],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        started.append(worker)
        _wait(lambda: _alive_nodes(address, env) == 2, 120, "the second node")
        yield address, env
    finally:
        for process in reversed(started):
            _stop(process)


def _alive_nodes(address: str, env: dict) -> int:
    code = (
        "from ray.util.state import list_nodes\n"
        f"print(sum(n.state == 'ALIVE' for n in list_nodes(address={address!r}, timeout=10)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    try:
        return int(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return 0


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(1)


def _adabert(*args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_a_wrong_token_is_refused_in_one_line(two_nodes):
    address, env = two_nodes
    wrong = dict(env, RAY_AUTH_TOKEN="not-the-token")
    result = _adabert("jobs", "list", "--address", address, env=wrong, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the Ray cluster at"), lines
    assert "refused" in lines[0]


def test_a_multi_node_cluster_without_a_results_root_is_refused(two_nodes):
    address, env = two_nodes
    result = _adabert("submit", "demo", "--smoke-test", "--address", address, env=env,
                      timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert "has 2 nodes" in result.stderr and "--results-root" in result.stderr


def test_a_submitted_smoke_sweep_runs_on_both_nodes(two_nodes, tmp_path):
    from mlflow import MlflowClient

    address, env = two_nodes
    results = tmp_path / "results"
    started = time.time()
    result = _adabert(
        "submit", "demo", "--smoke-test", "--address", address, "--results-root", str(results),
        "--set", "sweep.max_concurrent_trials=1",
        env=env, timeout=1200,
    )  # fmt: skip
    elapsed = time.time() - started
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "shipping" in result.stdout and "tracked files" in result.stdout
    folder = results / "sweeps" / "demo"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["state"] == "complete"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "adabert-demo"]
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    trials = [r for r in runs if r.data.tags.get("adabert.role") == "trial"]
    nodes = {r.data.tags["adabert.node_id"] for r in trials}
    assert len(trials) == 4 and len(nodes) == 2, nodes
    print(f"two nodes: 4 trials in {elapsed:.0f} s")


def test_jobs_stop_on_a_running_submitted_sweep_leaves_nothing_running(two_nodes, tmp_path):
    import sqlite3

    address, env = two_nodes
    results = tmp_path / "results"
    result = _adabert(
        "submit", "demo", "--smoke-test", "--no-wait", "--address", address,
        "--results-root", str(results), env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = result.stdout.strip().splitlines()[-2].strip()
    database = results / "sweeps" / "demo" / "mlflow.db"

    def running_trials() -> int:
        if not database.is_file():
            return 0
        with contextlib.closing(sqlite3.connect(database)) as connection:
            rows = connection.execute(
                "SELECT COUNT(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
                "WHERE runs.status = 'RUNNING' AND tags.key = 'adabert.role' "
                "AND tags.value = 'trial'"
            ).fetchone()
        return rows[0]

    _wait(lambda: running_trials() > 0, 600, "a running trial of the submitted sweep")
    stopped = _adabert("jobs", "stop", job_id, "--address", address, env=env, timeout=180)
    assert stopped.returncode == 0 and "STOPPED" in stopped.stdout, stopped.stderr
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{database}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs and not [r for r in runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "KILLED" for r in runs)
    import optuna

    storage = f"sqlite:///{results / 'sweeps' / 'demo' / 'optuna.db'}"
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        assert not [t for t in study.trials if t.state.name == "RUNNING"]
