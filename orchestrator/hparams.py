"""The outer hyperparameter search: Optuna's define-by-run space, storage and Ray's searcher.

The only module that imports Optuna. The architecture search is the inner, gradient-based one;
this is the outer search over its settings (K_max, β, γ, temperatures, learning rates).
"""

from __future__ import annotations

import zlib
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from orchestrator.sweep_config import ParamRange


class DefineByRun:
    """Optuna's define-by-run space: it only suggests (Ray Tune example convention). A class,
    not a closure, because Tune pickles the searcher into its experiment checkpoints."""

    def __init__(self, space: tuple[ParamRange, ...]) -> None:
        self.space = space

    def __call__(self, trial: optuna.Trial) -> None:
        for param in self.space:
            if param.type == "float":
                trial.suggest_float(param.key, param.low, param.high, log=param.log)
            elif param.type == "int":
                trial.suggest_int(param.key, int(param.low), int(param.high), log=param.log)
            else:
                trial.suggest_categorical(param.key, list(param.choices))


def study_seed(sweep_seed: int, task: str) -> int:
    """The sampler seed of one task's study: stable across runs and machines (crc32, not
    hash()), and different per task, so that two tasks do not draw the same trials."""
    return sweep_seed + zlib.crc32(task.encode()) % 100_000


def default_point(space: tuple[ParamRange, ...], base: dict[str, dict[str, Any]]) -> dict:
    """The base config's own values for the tuned keys, when they lie inside the ranges, so a
    study's first trial measures the paper's defaults before Optuna explores."""
    point = {}
    for param in space:
        section, name = param.key.split(".", 1)
        value = base.get(section, {}).get(name)
        if value is None:
            continue
        if param.type == "categorical":
            if value in param.choices:
                point[param.key] = value
        elif param.low <= value <= param.high:
            point[param.key] = int(value) if param.type == "int" else float(value)
    return point if len(point) == len(space) else {}


def storage(url: str) -> optuna.storages.RDBStorage:
    """Any SQLAlchemy URL; SQLite waits for its lock instead of failing under parallel tasks."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records trials stopped early by the scheduler as PRUNED.

    Ray's OptunaSearch tells Optuna COMPLETE with the truncated value of a trial that ASHA
    stopped (ray 2.60); such a value would sit on the Pareto front as if it were final. Trials
    mark their last report with ``is_final``; a completion without it is handed on with no
    result, which OptunaSearch records as PRUNED (its public contract for "no value, no error").
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if result is not None and not error and not result.get("is_final", False):
            result = None
        super().on_trial_complete(trial_id, result=result, error=error)


def make_searcher(
    *,
    space: tuple[ParamRange, ...],
    base: dict[str, dict[str, Any]],
    metrics: list[str],
    study_name: str,
    storage_url: str,
    seed: int,
    enqueue_defaults: bool,
    startup_trials: int = 10,
) -> PruneAwareOptunaSearch:
    """Single objective (maximise the task metric) or [metric, cost] (maximise, minimise)."""
    points = [default_point(space, base)] if enqueue_defaults else []
    modes = ["max"] + ["min"] * (len(metrics) - 1)
    return PruneAwareOptunaSearch(
        space=DefineByRun(space),
        metric=metrics[0] if len(metrics) == 1 else metrics,
        mode=modes[0] if len(metrics) == 1 else modes,
        points_to_evaluate=[p for p in points if p] or None,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
        study_name=study_name,
        storage=storage(storage_url),
    )


def load_study(study_name: str, storage_url: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=storage(storage_url))


def trial_states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts
