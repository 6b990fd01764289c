"""The Ray Tune trainable: one trial is search -> derive -> retrain -> evaluate for one task.

Every epoch ends with a checkpoint of the whole trial state and one Tune report; a restarted
trial (a killed worker, a resumed sweep) continues from its last checkpoint. A scheduler may stop
a trial inside any ``tune.report`` (it raises SystemExit there), so all logging happens before
each report and the final report is the very last statement.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from orchestrator.config import build_config, merge_overrides
from orchestrator.method.pipeline import PreparedTask, TrialRunner, run_one_task
from orchestrator.method.run_folder import write_student_package
from orchestrator.plots import cell_figure
from orchestrator.progress import EpochReport
from orchestrator.sweep import tracking
from orchestrator.tasks.evaluation import selection_score
from searchspace.costs import genotype_cost

# Constants the outer search puts into every trial's config, so a trial knows what it is for.
TASK_KEY = "adabert.task"
NUMBER_KEY = "adabert.trial_number"
STATE_FILE, META_FILE, FINAL_FILE = "state.pt", "trial.json", "final.json"


class TrialMismatchError(RuntimeError):
    """A trial was handed another task's config, data or checkpoint: never train on it."""


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one task needs besides the prepared data; plain values only, so Tune
    can pickle it into its experiment state and a resumed sweep can read it back."""

    sweep: str
    task: str
    base_config: dict[str, Any]
    data_fingerprint: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    log_model: bool = True

    @property
    def trainable_name(self) -> str:
        # Tune keeps trainables in one registry per Ray job: each task needs its own name.
        return f"adabert-{self.sweep}-{self.task}"


# What Tune's scheduler ranks trials by (``selection_score``): the task metric, lowered for a
# student no better than a constant. In every report that carries the task metric.
SELECTION_METRIC = "dev/selection_score"
# A final student over search.max_student_flops ranks below every one within it (selection
# scores lie in [-10, 1]), so Optuna learns to avoid the settings that produced it.
OVER_BUDGET_PENALTY = 12.0


def with_selection_score(metrics: dict[str, float], primary_metric: str) -> dict[str, float]:
    if primary_metric not in metrics:
        return metrics
    score = selection_score(metrics, primary_metric)
    if metrics.get("derive/within_budget") == 0.0:
        score -= OVER_BUDGET_PENALTY
    return metrics | {SELECTION_METRIC: score}


def cost_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The minimised second objectives, named as ``sweep.second_objective`` names them."""
    return {
        "params": metrics["student/params"],
        "flops": metrics["student/flops"],
        "latency": metrics["latency/student_b1_ms"],
    }


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("adabert.")}


def check_identity(config: dict[str, Any], plan: TrialPlan, prepared: PreparedTask) -> None:
    """The trial's config, the plan and the prepared data must all name the same task."""
    seen = {
        "trial config": config.get(TASK_KEY),
        "plan": plan.task,
        "prepared data": prepared.task.name,
    }
    if len(set(seen.values())) != 1:
        raise TrialMismatchError(f"trial of task {plan.task!r} got mismatched tasks: {seen}")
    if prepared.data_fingerprint != plan.data_fingerprint:
        raise TrialMismatchError(
            f"task {plan.task!r}: prepared data {prepared.data_fingerprint} is not the data "
            f"the sweep prepared ({plan.data_fingerprint})"
        )


def save_checkpoint(folder: Path, runner: TrialRunner, meta: dict[str, Any]) -> None:
    torch.save(runner.state_dict(), folder / STATE_FILE)
    (folder / META_FILE).write_text(json.dumps(meta))


def read_checkpoint(folder: Path, plan: TrialPlan) -> tuple[dict | None, dict, dict | None]:
    """(runner state or None, meta, final result or None) of a checkpoint folder; the state is
    loaded with ``weights_only=True``: tensors and plain containers, never stored code."""
    meta = json.loads((folder / META_FILE).read_text())
    if (meta.get("task"), meta.get("data_fingerprint")) != (plan.task, plan.data_fingerprint):
        raise TrialMismatchError(
            f"checkpoint of task {meta.get('task')!r} ({meta.get('data_fingerprint')}) cannot "
            f"resume a trial of task {plan.task!r} ({plan.data_fingerprint})"
        )
    final = folder / FINAL_FILE
    if final.is_file():
        return None, meta, json.loads(final.read_text())
    return torch.load(folder / STATE_FILE, weights_only=True), meta, None


