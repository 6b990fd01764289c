"""``adabert submit`` and ``adabert jobs`` against a real Ray head on 127.0.0.1: only tracked
files ship, jobs can be listed, followed and stopped, errors are one line. The tests stop every
process they start."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster import submit as submit_module
from cluster.submit import connect, stage_working_dir, submit_job, wait_for
from orchestrator.cli import main
from orchestrator.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_job_runs_this_checkout_on_the_cluster(ray_head):
    client = connect(ray_head.jobs)
    job_id = submit_job(client, "python -m orchestrator sweep --help", working_dir=REPO)
    assert wait_for(client, job_id, poll_seconds=1.0) == "SUCCEEDED"
    logs = client.get_job_logs(job_id)
    assert "usage: adabert sweep" in logs and "--smoke-test" in logs


@pytest.mark.slow
def test_jobs_list_status_logs_and_stop_a_running_job(ray_head, capsys):
    client = connect(ray_head.jobs)
    code = "import time; print('adabert-job-alive', flush=True); time.sleep(300)"
    job_id = submit_job(client, f'python -c "{code}"', working_dir=REPO / "cluster")
    deadline = time.time() + 60
    while "adabert-job-alive" not in client.get_job_logs(job_id):
        assert time.time() < deadline, "the job never started"
        time.sleep(0.5)
    assert main(["jobs", "status", job_id, "--address", ray_head.jobs]) == 0
    assert capsys.readouterr().out.strip() == "RUNNING"
    assert main(["jobs", "list", "--address", ray_head.jobs]) == 0
    assert any(
        job_id in line and "RUNNING" in line for line in capsys.readouterr().out.splitlines()
    )
    assert main(["jobs", "logs", job_id, "--address", ray_head.jobs]) == 0
    assert "adabert-job-alive" in capsys.readouterr().out
    assert main(["jobs", "stop", job_id, "--address", ray_head.jobs]) == 0
    assert capsys.readouterr().out.strip() == f"job {job_id}: STOPPED"
    assert main(["jobs", "status", "no-such-job", "--address", ray_head.jobs]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no such job") and "\n" not in err


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_only_tracked_files_ship_and_never_secrets(tmp_path):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "code.py").write_text("x = 1\n")
    (project / "sweep.toml").write_text("[sweep]\n")
    (project / ".env.production").write_text("TOKEN=tracked-by-mistake\n")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    # Planted after the commit's add: untracked secrets, caches and a venv.
    (project / ".env").write_text("MLFLOW_TRACKING_PASSWORD=secret\n")
    (project / "credentials.json").write_text("{}\n")
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").write_text("")
    (project / "sweeps" / "demo").mkdir(parents=True)
    (project / "sweeps" / "demo" / "mlflow.db").write_text("")
    staging = tmp_path / "staging"
    staging.mkdir()
    files, size = stage_working_dir(project, staging)
    shipped = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    assert shipped == ["pkg/code.py", "sweep.toml"]
    assert files == 2 and size == len("x = 1\n") + len("[sweep]\n")


def test_submit_refuses_a_folder_outside_git_before_contacting_the_cluster(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text("[sweep]\n")
    args = ["submit", str(config), "--working-dir", str(tmp_path), "--address",
            "http://127.0.0.1:9"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a git checkout" in err and "\n" not in err


def test_submit_refuses_a_config_outside_the_shipped_folder(tmp_path, capsys):
    outside = tmp_path / "sweep.toml"
    outside.write_text("[sweep]\n")
    assert main(["submit", str(outside), "--address", "http://127.0.0.1:9"]) == 2
    assert "outside the shipped folder" in capsys.readouterr().err


def test_unreachable_cluster_is_a_one_line_error(capsys):
    assert main(["submit", "demo", "--address", "http://127.0.0.1:9", "--no-wait"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Ray Jobs API") and "\n" not in err


def test_a_refused_token_is_a_one_line_error(monkeypatch, capsys):
    from ray.exceptions import AuthenticationError

    class Refusing:
        def __init__(self, address):
            raise AuthenticationError("Authentication failed: invalid token (401)")

    import ray.job_submission

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", Refusing)
    assert main(["jobs", "list", "--address", "http://127.0.0.1:8265"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the Ray cluster at http://127.0.0.1:8265 refused")
    assert "RAY_AUTH_TOKEN" in err and "\n" not in err


def test_a_multi_node_cluster_needs_a_shared_results_root(monkeypatch, capsys):
    monkeypatch.setattr(submit_module, "alive_nodes", lambda address: 2)
    monkeypatch.setattr(submit_module, "connect", lambda address: object())
    assert main(["submit", "demo", "--address", "http://127.0.0.1:8265"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 2 nodes" in err and "--results-root" in err and "\n" not in err


def test_a_multi_node_cluster_takes_storage_uri_only_with_store_servers(monkeypatch, capsys):
    monkeypatch.setattr(submit_module, "alive_nodes", lambda address: 2)
    monkeypatch.setattr(submit_module, "connect", lambda address: object())
    submitted = []
    monkeypatch.setattr(
        submit_module, "submit_job", lambda client, command, **kw: submitted.append(command) or "j1"
    )
    base = ["submit", "demo", "--address", "http://127.0.0.1:8265", "--no-wait"]
    # SQLite stores live on the head only: a storage URI alone is not enough.
    assert main([*base, "--storage", "s3://bucket/adabert"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 2 nodes" in err and "--storage" in err and "\n" not in err
    servers = [
        "--set",
        "sweep.tracking_uri=http://mlflow.internal:5000",
        "--set",
        "sweep.optuna_storage=postgresql://optuna:${OPTUNA_PW}@db/optuna",
    ]
    assert main([*base, "--storage", "s3://bucket/adabert", *servers]) == 0
    (command,) = submitted
    assert "--storage s3://bucket/adabert" in command
    assert main([*base, "--storage", "s3://AKIAX:hunter2@bucket/adabert", *servers]) == 2
    err = capsys.readouterr().err.strip()
    assert "credentials" in err and "hunter2" not in err and "\n" not in err


def test_storage_places_checkpoints_cache_and_artifacts_under_one_uri(tmp_path, monkeypatch):
    import argparse

    from orchestrator.sweep.cli import _load

    monkeypatch.delenv("ADABERT_STORAGE", raising=False)
    args = argparse.Namespace(
        config="demo", set=["sweep.name=s"], resume=False, smoke_test=False,
        results_root=str(tmp_path), storage="s3://bucket/root",
    )  # fmt: skip
    config = _load(args)
    assert config.sweep.root == str(tmp_path / "sweeps")  # the head keeps the sweep folder
    assert config.tune_storage == "s3://bucket/root/tune/s"
    assert config.artifact_location == "s3://bucket/root/mlartifacts/s"
    assert config.base["run"]["cache_dir"] == "s3://bucket/root/cache"
    args.set = ["sweep.name=s", "base.run.cache_dir=/mnt/cache"]  # an explicit setting wins
    assert _load(args).base["run"]["cache_dir"] == "/mnt/cache"
    args.storage = "relative/folder"
    with pytest.raises(UserInputError, match="--storage must be a URI"):
        _load(args)


def test_the_cluster_storage_variable_and_folder_defaults(tmp_path, monkeypatch):
    import argparse

    from orchestrator.sweep.cli import _load
    from orchestrator.sweep.config import load_sweep_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADABERT_STORAGE", raising=False)
    args = argparse.Namespace(config="demo", set=["sweep.name=d"], resume=False,
                              smoke_test=False, results_root=None, storage=None)  # fmt: skip
    config = _load(args)
    assert config.tune_storage == str(tmp_path / "sweeps" / "d" / "tune")
    assert config.artifact_location is None
    assert config.base["run"]["cache_dir"] == str(tmp_path / ".adabert" / "cache")
    monkeypatch.setenv("ADABERT_STORAGE", "gs://team-bucket/adabert")  # set on the cluster
    config = _load(args)
    assert config.tune_storage == "gs://team-bucket/adabert/tune/d"
    assert config.base["run"]["cache_dir"] == "gs://team-bucket/adabert/cache"
    assert config.to_dict()["sweep"]["storage"] == "gs://team-bucket/adabert/tune"  # recorded
    config = load_sweep_config("demo", ["sweep.name=d", "sweep.storage=shared/tune"])
    assert config.tune_storage == str(tmp_path / "shared" / "tune" / "d")  # a path: absolute
    with pytest.raises(UserInputError, match="sweep.storage") as error:
        load_sweep_config("demo", ["sweep.storage=s3://AKIAX:hunter2@bucket"])
    assert "hunter2" not in str(error.value)


def test_the_job_writes_under_its_results_root_not_its_working_dir():
    from orchestrator.sweep.cli import job_location_overrides

    assert job_location_overrides("/shared/adabert", []) == [
        'sweep.root="/shared/adabert/sweeps"',
        'base.run.cache_dir="/shared/adabert/cache"',
    ]
    assert job_location_overrides("/shared/a", ["sweep.root=/x"]) == [
        'base.run.cache_dir="/shared/a/cache"'
    ]
    line = submit_module.entrypoint("demo", [], False)
    assert "--results-root '~/adabert'" in line


def test_cli_help_runs_without_a_cluster():
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "jobs", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "list" in result.stdout and "stop" in result.stdout
