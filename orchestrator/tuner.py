"""One task's sweep on Ray: prepare the teacher knowledge once, then a Ray Tune experiment.

``run_task`` runs inside a zero-CPU Ray task, so several tasks tune side by side on one
cluster. Its trials share the task's ``PreparedTask`` through Ray's object store (no trial
touches the teacher). Driver-side callbacks give every MLflow child run its final status and
feed the sweep's progress view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from orchestrator import tracking
from orchestrator.config import build_config
from orchestrator.hparams import make_searcher, study_seed
from orchestrator.pipeline import PreparedTask, measure_latency, prepare_task
from orchestrator.plots import pareto_figure, pareto_front
from orchestrator.run_folder import load_student
from orchestrator.sweep_config import ParamRange, SweepSection
from orchestrator.trial import TrackingTarget, search_and_retrain


@dataclass(frozen=True)
class TaskPlan:
    """Everything ``run_task`` needs, picklable, built by the driver."""

    task: str
    sweep_name: str
    base_config: dict[str, Any]
    space: tuple[ParamRange, ...]
    sweep: SweepSection
    storage_path: str  # absolute: Ray Tune's experiment root for this sweep
    optuna_url: str
    target: TrackingTarget
    resume: bool

    @property
    def study_name(self) -> str:
        return f"adabert-{self.sweep_name}-{self.task}"

    @property
    def metrics(self) -> list[str]:
        primary = self.primary_metric
        second = self.sweep.second_objective
        return [primary, f"cost/{second}"] if second else [primary]

    @property
    def primary_metric(self) -> str:
        from orchestrator.pipeline import resolve_task

        task = resolve_task(build_config(self.base_config).task)
        return f"dev/{task.primary_metric}"


@ray.remote(num_cpus=0)
class SweepMonitor:
    """Collects trial events from every task's Tune loop for the driver's progress view."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}

    def event(self, task: str, kind: str, trial_id: str = "", value: float | None = None):
        state = self.tasks.setdefault(
            task, {"phase": "preparing", "running": set(), "done": 0, "pruned": 0, "failed": 0,
                   "best": None},
        )  # fmt: skip
        if kind == "phase":
            state["phase"] = trial_id
        elif kind == "start":
            state["running"].add(trial_id)
        elif kind in ("done", "pruned", "failed"):
            state["running"].discard(trial_id)
            state[kind] += 1
        if value is not None and (state["best"] is None or value > state["best"]):
            state["best"] = value

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {t: {**s, "running": len(s["running"])} for t, s in self.tasks.items()}


class TrialStatusCallback(tune.Callback):
    """Runs never end RUNNING: FINISHED for complete trials, KILLED for trials the scheduler
    stopped, FAILED for errors (MLflow statuses); the progress view hears of each."""

    def __init__(self, target: TrackingTarget, monitor, metric: str) -> None:
        self.target, self.monitor, self.metric = target, monitor, metric

    def _finish(self, trial, status: str, kind: str) -> None:
        result = trial.last_result or {}
        run_id = result.get("mlflow_run_id") or tracking.trial_run_id(
            self.target.tracking_uri, self.target.experiment_id, trial.trial_id
        )
        if run_id:
            tracking.set_status(self.target.tracking_uri, run_id, status)
        value = result.get(self.metric) if kind == "done" else None
        self.monitor.event.remote(self.target.task, kind, trial.trial_id, value)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.monitor.event.remote(self.target.task, "start", trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        final = (trial.last_result or {}).get("is_final", False)
        self._finish(trial, "FINISHED" if final else "KILLED", "done" if final else "pruned")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "FAILED", "failed")


@ray.remote
def _prepare(base_config: dict[str, Any]) -> PreparedTask:
    return prepare_task(build_config(base_config), progress=False)


@ray.remote
def _final_latency(base_config: dict[str, Any], prepared: PreparedTask, student_dir: str):
    """The best student and the teacher timed side by side in one process (honest ratios)."""
    cfg = build_config(base_config)
    return measure_latency(cfg, prepared, load_student(student_dir), with_teacher=True)


def _scheduler(plan: TaskPlan, max_iterations: int):
    if plan.sweep.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=plan.primary_metric,
        mode="max",
        max_t=max_iterations,
        grace_period=min(plan.sweep.grace_period, max_iterations),
        reduction_factor=plan.sweep.reduction_factor,
    )


