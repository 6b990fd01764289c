"""The run folder of ``adabert run``: a student package (``searchspace.package``) plus the run's
config, metrics, history and a picture of the cell; written under a temporary name, renamed
when complete."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from orchestrator.config import RunConfig
from searchspace.genotype import Genotype
from searchspace.package import TOKENIZER_DIR, TaskInfo, write_student, write_task_info

INCOMPLETE_SUFFIX = ".incomplete"


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_name(cfg: RunConfig, genotype: Genotype) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{cfg.task.name}-{stamp}-{genotype.hash}"


def task_info(cfg: RunConfig, *, result, prepared) -> TaskInfo:
    task = prepared.task
    columns = [cfg.task.text_a or task.text_a] + (
        [cfg.task.text_b or task.text_b] if task.is_pair else []
    )
    return TaskInfo(
        task=task.name,
        text_columns=tuple(columns),
        labels=None if task.label_names is None else tuple(task.label_names),
        max_seq_length=cfg.data.max_seq_length,
        metric=result.primary_metric,
        score=result.score,
        teacher_score=result.teacher_score,
    )


def write_student_package(folder: Path, *, result, cfg: RunConfig, prepared) -> None:
    """A self-contained student: weights, genotype and config, the teacher's tokenizer and
    ``task.json``, so it classifies raw text with nothing else at hand."""
    folder.mkdir(parents=True, exist_ok=True)
    write_student(folder, student=result.student, genotype=result.genotype)
    (folder / TOKENIZER_DIR).mkdir(exist_ok=True)
    for name, content in prepared.tokenizer_files.items():
        (folder / TOKENIZER_DIR / name).write_bytes(content)
    write_task_info(folder, task_info(cfg, result=result, prepared=prepared))


def write_run_folder(cfg: RunConfig, *, result, prepared, root: str | Path | None = None) -> Path:
    """The package plus config.json (with the supernet as it was built: vocabulary, labels and
    widths the teacher dictated), metrics.json and history.json. Readers can trust a folder
    without the ``.incomplete`` suffix."""
    root = Path(root or cfg.run.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / run_name(cfg, result.genotype)
    staging = final.with_name(final.name + INCOMPLETE_SUFFIX)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        resolved = dataclasses.replace(cfg, supernet=result.supernet_config)
        _write_json(staging / "config.json", resolved.to_dict())
        write_student_package(staging, result=result, cfg=cfg, prepared=prepared)
        _write_json(
            staging / "metrics.json",
            {
                "metrics": result.metrics,
                "phase_seconds": result.phase_seconds,
                "genotype": result.genotype.summary(),
                "genotype_hash": result.genotype.hash,
            },
        )
        _write_json(staging / "history.json", result.history)
        _save_cell_picture(staging / "cell.png", result.genotype)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, final)
    return final


def _save_cell_picture(path: Path, genotype: Genotype) -> None:
    import matplotlib.pyplot as plt

    from orchestrator.plots import cell_figure

    figure = cell_figure(genotype)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def load_student(run_dir: str | Path):
    """The retrained student of a run folder or package (no supernet, no teacher needed)."""
    from searchspace.package import load_student as load

    run_dir = Path(run_dir)
    if run_dir.name.endswith(INCOMPLETE_SUFFIX):
        raise ValueError(f"{run_dir} is an incomplete run folder")
    return load(run_dir)