def run_trial(config: dict[str, Any], *, plan: TrialPlan, prepared: PreparedTask) -> None:
    """Tune's function trainable for one task (bound to its plan and data by the tuner)."""
    check_identity(config, plan, prepared)
    work_start = time.time()
    context = tune.get_context()
    hparams = hyperparameters(config)
    cfg = build_config(merge_overrides(plan.base_config, hparams))
    number = int(config.get(NUMBER_KEY, -1))
    run = tracking.TrialRun(
        plan.tracking_uri,
        plan.experiment_id,
        parent_run_id=plan.parent_run_id,
        trial_id=context.get_trial_id(),
        number=number,
        run_name=f"{plan.task}-t{number:02d}" if number >= 0 else context.get_trial_name(),
    )
    # Which node ran the trial (a restarted trial may land on another): in every report.
    node_id = ray.get_runtime_context().get_node_id()
    common = {"mlflow_run_id": run.run_id, "time/work_start": work_start, "node_id": node_id}
    run.set_tags({"adabert.node_id": node_id})
    state, final = None, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state, meta, final = read_checkpoint(Path(folder), plan)
        run.set_tags({"adabert.resumed_from_epoch": meta["epochs"]})
    else:
        run.log_params(tracking.flatten(cfg.to_dict()))
        run.set_tags(
            {
                "adabert.task": plan.task,
                "adabert.data_fingerprint": plan.data_fingerprint,
                "adabert.hparams": json.dumps(hparams),
                "adabert.tune_trial_id": context.get_trial_id(),
            }
        )
    if final is not None:  # the trial had finished; only its last report was lost
        tune.report(final, checkpoint=checkpoint)
        return

    runner = TrialRunner(cfg, prepared)
    if state is not None:
        runner.load_state_dict(state)
    meta = {"task": plan.task, "data_fingerprint": plan.data_fingerprint}
    pictured = {"hash": ""}

    def on_epoch(event: EpochReport) -> None:
        step = runner.completed_epochs
        metrics = {k: float(v) for k, v in event.metrics.items() if isinstance(v, (int, float))}
        metrics = with_selection_score(metrics, prepared.primary_metric)
        if event.genotype is not None:
            # The exact size of the architecture derived so far: a curve worth watching, and
            # what a multi-objective searcher sees of a trial stopped before its end.
            cost = genotype_cost(runner.config, event.genotype, cfg.data.max_seq_length)
            metrics |= {"cost/params": float(cost.params), "cost/flops": float(cost.flops)}
            run.log_dict(event.genotype.to_dict(), "architecture/genotype.json")
            if event.genotype.hash != pictured["hash"]:  # a stopped trial keeps its picture
                run.log_figure(cell_figure(event.genotype), "architecture/cell.png")
                pictured["hash"] = event.genotype.hash
        run.log_metrics(metrics, step=step)
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(Path(folder), runner, meta | {"epochs": step})
            tune.report(
                {**metrics, **common, "phase": event.phase, "epoch": step, "is_final": False,
                 "genotype_hash": event.genotype.hash if event.genotype else "",
                 "time/reported_at": time.time()},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )  # fmt: skip

    result = run_one_task(cfg, prepared, runner=runner, on_epoch=on_epoch, latency="student")
    metrics = result.metrics | {f"cost/{k}": v for k, v in cost_metrics(result.metrics).items()}
    metrics = with_selection_score(metrics, prepared.primary_metric)
    genotype = result.genotype
    step = runner.completed_epochs + 1
    run.log_metrics(metrics, step=step)
    run.log_dict(genotype.to_dict(), "architecture/genotype.json")
    run.log_figure(cell_figure(genotype), "architecture/cell.png")
    tags = {"adabert.genotype_hash": genotype.hash, "adabert.genotype": genotype.summary()}
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "student"
        write_student_package(package, result=result, cfg=cfg, prepared=prepared)
        run.log_folder(package, "student_files")
        if plan.log_model:
            tags["adabert.model_uri"] = run.log_student(package)
        run.set_tags(tags)
        final = {
            **metrics,
            **common,
            "phase": "final",
            "epoch": runner.completed_epochs,
            "is_final": True,
            "genotype_hash": genotype.hash,
            "genotype": genotype.summary(),
            "time/reported_at": time.time(),
        }
        (package / META_FILE).write_text(json.dumps(meta | {"epochs": step}))
        (package / FINAL_FILE).write_text(json.dumps(final))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(package)))
