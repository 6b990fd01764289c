"""``adabert sweep`` and ``adabert ui``: argument parsing only; the work is in driver.py."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import UserInputError


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="multi-task sweep: Ray Tune trials, Optuna outer search, MLflow tracking"
    )
    sweep.add_argument(
        "config",
        help="a sweep TOML file, 'demo' (the built-in offline demo), or with --resume the "
        "folder of an earlier sweep",
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. sweep.trials_per_task=8 or base.search.epochs=4",
    )
    sweep.add_argument(
        "--address", help="join this Ray cluster ('auto' inside a Ray job); default: a local Ray"
    )
    sweep.add_argument(
        "--resume", action="store_true", help="continue an interrupted or failed sweep"
    )
    sweep.add_argument(
        "--smoke-test", action="store_true", help="tiny budgets: checks the set-up in minutes"
    )
    sweep.add_argument(
        "--results-root",
        help="where the sweep folder goes when it runs as a Ray job (set by adabert submit): "
        "a folder outside the job's temporary working directory",
    )
    sweep.add_argument(
        "--storage",
        help="a URI (s3://, gs://) every node reaches, for Ray Tune's checkpoints, the teacher "
        "cache and MLflow artifacts (sweep.storage, base.run.cache_dir, sweep.artifact_location "
        "under it, unless set); default $ADABERT_STORAGE (set it on a cluster's nodes)",
    )
    sweep.set_defaults(handler=_sweep_command)

    ui = subparsers.add_parser("ui", help="open the MLflow UI of a sweep on 127.0.0.1")
    ui.add_argument("--sweep", default="sweeps/demo", help="the sweep folder")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=_ui_command)


def _load(args: argparse.Namespace):
    from orchestrator.sweep.config import load_sweep_config, smoke_test_overrides
    from orchestrator.sweep.record import RECORD, config_from_folder

    folder = Path(args.config)
    if args.resume and (folder / RECORD).is_file():
        if args.set or args.smoke_test:
            raise UserInputError(
                "a sweep resumed from its folder runs with its recorded settings: drop "
                "--set/--smoke-test"
            )
        return config_from_folder(folder)
    if folder.is_dir():
        raise UserInputError(f"{folder} is a folder without a sweep record ({RECORD})")
    overrides = (smoke_test_overrides() if args.smoke_test else []) + list(args.set)
    storage = args.storage or os.environ.get(STORAGE_VARIABLE)
    if storage:  # first: what it places wins over --results-root's local folders
        overrides = shared_storage_overrides(storage, overrides) + overrides
    if args.results_root:
        overrides = job_location_overrides(args.results_root, overrides) + overrides
    return load_sweep_config(args.config, overrides)


# Set on a cluster's nodes, it gives every new sweep there the shared storage of --storage.
STORAGE_VARIABLE = "ADABERT_STORAGE"


def shared_storage_overrides(uri: str, overrides: list[str]) -> list[str]:
    """What the trials write goes under ``uri``: Tune's storage, the teacher cache and the
    MLflow artifacts of a new experiment; explicit settings win."""
    from orchestrator.storage import check_no_credentials, is_uri, join

    if not is_uri(uri):
        raise UserInputError(f"--storage must be a URI such as s3://bucket/adabert, got {uri}")
    check_no_credentials(uri, "--storage")
    given = {item.split("=", 1)[0].strip() for item in overrides}
    wanted = {
        "sweep.storage": join(uri, "tune"),
        "base.run.cache_dir": join(uri, "cache"),
        "sweep.artifact_location": join(uri, "mlartifacts"),
    }
    return [f"{key}={json.dumps(value)}" for key, value in wanted.items() if key not in given]


def job_location_overrides(results_root: str, overrides: list[str]) -> list[str]:
    """A submitted sweep writes under ``results_root`` (its folder and the teacher cache), not
    into the job's working directory, which Ray deletes; explicit settings win."""
    given = {item.split("=", 1)[0].strip() for item in overrides}
    root = Path(os.path.expanduser(results_root))
    if not root.is_absolute():
        raise UserInputError(f"--results-root must be an absolute path, got {results_root}")
    extra = []
    if "sweep.root" not in given:
        extra.append(f"sweep.root={json.dumps(str(root / 'sweeps'))}")
    if "base.run.cache_dir" not in given:
        extra.append(f"base.run.cache_dir={json.dumps(str(root / 'cache'))}")
    return extra


def _sweep_command(args: argparse.Namespace) -> int:
    from orchestrator.sweep import loopback

    config = _load(args)
    if args.address or config.sweep.address:
        loopback.allow_cluster()
    else:
        loopback.prefer_loopback()  # before anything imports ray
    from orchestrator.sweep.driver import run_sweep

    outcome = run_sweep(config, resume=args.resume, address=args.address)
    return outcome.exit_code


def ui_command_line(folder: Path, port: int) -> list[str]:
    from orchestrator.sweep.config import parse_sweep_config
    from orchestrator.sweep.record import read_record, sqlite_url

    if not 1 <= port <= 65535:
        raise UserInputError(f"--port must be a TCP port (1-65535), got {port}")
    config = parse_sweep_config(read_record(folder))
    uri = config.sweep.tracking_uri or sqlite_url(folder / "mlflow.db")
    return [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def _ui_command(args: argparse.Namespace) -> int:
    from orchestrator.sweep.tracking import ui_url

    command = ui_command_line(Path(args.sweep), args.port)
    url = ui_url(f"http://127.0.0.1:{args.port}")
    print(f"MLflow UI of {args.sweep}: {url}  (Ctrl-C stops it)")
    # The UI needs no job runner; without it the server is 2 processes instead of 13.
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
