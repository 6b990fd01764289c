"""``adabert sweep``: the driver of a multi-task compression sweep.

Checks everything it can before it creates anything (names, folders, free space, every task's
data and teacher), sets up the sweep folder (SQLite stores for MLflow and Optuna by default),
starts or joins Ray, opens one MLflow parent run per task, runs every task's Ray Tune experiment
side by side, shows their progress, and ends with a results table. However it ends (finished,
a failed task, Ctrl-C, SIGTERM, a disk running full) every MLflow run and Optuna trial gets a
final state, and ``--resume`` continues whatever was left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserInputError
from orchestrator.preflight import (
    check_free_space,
    check_location_setting,
    check_task_inputs,
    check_writable_folder,
    free_mb,
)
from orchestrator.sweep import hparams, secrets, tracking
from orchestrator.sweep import loopback as loopback_setting
from orchestrator.sweep.config import SweepConfig, task_run_config
from orchestrator.sweep.record import (
    RECORD,
    RECORD_FORMAT,
    SUMMARY,
    check_resumable,
    read_state,
    sqlite_url,
    write_state,
)
from orchestrator.sweep.records import TaskSummary, write_json_atomically
from orchestrator.sweep.report import (
    covered_seconds,
    overhead_breakdown,
    summary_table,
    trials_table,
    warnings_for,
)

PROGRESS_EVERY_S = 15.0
POLL_S = 2.0


@dataclass
class SweepOutcome:
    """How a sweep run ended: ``state`` is complete, failed, interrupted or stopped (disk)."""

    state: str
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "interrupted": 130}.get(self.state, 1)


def stores(config: SweepConfig) -> tuple[str, str]:
    """(MLflow tracking URI, Optuna storage URL): explicit, never relative to a working dir."""
    folder = config.folder
    tracking_uri = config.sweep.tracking_uri or sqlite_url(folder / "mlflow.db")
    optuna_url = config.sweep.optuna_storage or sqlite_url(folder / "optuna.db")
    return tracking_uri, optuna_url


def preflight(config: SweepConfig) -> None:
    """Everything that can be checked before the sweep folder or Ray exists."""
    folder = check_writable_folder(config.folder, "sweep folder")
    check_free_space(folder, config.sweep.min_free_mb, "sweep folder")
    for url in (config.sweep.tracking_uri, config.sweep.optuna_storage):
        secrets.expand(url)  # every ${NAME} a store URL needs is set here
    check_location_setting(config.tune_storage, "sweep.storage")
    if config.artifact_location:
        check_artifact_client(config.artifact_location)
        check_location_setting(config.artifact_location, "sweep.artifact_location")
    for task in config.tasks:
        cfg = task_run_config(config, task, data_root=folder / "data")
        check_location_setting(cfg.run.cache_dir, f"task {task.name}: run.cache_dir")
        # Demo tasks' files are generated once the folder exists; their teacher is checked.
        check_task_inputs(cfg, check_data=not task.demo)


# MLflow writes artifacts with these clients (Ray Tune and the cache use pyarrow's own).
ARTIFACT_CLIENTS = {"s3": ("boto3", "s3"), "gs": ("google.cloud.storage", "gcs")}


def check_artifact_client(location: str) -> None:
    import importlib.util

    scheme = location.split("://", 1)[0] if "://" in location else ""
    module, extra = ARTIFACT_CLIENTS.get(scheme, ("", ""))
    if module and importlib.util.find_spec(module.split(".")[0]) is None:
        raise UserInputError(
            f"sweep.artifact_location {location}: MLflow needs {module} for {scheme}:// "
            f"artifacts (pip install 'adabert[{extra}]')"
        )


def _generate_demo_data(config: SweepConfig, data_root: Path) -> None:
    from orchestrator.tasks.demo import DEMO_TASKS, write_demo_task

    for task in config.tasks:
        if task.demo and not (data_root / task.demo).is_dir():
            fmt = "jsonl" if DEMO_TASKS[task.demo].is_pair else "csv"
            write_demo_task(
                data_root,
                task.demo,
                train_size=config.sweep.demo_train_size,
                dev_size=config.sweep.demo_dev_size,
                seed=config.sweep.seed,
                fmt=fmt,
            )


# --- Ray -----------------------------------------------------------------------------------


def _environment(tracking_uri: str) -> dict[str, str]:
    """Set here and in every Ray worker: local workers only inherit what precedes ray.init."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        # Students are logged as code + safetensors: nothing of ours needs pickle to load.
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        # Tune's experiment state every second (not every 10 s): a driver killed now loses
        # at most the trials started in the last second (they are failed on resume).
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        # A latency objective is only measured at a trial's end: epoch reports go without it.
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    }


