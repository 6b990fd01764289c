"""Checks that run before any long work (and before Ray starts): folders are writable and have
room, every task's data files read and the teacher resolves. Each failure is one
UserInputError line; nothing is created by a check that fails."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from orchestrator.config import RunConfig
from orchestrator.errors import UserInputError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_writable_folder(path: str | Path, what: str) -> Path:
    """``path`` is (or can be created as) a folder this process can write in; returns it
    absolute. A probe file is written in the nearest existing folder and removed at once."""
    path = Path(path).expanduser().resolve()
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise UserInputError(f"{what} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".adabert-probe-"):
            pass
    except OSError as exc:
        raise UserInputError(f"{what} {path} is not writable ({exc.strerror})") from exc
    return path


def check_location_setting(location: str, what: str) -> None:
    """A folder must be writable; a URI (s3://, gs://, file://) must take a probe object."""
    from orchestrator import storage

    if storage.is_uri(location):
        storage.check_location(location, what)
    else:
        check_writable_folder(location, what)


def free_mb(path: str | Path) -> float:
    return shutil.disk_usage(_nearest_existing(Path(path).resolve())).free / 2**20


def check_free_space(path: str | Path, min_mb: int, what: str) -> None:
    if min_mb and free_mb(path) < min_mb:
        raise UserInputError(
            f"{what} {path} has {free_mb(path):.0f} MB free, less than the {min_mb} MB reserve "
            "(free some space, or lower the reserve setting)"
        )


def check_task_inputs(cfg: RunConfig, *, check_data: bool = True) -> None:
    """The task resolves, its data files read (columns, labels) and the teacher fits it."""
    from orchestrator.method.pipeline import load_run_data, resolve_task
    from orchestrator.tasks.data import progress_bars
    from orchestrator.teacher.model import check_teacher_reference, resolve_teacher_reference

    task = resolve_task(cfg.task)
    if check_data:
        with progress_bars(False):
            load_run_data(cfg, task)
    check_teacher_reference(
        resolve_teacher_reference(cfg.teacher.name_or_path),
        task=task,
        fine_tuned=cfg.teacher.fine_tuned,
        max_seq_length=cfg.data.max_seq_length,
    )


def check_run(cfg: RunConfig) -> None:
    """``adabert run``: its output and cache folders, then its data and teacher."""
    check_writable_folder(cfg.run.output_dir, "run.output_dir")
    check_location_setting(cfg.run.cache_dir, "run.cache_dir")
    check_task_inputs(cfg)
