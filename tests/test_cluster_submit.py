"""``adabert submit`` against a real Ray head on 127.0.0.1: the project folder ships as the job's
working_dir and its packages import on the cluster. The test stops every process it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.submit import EXCLUDES, connect, submit_job, wait_for
from orchestrator.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_job_runs_this_checkout_on_the_cluster(ray_head):
    client = connect(ray_head.jobs)
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
