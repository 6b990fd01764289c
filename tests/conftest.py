"""Shared fixtures: a tiny BERT teacher built from a config (no downloads) and generated data.

The teacher's WordPiece vocabulary is the demo generator's vocabulary, so generated text has no
[UNK]; the data is written in the GLUE TSV layout by the project's own generator.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import free_port

# Tests never touch a hub, and Ray must not create auth tokens or report usage.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_teacher(folder: Path, *, num_labels: int = 2, layers: int = 2) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a tokenizer covering the demo words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from orchestrator.tasks.demo import vocabulary

    words = SPECIAL_TOKENS + sorted(set(vocabulary()) - set(SPECIAL_TOKENS))
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture(scope="session")
def sweep_cache(tmp_path_factory) -> Path:
    """One teacher-knowledge cache for every test sweep: they share the tiny teacher and the
    generated demo data, so each task's knowledge is computed once per test session."""
    return tmp_path_factory.mktemp("teacher-cache")


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> Path:
    """Generated SST-2 and MRPC in the GLUE TSV layout: root/SST-2, root/MRPC."""
    from orchestrator.tasks.demo import write_glue_layout

    root = tmp_path_factory.mktemp("glue-generated")
    for task in ("sst2", "mrpc"):
        write_glue_layout(root, task, train_size=96, dev_size=48, seed=0)
    return root


@pytest.fixture(scope="session")
def ray_head():
    """A real Ray head on 127.0.0.1 (Jobs API address), stopped with every process it started."""
    port, dashboard = free_port(), free_port()
    temp = Path(f"/tmp/adabert-ray-{os.getpid()}")  # Ray's socket paths must stay short
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # the job's `python` is ours
    command = [
        os.path.join(bin_dir, "ray"), "start", "--head", "--block", "--port", str(port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "1",
        "--temp-dir", str(temp), "--disable-usage-stats", "--include-dashboard", "true",
    ]  # fmt: skip
    # Ray fixes its agent and metrics ports by default; a sweep's Ray whose agents linger after
    # its driver was killed would keep them, and this head's Jobs API would never get an agent.
    for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--metrics-export-port", "--runtime-env-agent-port"):  # fmt: skip
        command += [flag, str(free_port())]
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
                _jobs_api_ready(address)
                break
            except Exception:
                if time.time() > deadline or head.poll() is not None:
                    pytest.fail("the Ray head did not come up")
                time.sleep(1)
        yield RayHead(jobs=address, gcs=f"127.0.0.1:{port}")
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)  # Ray's session logs, a few MB per run


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM lets `ray start --block` stop what it started; SIGKILL the group if it hangs."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _jobs_api_ready(address: str) -> None:
    """Raises until the head's job agent has run a job: the Jobs API answers before its agent is
    ready ("No available agent to submit job" under load)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    job = client.submit_job(entrypoint="python -c pass")
    deadline = time.time() + 60
    while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        if time.time() > deadline:
            raise TimeoutError("the warm-up job did not finish")
        time.sleep(0.5)


@dataclass(frozen=True)
class RayHead:
    jobs: str  # the dashboard's Jobs API, http://127.0.0.1:<port>
    gcs: str  # what RAY_ADDRESS or ray.init(address=...) takes
