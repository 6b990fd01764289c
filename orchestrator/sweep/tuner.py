"""One task's sweep on Ray: prepare the teacher knowledge once, then a Ray Tune experiment.

``run_task`` runs inside a zero-CPU Ray task, so several tasks tune side by side on one
cluster. Its trials share the task's ``PreparedTask`` through Ray's object store (no trial
touches the teacher). A driver-side callback gives every MLflow child run its final status.
Nothing Tune pickles into its experiment state refers to a live Ray object, so a sweep resumes
in a new Ray session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from orchestrator import storage
from orchestrator.config import build_config
from orchestrator.method.pipeline import PreparedTask, measure_latency, prepare_task
from orchestrator.method.run_folder import load_student
from orchestrator.plots import pareto_figure, pareto_front
from orchestrator.sweep import records, tracking
from orchestrator.sweep.config import ParamRange, SweepSection
from orchestrator.sweep.hparams import close_running_trials, make_searcher, study_seed
from orchestrator.sweep.trial import SELECTION_METRIC, TrialPlan, run_trial

PHASE_TAG = "adabert.phase"


@dataclass(frozen=True)
class TaskPlan:
    """Everything ``run_task`` needs, picklable, built by the driver."""

    task: str
    sweep_name: str
    base_config: dict[str, Any]
    space: tuple[ParamRange, ...]
    sweep: SweepSection
    storage_path: str  # Ray Tune's experiment root for this sweep: an absolute path or a URI
    optuna_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    resume: bool

    @property
    def study_name(self) -> str:
        return study_name(self.sweep_name, self.task)

    @property
    def primary_metric(self) -> str:
        from orchestrator.method.pipeline import resolve_task

        task = resolve_task(build_config(self.base_config).task)
        return f"dev/{task.primary_metric}"

    @property
    def metrics(self) -> list[str]:
        second = self.sweep.second_objective
        return [self.primary_metric, f"cost/{second}"] if second else [self.primary_metric]

    def trial_plan(self, data_fingerprint: str) -> TrialPlan:
        return TrialPlan(
            sweep=self.sweep_name,
            task=self.task,
            base_config=self.base_config,
            data_fingerprint=data_fingerprint,
            tracking_uri=self.tracking_uri,
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
            log_model=self.sweep.log_model,
        )


def study_name(sweep: str, task: str) -> str:
    return f"adabert-{sweep}-{task}"


class TrialStatusCallback(tune.Callback):
    """Runs never end RUNNING: FINISHED for complete trials, KILLED for trials the scheduler
    stopped, FAILED for errors (MLflow statuses). Holds only names and ids, so Tune can pickle
    it into its experiment state and unpickle it in a later Ray session."""

    def __init__(self, tracking_uri: str, experiment_id: str) -> None:
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id

    def _finish(self, trial, status: str) -> None:
        result = trial.last_result or {}
        run_id = result.get("mlflow_run_id") or tracking.trial_run_id(
            self.tracking_uri, self.experiment_id, trial.trial_id
        )
        if run_id:
            tracking.set_status(self.tracking_uri, run_id, status)

    def on_trial_complete(self, iteration, trials, trial, **info):
        final = (trial.last_result or {}).get("is_final", False)
        self._finish(trial, "FINISHED" if final else "KILLED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "FAILED")


@ray.remote
def _prepare(base_config: dict[str, Any]) -> PreparedTask:
    return prepare_task(build_config(base_config), progress=False)


@ray.remote
def _final_latency(base_config: dict[str, Any], prepared: PreparedTask, student_dir: str):
    """The best student and the teacher timed side by side in one process (honest ratios)."""
    cfg = build_config(base_config)
    with storage.local_copy(student_dir) as folder:
        student = load_student(folder)
    return measure_latency(cfg, prepared, student, with_teacher=True)


def _scheduler(plan: TaskPlan, max_iterations: int):
    if plan.sweep.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=SELECTION_METRIC,
        mode="max",
        max_t=max_iterations,
        grace_period=min(plan.sweep.grace_period, max_iterations),
        reduction_factor=plan.sweep.reduction_factor,
    )


def trainable(plan: TaskPlan, trial_plan: TrialPlan, prepared: PreparedTask):
    """This task's own trainable, registered under a name no other task uses."""

    def trial(config: dict[str, Any], prepared: PreparedTask) -> None:
        run_trial(config, plan=trial_plan, prepared=prepared)

    trial.__name__ = trial.__qualname__ = trial_plan.trainable_name
    return tune.with_resources(
        tune.with_parameters(trial, prepared=prepared),
        {"cpu": plan.sweep.cpus_per_trial, "gpu": plan.sweep.gpus_per_trial},
    )


