"""``adabert sweep`` and ``adabert ui``: argument parsing only; the work is in sweep.py."""

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
    sweep.add_argument("config", help="a sweep TOML file, or 'demo' (the built-in offline demo)")
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. sweep.trials_per_task=8 or base.search.epochs=4",
    )
    sweep.add_argument("--address", help="Ray cluster address ('auto' inside a Ray job)")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    sweep.add_argument(
        "--smoke-test", action="store_true", help="tiny budgets: checks the set-up in minutes"
    )
    sweep.set_defaults(handler=_sweep_command)

    ui = subparsers.add_parser("ui", help="open the MLflow UI of a sweep on 127.0.0.1")
    ui.add_argument("--sweep", default="sweeps/demo", help="the sweep folder")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=_ui_command)


def _sweep_command(args: argparse.Namespace) -> int:
    from orchestrator.sweep import run_sweep
    from orchestrator.sweep_config import load_sweep_config, smoke_test_overrides

    overrides = (smoke_test_overrides() if args.smoke_test else []) + list(args.set)
    config = load_sweep_config(args.config, overrides)
    result = run_sweep(config, resume=args.resume, address=args.address)
    return 1 if result["failures"] else 0


def ui_command_line(folder: Path, port: int) -> list[str]:
    record = folder / "sweep.json"
    if not record.is_file():
        raise UserInputError(f"{folder} is not a sweep folder (no sweep.json)")
    uri = json.loads(record.read_text())["sweep"].get("tracking_uri") or (
        f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    )
    return [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def _ui_command(args: argparse.Namespace) -> int:
    command = ui_command_line(Path(args.sweep), args.port)
    print(f"MLflow UI of {args.sweep}: http://127.0.0.1:{args.port}  (Ctrl-C stops it)")
    # The UI needs no job runner; without it the server is 2 processes instead of 13.
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
