"""``adabert sweep``: the driver of a multi-task compression sweep.

Sets up the sweep folder (SQLite stores for MLflow and Optuna by default), starts or joins Ray,
opens one MLflow parent run per task, runs every task's Ray Tune experiment side by side, shows
their progress, and ends with a results table. Embedded defaults need no server of any kind.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator import hparams, tracking
from orchestrator.errors import UserInputError
from orchestrator.sweep_config import SweepConfig, task_run_config
from orchestrator.trial import TrackingTarget

PROGRESS_EVERY_S = 15.0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def stores(config: SweepConfig) -> tuple[str, str]:
    """(MLflow tracking URI, Optuna storage URL): explicit, never relative to a working dir."""
    folder = config.folder
    tracking_uri = config.sweep.tracking_uri or sqlite_url(folder / "mlflow.db")
    optuna_url = config.sweep.optuna_storage or sqlite_url(folder / "optuna.db")
    return tracking_uri, optuna_url


def _prepare_folder(config: SweepConfig, resume: bool) -> Path:
    folder = config.folder
    if (folder / "sweep.json").exists() and not resume:
        raise UserInputError(
            f"sweep folder {folder} exists: pass --resume to continue it, or set sweep.name"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return folder


def _generate_demo_data(config: SweepConfig, data_root: Path) -> None:
    from orchestrator.demo_data import DEMO_TASKS, write_demo_task

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


@contextlib.contextmanager
def ray_session(config: SweepConfig, address: str | None, env: dict[str, str]) -> Iterator[None]:
    """A local Ray (capped object store, no dashboard unless asked) or the given cluster."""
    import ray

    address = address if address is not None else (config.sweep.address or None)
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            include_dashboard=config.sweep.dashboard,
            object_store_memory=config.sweep.object_store_mb * 2**20,
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield
    finally:
        ray.shutdown()


def _progress_line(snapshot: dict[str, dict[str, Any]], started: float) -> str:
    parts = []
    for task, state in sorted(snapshot.items()):
        best = "-" if state["best"] is None else f"{state['best']:.4f}"
        parts.append(
            f"{task}: {state['phase']}, {state['running']} running, {state['done']} done, "
            f"{state['pruned']} pruned, {state['failed']} failed, best {best}"
        )
    return f"[{time.time() - started:6.0f}s] " + " | ".join(parts)


def covered_seconds(intervals: list[list[float]]) -> float:
    """Length of the union of [start, end] intervals (time some trial or preparation worked)."""
    total, end = 0.0, None
    for start, stop in sorted((a, b) for a, b in intervals if a is not None and b is not None):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def overhead_breakdown(intervals: list[list[float]], started: float, ended: float) -> dict:
    """Where the time outside trial work went: before the first work began (Ray start-up,
    stores), in gaps between work, and after the last work ended (final timing, Pareto plots,
    model registry, Ray shutdown)."""
    spans = [(a, b) for a, b in intervals if a is not None and b is not None]
    if not spans:
        return {"startup": ended - started, "gaps": 0.0, "wrap_up": 0.0}
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    gaps = (last - first) - covered_seconds(spans)
    return {"startup": first - started, "gaps": gaps, "wrap_up": ended - last}


def summary_table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| task | metric | teacher | best student | retention | params | size vs teacher | "
        "latency b1 (ms) | speedup b1 | speedup b32 | trials (done/pruned/failed) | genotype |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for s in summaries:
        best, name = s.get("best"), s["metric_name"]
        teacher = s["teacher_metrics"].get(name.replace("dev/", "teacher/"))
        counts = [
            sum(r["status"] == k for r in s["trials"]) for k in ("complete", "pruned", "error")
        ]
        if best is None:
            lines.append(f"| {s['task']} | {name} | {teacher:.4f} | - | - | - | - | - | - | - | "
                         f"{'/'.join(map(str, counts))} | - |")  # fmt: skip
            continue
        latency = best.get("final_latency", {})
        retention = f"{best['metric'] / teacher:.3f}" if teacher else "-"
        lines.append(
            f"| {s['task']} | {name} | {teacher:.4f} | {best['metric']:.4f} | "
            f"{retention} | {best['params'] / 1e6:.2f}M | "
            f"{s['teacher_params'] / best['params']:.1f}x | "
            f"{latency.get('latency/student_b1_ms', float('nan')):.2f} | "
            f"{latency.get('speedup/b1', float('nan')):.1f}x | "
            f"{latency.get('speedup/b32', float('nan')):.1f}x | "
            f"{'/'.join(map(str, counts))} | `{best['genotype_hash']}` |"
        )
    return "\n".join(lines)


def _plans(config, folder, data_root, tracking_uri, optuna_url, experiment_id, resume):
    from orchestrator.tuner import TaskPlan

    plans = []
    for task in config.tasks:
        base = task_run_config(config, task, data_root=data_root).to_dict()
        parent = tracking.parent_run(
            tracking_uri, experiment_id, sweep=config.sweep.name, task=task.name
        )
        tracking.log_to_run(
            tracking_uri,
            parent,
            tags={"adabert.sweep_folder": str(folder), "adabert.base_config": json.dumps(base)},
        )
        plans.append(
            TaskPlan(
                task=task.name,
                sweep_name=config.sweep.name,
                base_config=base,
                space=config.space,
                sweep=config.sweep,
                storage_path=str(folder / "tune"),
                optuna_url=optuna_url,
                target=TrackingTarget(
                    tracking_uri, experiment_id, parent, task.name, config.sweep.log_model
                ),
                resume=resume,
            )
        )
    return plans


def _environment(tracking_uri: str) -> dict[str, str]:
    """Set here and in every Ray worker: local workers only inherit what precedes ray.init."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        # A latency objective is only measured at a trial's end: epoch reports go without it.
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    }