@contextlib.contextmanager
def ray_session(config: SweepConfig, address: str | None, env: dict[str, str]) -> Iterator[str]:
    """Join the cluster at ``address`` (``--address`` or ``sweep.address``, e.g. "auto" inside a
    Ray job), or start a private local Ray (on 127.0.0.1 when ``sweep.loopback`` set that up
    before Ray was imported), never an unrelated cluster that happens to run on this machine:
    ``address="local"`` ignores RAY_ADDRESS and the machine's running clusters."""
    import ray

    address = address if address is not None else (config.sweep.address or None)
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        where = f"the Ray cluster at {address}"
    else:
        ray.init(
            address="local",
            include_dashboard=config.sweep.dashboard,
            dashboard_host="127.0.0.1",
            object_store_memory=config.sweep.object_store_mb * 2**20,
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
        loopback = os.environ.get(loopback_setting.VARIABLE) == loopback_setting.VALUE
        where = "a local Ray on 127.0.0.1" if loopback else "a local Ray (all interfaces)"
    try:
        yield where
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``ray job stop``) stops the sweep the way Ctrl-C does."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- progress ------------------------------------------------------------------------------


def progress_line(config: SweepConfig, plans, optuna_url: str, started: float) -> str:
    parts = []
    for plan in plans:
        counts, best = _study_progress(plan.study_name, optuna_url)
        phase = tracking.run_tag(plan.tracking_uri, plan.parent_run_id, "adabert.phase") or "-"
        best_text = "-" if best is None else f"{best:.4f}"
        parts.append(
            f"{plan.task}: {phase}, {counts.get('RUNNING', 0)} running, "
            f"{counts.get('COMPLETE', 0)} done, {counts.get('PRUNED', 0)} pruned, "
            f"{counts.get('FAIL', 0)} failed, best {best_text}"
        )
    return f"[{time.time() - started:6.0f}s] " + " | ".join(parts)


def _study_progress(study_name: str, optuna_url: str) -> tuple[dict[str, int], float | None]:
    try:
        study = hparams.load_study(study_name, optuna_url)
    except KeyError:
        return {}, None
    return hparams.trial_states(study), hparams.best_feasible_value(study)


# --- the run -------------------------------------------------------------------------------


def _plans(config, folder, data_root, tracking_uri, optuna_url, experiment_id, resume, done):
    from orchestrator.sweep.tuner import TaskPlan, study_name

    plans = []
    for task in config.tasks:
        base = task_run_config(config, task, data_root=data_root).to_dict()
        parent = tracking.parent_run(
            tracking_uri, experiment_id, sweep=config.sweep.name, task=task.name,
            reopen=task.name not in done,
        )  # fmt: skip
        tracking.log_to_run(
            tracking_uri,
            parent,
            params=tracking.flatten(base),
            tags={"adabert.sweep_folder": str(folder), "adabert.study": study_name(
                config.sweep.name, task.name)},
        )  # fmt: skip
        plans.append(
            TaskPlan(
                task=task.name,
                sweep_name=config.sweep.name,
                base_config=base,
                space=config.space,
                sweep=config.sweep,
                storage_path=config.tune_storage,
                optuna_url=optuna_url,
                tracking_uri=tracking_uri,
                experiment_id=experiment_id,
                parent_run_id=parent,
                resume=resume,
            )
        )
    return plans


def _stop(pending: dict, reason: str, out) -> None:
    """Stop every running task now. Tune cannot save a last state once its task is cancelled
    (measured, ray 2.60), so what it resumes from is its last periodic snapshot, written every
    second (TUNE_GLOBAL_CHECKPOINT_S) with each trial's last epoch checkpoint."""
    import ray

    print(f"stopping ({reason}): closing the records of the running trials", file=out, flush=True)
    for ref in pending:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


