"""A sweep whose trials write to an S3 bucket (moto's S3 server on 127.0.0.1 stands in for the
cloud): Ray Tune's checkpoints, the teacher-knowledge cache and the MLflow artifacts go to the
bucket, nothing of them into the sweep folder, and everything reads back from the bucket: Tune's
results, the cache entry from a machine that never computed it, the registered student."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from processes import free_port
from sweeps import adabert, environment, mlflow_runs, run, summary, write_sweep

pytestmark = pytest.mark.slow
NAME, BUCKET = "cloud", "adabert-test"
# One task: where a sweep stores is per sweep, and test_sweep.py covers two tasks side by side.
# The sentiment task on 512 examples: its student learns from the labels even where the tiny
# random teacher stays at chance (it beat the constant in 10 of 10 seeds tried), so a champion
# is registered; the paraphrase student did in 1 of 6 at 192 examples and 3 of 6 at 256.
CLOUD_TASKS = ("sentiment",)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on 127.0.0.1 with one bucket, and the environment that points clients at
    it (pyarrow, boto3 and MLflow all read AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL)."""
    pytest.importorskip("moto")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ADABERT_LOCAL_CACHE": str(tmp_path_factory.mktemp("local-mirror")),
    }
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "no S3 server"
                time.sleep(0.3)
        import boto3

        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        client.create_bucket(Bucket=BUCKET)
        yield client, env
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def cloud_sweep(s3, tiny_teacher_dir, tmp_path_factory):
    client, env = s3
    root = tmp_path_factory.mktemp("cloud")
    config = write_sweep(root, tiny_teacher_dir, name=NAME, trials=1, log_model=True,
                         tasks=CLOUD_TASKS, train_size=512, retrain_epochs=2)  # fmt: skip
    storage = f"s3://{BUCKET}/team"
    command = adabert("sweep", str(config), "--storage", storage)
    result = run(command, cwd=root, timeout=900, env=environment(**env))
    assert result.returncode == 0, result.stdout[-6000:]
    return root, root / NAME, client, env, result.stdout


def test_trial_state_cache_and_artifacts_go_to_the_bucket_not_the_folder(cloud_sweep):
    root, folder, client, _, _ = cloud_sweep
    assert not (folder / "tune").exists() and not (folder / "mlartifacts").exists()
    assert not (root / "cache").exists()  # the sweep file's cache_dir gave way to --storage
    for task in CLOUD_TASKS:
        tune_keys = _keys(client, f"team/tune/{NAME}/{task}/")
        assert any(k.rsplit("/", 1)[-1].startswith("experiment_state") for k in tune_keys)
        assert any("/checkpoint_" in k for k in tune_keys)
        entries = {k.split("/")[2] for k in _keys(client, f"team/cache/{task}-")}
        assert len(entries) == 1
        (entry,) = entries
        assert f"team/cache/{entry}/meta.json" in _keys(client, f"team/cache/{entry}/")
    assert _keys(client, f"team/mlartifacts/{NAME}/")
    for task in summary(folder)["tasks"]:
        for trial in task["trials"]:
            assert trial["checkpoint"].startswith(f"s3://{BUCKET}/team/tune/{NAME}/")


def test_tune_results_read_back_from_the_bucket(cloud_sweep):
    _, _, _, env, _ = cloud_sweep
    code = (
        "import sys; from ray.tune import ExperimentAnalysis; "
        "frame = ExperimentAnalysis(sys.argv[1]).dataframe(); "
        "print(len(frame), sorted(set(frame['config/adabert.task'])))"
    )
    for task in CLOUD_TASKS:
        read = subprocess.run(
            [sys.executable, "-c", code, f"s3://{BUCKET}/team/tune/{NAME}/{task}"],
            env=environment(**env), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert read.returncode == 0, read.stderr[-3000:]
        assert read.stdout.strip().splitlines()[-1] == f"1 ['{task}']"


def test_mlflow_runs_keep_their_artifacts_in_the_bucket_and_the_champion_predicts(cloud_sweep):
    root, folder, _, env, stdout = cloud_sweep
    _, _, runs = mlflow_runs(folder, NAME)
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    trials = [r for r in runs if r.data.tags.get("adabert.role") == "trial"]
    assert len(trials) == len(CLOUD_TASKS)
    assert all(r.info.artifact_uri.startswith(f"s3://{BUCKET}/team/mlartifacts/") for r in trials)
    registered = [line for line in stdout.splitlines() if "adabert predict models:/" in line]
    if not registered:
        pytest.fail(f"no student was registered:\n{stdout[-4000:]}")
    task, model, tracking = re.search(
        r"^(\w+): adabert predict (\S+) --tracking-uri (\S+)", registered[0]
    ).groups()
    args = adabert("predict", model, "--tracking-uri", tracking, "--text", "a warm and funny film")
    if task == "paraphrase":
        args += ["--text-b", "a funny and warm film"]
    result = run(args, cwd=root, timeout=300, env=environment(**env))
    assert result.returncode == 0, result.stdout[-4000:]
    assert '"label"' in result.stdout


_PREPARE_ELSEWHERE = """
import sys
from pathlib import Path
from orchestrator.method.pipeline import prepare_task, teacher_folder
from orchestrator.sweep.config import task_run_config
from orchestrator.sweep.record import config_from_folder
folder = Path(sys.argv[1])
config = config_from_folder(folder)
cfg = task_run_config(config, config.tasks[0], data_root=folder / "data")
prepared = prepare_task(cfg, progress=False)
Path(prepared.teacher_dir).parent.rename(Path(prepared.teacher_dir).parent.with_name("gone"))
with teacher_folder(prepared) as teacher:
    print(prepared.cache_hit, prepared.teacher_location, (teacher / "config.json").is_file())
"""


def test_another_machine_reads_the_cache_from_the_bucket_and_resume_is_complete(
    cloud_sweep, tmp_path
):
    root, folder, _, env, _ = cloud_sweep
    resumed = run(adabert("sweep", str(folder), "--resume"), cwd=root, timeout=300,
                  env=environment(**env))  # fmt: skip
    assert resumed.returncode == 0 and "is complete; nothing to resume" in resumed.stdout
    # A machine with an empty local mirror gets the task's knowledge from the bucket (a cache
    # hit, no fine-tuning), and the teacher from the bucket once its local copy is gone.
    elsewhere = environment(**(env | {"ADABERT_LOCAL_CACHE": str(tmp_path / "other")}))
    read = subprocess.run(
        [sys.executable, "-c", _PREPARE_ELSEWHERE, str(folder)], env=elsewhere,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr[-3000:]
    hit, location, found = read.stdout.strip().splitlines()[-1].split()
    assert hit == "True" and found == "True"
    assert location.startswith(f"s3://{BUCKET}/team/cache/{CLOUD_TASKS[0]}-")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("sweep.storage", "s3://no-such-bucket/tune"),
     ("base.run.cache_dir", "s3://no-such-bucket/cache"),
     ("sweep.artifact_location", "s3://no-such-bucket/mlflow")],
)  # fmt: skip
def test_an_unreachable_location_is_one_line_before_anything_starts(
    s3, tiny_teacher_dir, tmp_path, setting, value
):
    _, env = s3
    config = write_sweep(tmp_path, tiny_teacher_dir, name="nowhere", trials=1)
    result = run(adabert("sweep", str(config), "--set", f"{setting}={value}"), cwd=tmp_path,
                 timeout=120, env=environment(**env))  # fmt: skip
    assert result.returncode == 2, result.stdout[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    assert line.startswith("error: ") and setting.split(".")[-1] in line and value in line
    assert not (tmp_path / "nowhere").exists()