def _run_tasks(plans, config: SweepConfig, *, address, env, folder: Path, started: float, out):
    """All tasks side by side; (summaries, failures) once every task has ended."""
    import ray

    from orchestrator.tuner import SweepMonitor, run_task_remotely

    summaries, failures = [], {}
    with ray_session(config, address, env):
        monitor = SweepMonitor.remote()
        for plan in plans:
            monitor.event.remote(plan.task, "phase", "preparing")
        pending = {run_task_remotely.remote(plan, monitor): plan for plan in plans}
        print(f"sweep {config.sweep.name}: {len(plans)} task(s) in {folder}", file=out, flush=True)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY_S)
            for ref in done:
                plan = pending.pop(ref)
                try:
                    summaries.append(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    failures[plan.task] = str(exc).strip().splitlines()[-1]
                    (folder / "errors").mkdir(exist_ok=True)
                    (folder / "errors" / f"{plan.task}.txt").write_text(str(exc))
            print(_progress_line(ray.get(monitor.snapshot.remote()), started), file=out, flush=True)
    order = [p.task for p in plans]
    return sorted(summaries, key=lambda s: order.index(s["task"])), failures


def _write_results(result: dict[str, Any], folder: Path, out) -> None:
    (folder / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = summary_table(result["tasks"])
    (folder / "summary.md").write_text(table + "\n")
    print("\n" + table, file=out)
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


def run_sweep(
    config: SweepConfig, *, resume: bool = False, address: str | None = None, out=None
) -> dict[str, Any]:
    """Run every task's study; returns (and writes to summary.json) the per-task summaries."""
    out = out or sys.stdout
    started = time.time()
    folder = _prepare_folder(config, resume)
    data_root = folder / "data"
    _generate_demo_data(config, data_root)
    tracking_uri, optuna_url = stores(config)
    env = _environment(tracking_uri)
    os.environ.update(env)
    artifacts = str(folder / "mlartifacts") if tracking_uri.startswith("sqlite") else None
    experiment_id = tracking.ensure_experiment(
        tracking_uri, f"adabert-{config.sweep.name}", artifacts
    )
    hparams.storage(optuna_url)  # create the schema once, before tasks race to do it
    plans = _plans(config, folder, data_root, tracking_uri, optuna_url, experiment_id, resume)
    try:
        summaries, failures = _run_tasks(
            plans, config, address=address, env=env, folder=folder, started=started, out=out
        )
    finally:
        # Interrupted or crashed: what is still open was stopped, not finished (resume reopens).
        tracking.close_open_runs(tracking_uri, experiment_id, status="KILLED")
    ended = time.time()
    wall = ended - started
    intervals = [s["prepare"] for s in summaries] + [
        r["work"] for s in summaries for r in s["trials"]
    ]
    work = covered_seconds(intervals)
    result = {
        "sweep": config.sweep.name,
        "folder": str(folder),
        "tracking_uri": tracking_uri,
        "optuna_storage": optuna_url,
        "wall_seconds": wall,
        "work_seconds": work,
        "overhead_share": (wall - work) / wall if wall > 0 else 0.0,
        "overhead_seconds": overhead_breakdown(intervals, started, ended),
        "tasks": summaries,
        "failures": failures,
    }
    _write_results(result, folder, out)
    return result