def _tuner(plan: TaskPlan, prepared: PreparedTask, monitor) -> tune.Tuner:
    cfg = build_config(plan.base_config)
    trainable = tune.with_resources(
        tune.with_parameters(
            search_and_retrain, base_config=plan.base_config, prepared=prepared, target=plan.target
        ),
        {"cpu": plan.sweep.cpus_per_trial, "gpu": plan.sweep.gpus_per_trial},
    )
    experiment = Path(plan.storage_path) / plan.task
    if plan.resume and tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    max_iterations = cfg.search.epochs + cfg.retrain.epochs + 1  # + the final report
    searcher = make_searcher(
        space=plan.space,
        base=plan.base_config,
        metrics=plan.metrics,
        study_name=plan.study_name,
        storage_url=plan.optuna_url,
        seed=study_seed(plan.sweep.seed, plan.task),
        enqueue_defaults=plan.sweep.enqueue_defaults,
        startup_trials=plan.sweep.startup_trials,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(plan, max_iterations),
            num_samples=plan.sweep.trials_per_task,
            max_concurrent_trials=plan.sweep.max_concurrent_trials,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=plan.task,
            storage_path=plan.storage_path,
            callbacks=[TrialStatusCallback(plan.target, monitor, plan.primary_metric)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )


def _trial_rows(results, plan: TaskPlan) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        last = result.metrics or {}
        final = bool(last.get("is_final"))
        rows.append(
            {
                "trial_id": last.get("trial_id", ""),
                "status": "error" if result.error else ("complete" if final else "pruned"),
                "mlflow_run_id": last.get("mlflow_run_id", ""),
                "metric": last.get(plan.primary_metric),
                "params": last.get("student/params"),
                "flops": last.get("student/flops"),
                "latency_b1_ms": last.get("latency/student_b1_ms"),
                "genotype_hash": last.get("genotype_hash", ""),
                "genotype": last.get("genotype", ""),
                "checkpoint": result.checkpoint.path if (final and result.checkpoint) else "",
                "hparams": {k: v for k, v in (result.config or {}).items()},
                "work": [last.get("time/work_start"), last.get("time/reported_at")],
            }
        )
    return rows


def _log_task_outcome(plan: TaskPlan, rows: list[dict[str, Any]], best: dict | None) -> dict:
    """Pareto plot, best-trial metrics and the registered model on the task's parent run."""
    target = plan.target
    finished = [r for r in rows if r["status"] == "complete" and r["metric"] is not None]
    outcome: dict[str, Any] = {"pareto": []}
    if finished:
        scores = [r["metric"] for r in finished]
        costs = {"params": [r["params"] for r in finished],
                 "latency b1 (ms)": [r["latency_b1_ms"] for r in finished]}  # fmt: skip
        labels = [r["genotype_hash"][:6] for r in finished]
        figure = pareto_figure(plan.task, plan.primary_metric, scores, costs, labels)
        tracking.log_to_run(
            target.tracking_uri, target.parent_run_id, figures={"pareto.png": figure}
        )
        second = {"params": "params", "flops": "flops", "latency": "latency_b1_ms"}.get(
            plan.sweep.second_objective or "params"
        )
        front = pareto_front([(r["metric"], r[second]) for r in finished])
        outcome["pareto"] = [finished[i]["trial_id"] for i in front]
    if best is not None:
        if plan.sweep.register_best and target.log_model:
            uri = f"runs:/{best['mlflow_run_id']}/student"
            outcome["registered_model"] = f"adabert-{plan.sweep_name}-{plan.task}"
            outcome["model_version"] = tracking.register_model(
                uri, outcome["registered_model"], tags={"genotype_hash": best["genotype_hash"]}
            )
        best_metrics = {f"best/{k}": v for k, v in best.get("final_latency", {}).items()}
        best_metrics |= {f"best/{plan.primary_metric}": best["metric"],
                         "best/params": best["params"]}  # fmt: skip
        tracking.log_to_run(
            target.tracking_uri,
            target.parent_run_id,
            metrics=best_metrics,
            tags={"adabert.best_trial": best["trial_id"], "adabert.genotype": best["genotype"]},
        )
    return outcome


def run_task(plan: TaskPlan, monitor) -> dict[str, Any]:
    """Prepare, tune, summarise one task; the parent run's status says how it ended."""
    target = plan.target
    started = time.time()
    try:
        prepare_started = time.time()
        prepared = ray.get(
            _prepare.options(num_cpus=plan.sweep.cpus_per_prepare).remote(plan.base_config)
        )
        prepare_interval = [prepare_started, time.time()]
        tracking.log_to_run(
            target.tracking_uri,
            target.parent_run_id,
            metrics={**prepared.teacher_metrics, **prepared.probe_metrics},
        )
        monitor.event.remote(plan.task, "phase", "tuning")
        results = _tuner(plan, prepared, monitor).fit()
        rows = _trial_rows(results, plan)
        finished = [r for r in rows if r["status"] == "complete" and r["metric"] is not None]
        best = max(finished, key=lambda r: (r["metric"], -r["params"])) if finished else None
        if best is not None and best["checkpoint"]:
            best["final_latency"] = ray.get(
                _final_latency.options(num_cpus=plan.sweep.cpus_per_trial).remote(
                    plan.base_config, prepared, best["checkpoint"]
                )
            )
        outcome = _log_task_outcome(plan, rows, best)
        tracking.set_status(target.tracking_uri, target.parent_run_id, "FINISHED")
        monitor.event.remote(plan.task, "phase", "finished")
        return {
            "task": plan.task,
            "metric_name": plan.primary_metric,
            "teacher_metrics": prepared.teacher_metrics,
            "teacher_params": prepared.teacher_params,
            "trials": rows,
            "best": best,
            "prepare": prepare_interval,
            "seconds": time.time() - started,
            **outcome,
        }
    except BaseException:
        tracking.set_status(target.tracking_uri, target.parent_run_id, "FAILED")
        monitor.event.remote(plan.task, "phase", "failed")
        raise


# Zero CPUs: the Tune loop only waits on its trials, which hold the task's CPU reservations.
run_task_remotely = ray.remote(num_cpus=0, max_retries=0)(run_task)
