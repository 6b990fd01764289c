"""The Ray Tune trainable: one trial is search -> derive -> retrain -> evaluate for one task.

Reports one result per epoch (search, then retrain) and a last one with ``is_final``. A
scheduler may stop a trial inside any ``tune.report`` (it raises SystemExit there), so all
logging happens before each report and the final report is the very last statement.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import build_config, merge_overrides
from orchestrator.pipeline import PreparedTask, measure_latency, run_trial, supernet_config_for
from orchestrator.progress import EpochReport
from orchestrator.run_folder import write_student_files
from searchspace.costs import genotype_cost

SEARCHSPACE_DIR = Path(__file__).resolve().parents[1] / "searchspace"


@dataclass(frozen=True)
class TrackingTarget:
    """Where a trial logs: travels to workers with the trainable, never via the search space."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    task: str
    log_model: bool = True


def cost_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The minimised second objectives, named as ``sweep.second_objective`` names them."""
    return {
        "params": metrics["student/params"],
        "flops": metrics["student/flops"],
        "latency": metrics["latency/student_b1_ms"],
    }


def _pip_requirements() -> list[str]:
    import torch

    return [f"torch>={torch.__version__.split('+')[0]}"]


def search_and_retrain(
    hparams: dict[str, Any],
    *,
    base_config: dict[str, Any],
    prepared: PreparedTask,
    target: TrackingTarget,
) -> None:
    from ray import tune

    from orchestrator.plots import cell_figure
    from orchestrator.tracking import TrialRun, flatten

    work_start = time.time()
    context = tune.get_context()
    cfg = build_config(merge_overrides(base_config, hparams))
    run = TrialRun(
        target.tracking_uri,
        target.experiment_id,
        parent_run_id=target.parent_run_id,
        trial_id=context.get_trial_id(),
        trial_name=context.get_trial_name(),
    )
    run.log_params(flatten(cfg.to_dict()))
    run.set_tags({"adabert.task": target.task, "adabert.hparams": json.dumps(hparams)})
    steps = {"iteration": 0}
    common = {"mlflow_run_id": run.run_id, "time/work_start": work_start}

    config = supernet_config_for(cfg, prepared)

    def on_epoch(event: EpochReport) -> None:
        steps["iteration"] += 1
        metrics = {k: v for k, v in event.metrics.items() if isinstance(v, (int, float))}
        if event.genotype is not None:
            # The exact size of the architecture derived so far: a curve worth watching, and
            # what a multi-objective searcher sees of a trial stopped before its end.
            cost = genotype_cost(config, event.genotype, cfg.data.max_seq_length)
            metrics |= {"cost/params": float(cost.params), "cost/flops": float(cost.flops)}
        run.log_metrics(metrics, step=steps["iteration"])
        if event.genotype is not None:
            run.log_dict(event.genotype.to_dict(), "architecture/genotype.json")
        tune.report(
            {**metrics, **common, "phase": event.phase, "is_final": False,
             "time/reported_at": time.time()}
        )  # fmt: skip

    result = run_trial(cfg, prepared, on_epoch=on_epoch)
    metrics = result.metrics | measure_latency(cfg, prepared, result.student, with_teacher=False)
    metrics |= {f"cost/{k}": v for k, v in cost_metrics(metrics).items()}
    genotype = result.genotype
    run.log_metrics(metrics, step=steps["iteration"] + 1)
    run.log_dict(genotype.to_dict(), "architecture/genotype.json")
    run.log_figure(cell_figure(genotype), "architecture/cell.png")
    tags = {"adabert.genotype_hash": genotype.hash, "adabert.genotype": genotype.summary()}
    with tempfile.TemporaryDirectory() as folder:
        write_student_files(Path(folder), student=result.student, genotype=genotype)
        run.log_folder(Path(folder), "student_files")
        if target.log_model:
            tags["adabert.model_uri"] = run.log_student(
                result.student, pip_requirements=_pip_requirements(), code_paths=[SEARCHSPACE_DIR]
            )
        run.set_tags(tags)
        final = {
            **metrics,
            **common,
            "phase": "final",
            "is_final": True,
            "genotype_hash": genotype.hash,
            "genotype": genotype.summary(),
            "time/reported_at": time.time(),
        }
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(folder))
