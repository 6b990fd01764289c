"""``adabert submit`` against a real Ray head on 127.0.0.1: the project folder ships as the job's
working_dir and its packages import on the cluster. The test stops every process it starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.submit import EXCLUDES, connect, submit_job, wait_for
from orchestrator.cli import main

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    port, dashboard = _free_port(), _free_port()
    temp = Path(f"/tmp/adabert-ray-{os.getpid()}")  # Ray's socket paths must stay short
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # the job's `python` is ours
    command = [
        os.path.join(bin_dir, "ray"), "start", "--head", "--block", "--port", str(port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "1",
        "--temp-dir", str(temp), "--disable-usage-stats", "--include-dashboard", "true",
    ]  # fmt: skip
    # Its own process group: stopping it stops exactly the processes this test started.
    head = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                connect(address).list_jobs()
                break
            except Exception:
                if time.time() > deadline or head.poll() is not None:
                    pytest.fail("the Ray head did not come up")
                time.sleep(1)
        yield address
    finally:
        _stop(head)


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM lets `ray start --block` stop what it started; SIGKILL the group if it hangs."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_job_runs_this_checkout_on_the_cluster(ray_head):
    client = connect(ray_head)
    job_id = submit_job(client, "python -m orchestrator sweep --help", working_dir=REPO)
    assert wait_for(client, job_id, poll_seconds=1.0) == "SUCCEEDED"
    logs = client.get_job_logs(job_id)
    assert "usage: adabert sweep" in logs and "--smoke-test" in logs


def test_submit_refuses_a_config_outside_the_shipped_folder(tmp_path, capsys):
    outside = tmp_path / "sweep.toml"
    outside.write_text("[sweep]\n")
    assert main(["submit", str(outside), "--address", "http://127.0.0.1:9"]) == 2
    assert "outside the shipped folder" in capsys.readouterr().err


def test_unreachable_cluster_is_a_one_line_error(capsys):
    assert main(["submit", "demo", "--address", "http://127.0.0.1:9", "--no-wait"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Ray Jobs API") and "\n" not in err


def test_shipped_folder_leaves_out_local_state():
    assert {".venv", ".git", "sweeps", ".adabert"} <= set(EXCLUDES)