def _run_tasks(plans, config: SweepConfig, *, address, env, folder, optuna_url, started, out):
    """All tasks side by side; returns (summaries, failures, stop reason or "")."""
    import ray

    from orchestrator.sweep.tuner import run_task_remotely

    summaries, failures, stopped = [], {}, ""
    with ray_session(config, address, env) as where:
        pending = {run_task_remotely.remote(plan): plan for plan in plans}
        print(f"sweep {config.sweep.name}: {len(plans)} task(s) in {folder}, on {where}",
              file=out, flush=True)  # fmt: skip
        last_progress = time.time()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in done:
                    plan = pending.pop(ref)
                    try:
                        summary = TaskSummary.from_dict(ray.get(ref))
                        # Written here, not by the task: it may have run on another node.
                        write_json_atomically(folder / "tasks" / f"{plan.task}.json",
                                              summary.to_dict())  # fmt: skip
                        # An earlier attempt's error must not outlive the task's success.
                        (folder / "errors" / f"{plan.task}.txt").unlink(missing_ok=True)
                        summaries.append(summary)
                    except ray.exceptions.RayError as exc:
                        failures[plan.task] = _first_line(exc)
                        (folder / "errors").mkdir(exist_ok=True)
                        (folder / "errors" / f"{plan.task}.txt").write_text(str(exc))
                if free_mb(folder) < config.sweep.min_free_mb and pending:
                    stopped = (
                        f"{free_mb(folder):.0f} MB free under {folder}, below sweep.min_free_mb"
                        f" = {config.sweep.min_free_mb}"
                    )
                    _stop(pending, stopped, out)
                    break
                if done or time.time() - last_progress >= PROGRESS_EVERY_S:
                    print(progress_line(config, plans, optuna_url, started), file=out, flush=True)
                    last_progress = time.time()
        except KeyboardInterrupt:
            stopped = "interrupted"
            _stop(pending, stopped, out)
    return summaries, failures, stopped


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _close_records(plans, finished: set[str], reason: str) -> None:
    """Whatever did not finish gets a final state: Optuna FAIL (with the reason), MLflow KILLED
    (a resume reopens both as needed)."""
    for plan in plans:
        if plan.task in finished:
            continue
        with contextlib.suppress(Exception):
            hparams.close_running_trials(plan.study_name, plan.optuna_url, reason)
        with contextlib.suppress(Exception):
            tracking.close_open_runs(
                plan.tracking_uri, plan.experiment_id, status="KILLED",
                parent_run_id=plan.parent_run_id,
            )  # fmt: skip
            status = "FAILED" if reason == "failed" else "KILLED"
            tracking.log_to_run(plan.tracking_uri, plan.parent_run_id,
                                tags={"adabert.phase": reason})  # fmt: skip
            tracking.set_status(plan.tracking_uri, plan.parent_run_id, status)


def _finished_tasks(folder: Path, config: SweepConfig) -> list[TaskSummary]:
    found = []
    for task in config.tasks:
        path = folder / "tasks" / f"{task.name}.json"
        if path.is_file():
            found.append(TaskSummary.from_dict(json.loads(path.read_text(encoding="utf-8"))))
    return found


def _open(config: SweepConfig, resume: bool) -> Path:
    """Check the folder against the request; nothing is written here."""
    folder = config.folder
    exists = (folder / RECORD).exists()
    if resume and not exists:
        raise UserInputError(f"--resume: there is no sweep to resume in {folder}")
    if not resume and exists:
        raise UserInputError(
            f"sweep folder {folder} exists: pass --resume to continue it, or set sweep.name"
        )
    if resume:
        check_resumable(config, folder)
    return folder


