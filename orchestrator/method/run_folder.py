"""The run folder of ``adabert run``: written under a temporary name, renamed when complete."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from orchestrator.config import RunConfig
from searchspace.config import SupernetConfig
from searchspace.derived import DerivedStudent
from searchspace.genotype import Genotype

INCOMPLETE_SUFFIX = ".incomplete"


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_student_files(folder: Path, *, student: DerivedStudent, genotype: Genotype) -> None:
    """The student alone: genotype.json, student_config.json and student.safetensors are all
    ``load_student`` needs (no supernet, no teacher, no pickle)."""
    (folder / "genotype.json").write_text(genotype.to_json() + "\n", encoding="utf-8")
    _write_json(folder / "student_config.json", student.config.to_dict())
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(folder / "student.safetensors"))


def run_name(cfg: RunConfig, genotype: Genotype) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{cfg.task.name}-{stamp}-{genotype.hash}"


def write_run_folder(
    cfg: RunConfig,
    *,
    genotype: Genotype,
    student: DerivedStudent,
    metrics: dict[str, float],
    phase_seconds: dict[str, float],
    history: dict,
    root: str | Path | None = None,
) -> Path:
    """config.json, genotype.json, student_config.json, student.safetensors, metrics.json,
    history.json. Readers can trust a folder without the ``.incomplete`` suffix."""
    root = Path(root or cfg.run.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / run_name(cfg, genotype)
    staging = final.with_name(final.name + INCOMPLETE_SUFFIX)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        _write_json(staging / "config.json", cfg.to_dict())
        write_student_files(staging, student=student, genotype=genotype)
        _write_json(
            staging / "metrics.json",
            {
                "metrics": metrics,
                "phase_seconds": phase_seconds,
                "genotype": genotype.summary(),
                "genotype_hash": genotype.hash,
            },
        )
        _write_json(staging / "history.json", history)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, final)
    return final


def load_student(run_dir: str | Path) -> DerivedStudent:
    """Rebuild the retrained student from a run folder (no supernet, no teacher needed)."""
    run_dir = Path(run_dir)
    if run_dir.name.endswith(INCOMPLETE_SUFFIX):
        raise ValueError(f"{run_dir} is an incomplete run folder")
    genotype = Genotype.from_json((run_dir / "genotype.json").read_text(encoding="utf-8"))
    config = SupernetConfig.from_dict(
        json.loads((run_dir / "student_config.json").read_text(encoding="utf-8"))
    )
    student = DerivedStudent(config, genotype)
    student.load_state_dict(load_file(str(run_dir / "student.safetensors")))
    student.eval()
    return student


def write_student_package(folder: Path, *, result, cfg: RunConfig, prepared) -> None:
    """A self-contained student: its files (see ``write_student_files``), the teacher's tokenizer
    and ``task.json`` (task name, input columns, label names or regression, max sequence
    length), so it classifies raw text with nothing else at hand."""
    from orchestrator.teacher.model import load_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    write_student_files(folder, student=result.student, genotype=result.genotype)
    load_tokenizer(prepared.teacher_dir).save_pretrained(str(folder / "tokenizer"))
    task = prepared.task
    _write_json(
        folder / "task.json",
        {
            "task": task.name,
            "text_columns": [cfg.task.text_a or task.text_a]
            + ([cfg.task.text_b or task.text_b] if task.is_pair else []),
            "labels": list(task.label_names) if task.label_names is not None else None,
            "max_seq_length": cfg.data.max_seq_length,
            "metric": result.primary_metric,
            "score": result.score,
            "teacher_score": result.teacher_score,
        },
    )
