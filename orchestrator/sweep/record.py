"""The sweep folder's own records, readable without Ray: ``sweep.json`` (the config the sweep
started with, never rewritten), ``state.json`` (how far it got) and ``summary.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import UserInputError
from orchestrator.sweep.config import SweepConfig, parse_sweep_config
from orchestrator.sweep.records import write_json_atomically

RECORD_FORMAT = 1
RECORD, STATE, SUMMARY = "sweep.json", "state.json", "summary.json"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def read_record(folder: Path) -> dict[str, Any]:
    path = folder / RECORD
    if not path.is_file():
        raise UserInputError(f"{folder} is not a sweep folder (no {RECORD})")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record["config"] if "format" in record else record
    except (ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"{path} is not a readable sweep record ({exc})") from exc


def config_from_folder(folder: Path) -> SweepConfig:
    """The config a sweep folder was started with (``adabert sweep FOLDER --resume``)."""
    return parse_sweep_config(read_record(folder))


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def check_resumable(config: SweepConfig, folder: Path) -> None:
    recorded = read_record(folder)
    changed = _differences(recorded, config.raw)
    if changed:
        raise UserInputError(
            f"--resume: the sweep in {folder} was started with other settings "
            f"({', '.join(changed[:5])}); resume it with its own: adabert sweep {folder} --resume"
        )


def write_state(folder: Path, state: str, tasks: dict[str, str]) -> None:
    write_json_atomically(folder / STATE, {"state": state, "tasks": tasks, "updated": time.time()})