def run_sweep(
    config: SweepConfig, *, resume: bool = False, address: str | None = None, out=None
) -> SweepOutcome:
    """Run (or resume) every task's study; writes summary.json and summary.md at the end."""
    out = out or sys.stdout
    folder = _open(config, resume)
    if resume and read_state(folder).get("state") == "complete":
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        message = (
            f"sweep {config.sweep.name} is complete; nothing to resume ({folder / 'summary.md'})"
        )
        print(message, file=out)
        return SweepOutcome("complete", summary, message)
    preflight(config)
    started = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json_atomically(
            folder / RECORD,
            {"format": RECORD_FORMAT, "config": config.raw, "resolved": config.to_dict()},
        )
    data_root = folder / "data"
    _generate_demo_data(config, data_root)
    tracking_uri, optuna_url = stores(config)
    env = _environment(tracking_uri)
    os.environ.update(env)
    artifacts = config.artifact_location
    if artifacts is None and tracking_uri.startswith("sqlite"):
        artifacts = str(folder / "mlartifacts")
    experiment_id = tracking.ensure_experiment(
        tracking_uri, f"adabert-{config.sweep.name}", artifacts
    )
    hparams.storage(optuna_url)  # create the schema once, before tasks race to do it
    earlier = {s.task: s for s in _finished_tasks(folder, config)}
    plans, summaries, failures, stopped = [], [], {}, "failed"
    try:
        with _sigterm_as_interrupt():
            plans = _plans(
                config, folder, data_root, tracking_uri, optuna_url, experiment_id, resume,
                set(earlier),
            )  # fmt: skip
            todo = [p for p in plans if p.task not in earlier]
            write_state(folder, "running", {p.task: "running" for p in todo})
            summaries, failures, stopped = _run_tasks(
                todo, config, address=address, env=env, folder=folder,
                optuna_url=optuna_url, started=started, out=out,
            )  # fmt: skip
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        finished = {s.task for s in summaries} | set(earlier)
        reason = stopped or ("failed" if failures else "")
        if reason:
            _close_records(plans, finished, "interrupted" if reason == "interrupted" else reason)
    if stopped == "interrupted":
        state = "interrupted"
    elif stopped:
        state = "stopped"
    else:
        state = "failed" if failures else "complete"
    by_task = {s.task: s for s in summaries} | earlier
    ordered = [by_task[t.name] for t in config.tasks if t.name in by_task]
    result = _result(config, folder, ordered, failures, started, tracking_uri, optuna_url, state)
    _write_results(result, ordered, folder, out)
    write_state(
        folder, state, {t.name: "finished" if t.name in by_task else state for t in config.tasks}
    )
    message = {
        "interrupted": f"interrupted: resume with  adabert sweep {folder} --resume",
        "stopped": f"stopped: {stopped}; free space, then  adabert sweep {folder} --resume",
        "failed": f"{len(failures)} task(s) failed; retry with  adabert sweep {folder} --resume",
    }.get(state, "")
    if message:
        print(message, file=out)
    return SweepOutcome(state, result, message)


def _result(config, folder, summaries, failures, started, tracking_uri, optuna_url, state):
    ended = time.time()
    wall = ended - started
    # Only this run's work: a resumed sweep's tasks also hold the trials of earlier runs.
    spans = [s.prepare for s in summaries if s.prepare] + [
        t.work for s in summaries for t in s.trials
    ]
    intervals = [
        (max(a, started), min(b, ended))
        for a, b in spans
        if a is not None and b is not None and b >= started
    ]
    work = covered_seconds(intervals)
    return {
        "sweep": config.sweep.name,
        "state": state,
        "folder": str(folder),
        "tracking_uri": tracking_uri,
        "optuna_storage": optuna_url,
        "wall_seconds": wall,
        "work_seconds": work,
        "overhead_share": (wall - work) / wall if wall > 0 else 0.0,
        "overhead_seconds": overhead_breakdown(intervals, started, ended),
        "tasks": [s.to_dict() for s in summaries],
        "failures": failures,
    }


def _write_results(result: dict[str, Any], summaries, folder: Path, out) -> None:
    write_json_atomically(folder / SUMMARY, result)
    table, trials = summary_table(summaries), trials_table(summaries)
    (folder / "summary.md").write_text(f"{table}\n\nEvery trial:\n\n{trials}\n", encoding="utf-8")
    print(f"\n{table}\n\nEvery trial:\n\n{trials}", file=out)
    for line in warnings_for(summaries):
        print(line, file=out)
    for task, message in result["failures"].items():
        print(f"task {task} failed: {message} (details: {folder / 'errors' / task}.txt)", file=out)
    parts = result["overhead_seconds"]
    print(
        f"\nwall {result['wall_seconds']:.0f}s, trial and preparation work "
        f"{result['work_seconds']:.0f}s, orchestration overhead "
        f"{100 * result['overhead_share']:.1f}% (start-up {parts['startup']:.0f}s, gaps "
        f"{parts['gaps']:.0f}s, wrap-up {parts['wrap_up']:.0f}s)\n"
        f"MLflow UI: adabert ui --sweep {folder}",
        file=out,
    )
    for summary in summaries:
        if summary.registered_model:
            print(
                f"{summary.task}: adabert predict models:/{summary.registered_model}@champion "
                f'--tracking-uri {result["tracking_uri"]} --text "..."',
                file=out,
            )
