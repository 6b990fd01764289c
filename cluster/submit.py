"""``adabert submit``: send a sweep to a remote Ray cluster as a Ray job (Job Submission SDK).

The project folder is shipped as the job's ``working_dir`` (git-ignored files excluded), so the
cluster imports exactly this checkout. The driver then runs ``adabert sweep --address auto``
on the cluster. See cluster/README.md for tunnels and token authentication.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path

from orchestrator.errors import UserInputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = [".venv", ".git", "sweeps", "runs", ".adabert", "bench/results", "mlruns", "*.db"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def register(subparsers) -> None:
    submit = subparsers.add_parser("submit", help="run a sweep on a Ray cluster as a Ray job")
    submit.add_argument("config", help="sweep TOML inside this project folder, or 'demo'")
    submit.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
        help="the cluster's dashboard / Jobs API address (default $RAY_ADDRESS)",
    )
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--smoke-test", action="store_true")
    submit.add_argument("--no-wait", action="store_true", help="return once the job is queued")
    submit.add_argument("--working-dir", default=str(PROJECT_ROOT))
    submit.set_defaults(handler=_submit_command)


def entrypoint(config: str, overrides: list[str], smoke_test: bool) -> str:
    words = ["python", "-m", "orchestrator", "sweep", config, "--address", "auto"]
    words += [item for value in overrides for item in ("--set", value)]
    words += ["--smoke-test"] if smoke_test else []
    return shlex.join(words)


def _config_in_working_dir(config: str, working_dir: Path) -> str:
    from orchestrator.sweep.config import BUILTIN_CONFIGS

    if config in BUILTIN_CONFIGS:
        return config
    path = Path(config).resolve()
    if not path.is_file():
        raise UserInputError(f"sweep config not found: {config}")
    try:
        return str(path.relative_to(working_dir.resolve()))
    except ValueError as exc:
        raise UserInputError(
            f"sweep config {config} is outside the shipped folder {working_dir}"
        ) from exc


def connect(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"cannot reach the Ray Jobs API at {address}: {first}") from exc


def submit_job(client, command: str, *, working_dir: Path) -> str:
    """Ship ``working_dir`` and run ``command`` in it on the cluster; returns the job id."""
    return client.submit_job(
        entrypoint=command,
        runtime_env={
            "working_dir": str(working_dir),
            # No env_vars: the sweep's own ray.init sets its workers' environment, and Ray
            # refuses to merge a job's env_vars with a driver's that name the same variable.
            "excludes": EXCLUDES,
        },
    )


def wait_for(client, job_id: str, *, poll_seconds: float = 2.0) -> str:
    while True:
        status = str(client.get_job_status(job_id)).split(".")[-1]
        if status in TERMINAL:
            return status
        time.sleep(poll_seconds)


def _submit_command(args: argparse.Namespace) -> int:
    working_dir = Path(args.working_dir)
    config = _config_in_working_dir(args.config, working_dir)
    client = connect(args.address)
    command = entrypoint(config, list(args.set), args.smoke_test)
    job_id = submit_job(client, command, working_dir=working_dir)
    print(f"submitted job {job_id} to {args.address}: {command}")
    if args.no_wait:
        print(f"follow it with: ray job logs --address {args.address} --follow {job_id}")
        return 0
    status = wait_for(client, job_id)
    print(client.get_job_logs(job_id), end="")
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1