def _tuner(plan: TaskPlan, trial_plan: TrialPlan, prepared: PreparedTask) -> tune.Tuner:
    cfg = build_config(plan.base_config)
    function = trainable(plan, trial_plan, prepared)
    experiment = storage.join(plan.storage_path, plan.task)
    if plan.resume and tune.Tuner.can_restore(experiment):
        return tune.Tuner.restore(
            experiment, trainable=function, resume_unfinished=True, resume_errored=True
        )
    candidates = 1 + len(cfg.search.candidate_param_free_caps)  # at most: duplicates drop out
    max_iterations = cfg.search.epochs + candidates * cfg.retrain.epochs + 1  # + final report
    searcher = make_searcher(
        space=plan.space,
        base=plan.base_config,
        metrics=plan.metrics,
        study_name=plan.study_name,
        storage_url=plan.optuna_url,
        seed=study_seed(plan.sweep.seed, plan.task),
        enqueue_defaults=plan.sweep.enqueue_defaults,
        startup_trials=plan.sweep.startup_trials,
        task=plan.task,
    )
    return tune.Tuner(
        function,
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
            callbacks=[TrialStatusCallback(plan.tracking_uri, plan.experiment_id)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=plan.sweep.max_failures),
            verbose=0,
        ),
    )


def _pareto(plan: TaskPlan, rows: list[records.TrialRecord]) -> list[int]:
    """Trial numbers on the Pareto front (task metric up, the second objective down), and the
    task's Pareto plot on its parent run."""
    finished = [
        r for r in rows if r.state == "complete" and r.metric is not None and not r.degenerate
    ]
    if not finished:
        return []
    second = plan.sweep.second_objective or "params"
    front = pareto_front([(r.metric, r.cost(second)) for r in finished])
    figure = pareto_figure(plan.task, plan.primary_metric, rows, front=[finished[i] for i in front])
    tracking.log_to_run(plan.tracking_uri, plan.parent_run_id, figures={"pareto.png": figure})
    return [finished[i].number for i in front]


def _log_best(plan: TaskPlan, summary: records.TaskSummary) -> None:
    best = summary.best
    if best is None:
        return
    if plan.sweep.register_best and plan.sweep.log_model and best.mlflow_run_id:
        summary.registered_model = f"adabert-{plan.sweep_name}-{plan.task}"
        summary.model_version = tracking.register_model(
            plan.tracking_uri,
            tracking.model_uri_of(plan.tracking_uri, best.mlflow_run_id),
            summary.registered_model,
            tags={"genotype_hash": best.genotype_hash, "task": plan.task},
            description=summary.model_description(),
        )
    tracking.log_to_run(
        plan.tracking_uri,
        plan.parent_run_id,
        metrics=summary.best_metrics(),
        tags={"adabert.best_trial": best.number, "adabert.genotype": best.genotype},
    )


def _reconcile(plan: TaskPlan) -> None:
    """After Tune has ended: an Optuna trial still RUNNING was asked by a driver that died
    before Tune recorded it, and its MLflow run (if any) never got a final status."""
    close_running_trials(plan.study_name, plan.optuna_url, "lost: the sweep driver stopped")
    tracking.close_open_runs(
        plan.tracking_uri, plan.experiment_id, status="KILLED", parent_run_id=plan.parent_run_id
    )


def run_task(plan: TaskPlan) -> dict[str, Any]:
    """Prepare, tune, summarise one task; the parent run's status says how it ended."""
    uri, parent = plan.tracking_uri, plan.parent_run_id
    started = time.time()
    try:
        tracking.log_to_run(uri, parent, tags={PHASE_TAG: "preparing"})
        prepared = ray.get(
            _prepare.options(num_cpus=plan.sweep.cpus_per_prepare).remote(plan.base_config)
        )
        prepare_interval = (started, time.time())
        tracking.log_to_run(
            uri,
            parent,
            metrics={**prepared.teacher_metrics, **prepared.probe_metrics},
            tags={PHASE_TAG: "tuning", "adabert.data_fingerprint": prepared.data_fingerprint},
        )
        trial_plan = plan.trial_plan(prepared.data_fingerprint)
        results = _tuner(plan, trial_plan, prepared).fit()
        _reconcile(plan)
        rows = records.trial_records(results, plan.primary_metric, plan.base_config)
        summary = records.TaskSummary(
            task=plan.task,
            metric_name=plan.primary_metric,
            teacher_metric=prepared.teacher_metric,
            teacher_metrics=prepared.teacher_metrics,
            teacher_params=prepared.teacher_params,
            data_fingerprint=prepared.data_fingerprint,
            trials=rows,
            prepare=prepare_interval,
            champion_tolerance=plan.sweep.champion_tolerance,
        )
        best = summary.best
        if best is not None and best.checkpoint:
            best.final_latency = ray.get(
                _final_latency.options(num_cpus=plan.sweep.cpus_per_trial).remote(
                    plan.base_config, prepared, best.checkpoint
                )
            )
        summary.pareto = _pareto(plan, rows)
        _log_best(plan, summary)
        summary.seconds = time.time() - started
        tracking.log_to_run(uri, parent, tags={PHASE_TAG: "finished"})
        tracking.set_status(uri, parent, "FINISHED")
        return summary.to_dict()
    except BaseException:
        try:
            tracking.log_to_run(uri, parent, tags={PHASE_TAG: "failed"})
            tracking.set_status(uri, parent, "FAILED")
        finally:
            raise


# Zero CPUs: the Tune loop only waits on its trials, which hold the task's CPU reservations.
run_task_remotely = ray.remote(num_cpus=0, max_retries=0)(run_task)
