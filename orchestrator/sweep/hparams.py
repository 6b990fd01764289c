"""The outer hyperparameter search: Optuna's define-by-run space, storage and Ray's searcher.

The only module that imports Optuna. The architecture search is the inner, gradient-based one;
this is the outer search over its settings (K_max, β, γ, temperatures, learning rates).
"""

from __future__ import annotations

import zlib
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from orchestrator.sweep.config import ParamRange
from orchestrator.sweep.secrets import expand
from orchestrator.sweep.trial import NUMBER_KEY, TASK_KEY


class DefineByRun:
    """Optuna's define-by-run space: it suggests the tuned values and returns the constants
    every trial config carries (its task, its Optuna trial number). A class, not a closure,
    because Tune pickles the searcher into its experiment checkpoints."""

    def __init__(self, space: tuple[ParamRange, ...], task: str = "") -> None:
        self.space, self.task = space, task

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        for param in self.space:
            if param.type == "float":
                trial.suggest_float(param.key, param.low, param.high, log=param.log)
            elif param.type == "int":
                trial.suggest_int(param.key, int(param.low), int(param.high), log=param.log)
            else:
                trial.suggest_categorical(param.key, list(param.choices))
        return {TASK_KEY: self.task, NUMBER_KEY: trial.number}


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
    return optuna.storages.RDBStorage(expand(url), engine_kwargs=engine_kwargs)


# Result keys copied onto the Optuna trial as user attributes when it ends.
RECORDED_KEYS = ("mlflow_run_id", "genotype_hash", "student/params", "student/flops",
                 "latency/student_b1_ms", "retention", "epoch", "student/degenerate")  # fmt: skip
# A finished student no better than a constant prediction is infeasible: Optuna's
# ``study.best_trials`` (the Pareto front) leaves it out.
CONSTRAINT = "beats_constant_prediction"
ENDED_ATTR = "adabert.ended"


def _constraints(result: dict | None) -> dict[str, float] | None:
    if result and "student/degenerate" in result:
        return {CONSTRAINT: float(result["student/degenerate"])}
    return None


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that keeps Optuna's records exact.

    - Trials the scheduler stopped early are PRUNED: Ray's OptunaSearch tells Optuna COMPLETE
      with the truncated value (ray 2.60), which would sit on the Pareto front as if it were
      final. Trials mark their last report with ``is_final``; a completion without it is handed
      on with no result, which OptunaSearch records as PRUNED.
    - Each trial carries its MLflow run id, genotype hash and final metrics as user attributes,
      and a finished one a constraint that only students better than a constant prediction
      satisfy (so ``study.best_trials`` leaves the others out).
    - A trial whose Optuna record was closed when the sweep was interrupted (FAIL) and that Tune
      then resumed and finished is recorded again, as a new trial with the same parameters and
      a ``adabert.resumed_from`` attribute, so Optuna learns from the finished work.
    """

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id not in self._ot_trials:
            orphan = self._orphan()
            if orphan is not None:
                self._ot_trials[trial_id] = orphan
        return super().suggest(trial_id)

    def _orphan(self):
        """A trial Optuna holds as RUNNING that no Tune trial owns: asked by a driver that was
        killed before Tune saved its state. The next new Tune trial takes it over (its values
        were already suggested, so it runs exactly that configuration): each planned trial is
        recorded once."""
        owned = {trial._trial_id for trial in self._ot_trials.values()}
        running = self._ot_study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        )
        for frozen in running:
            if frozen._trial_id not in owned:
                return optuna.trial.Trial(self._ot_study, frozen._trial_id)
        return None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            if not self._is_open(ot_trial):
                return  # closed by an interruption; resumed work is recorded at its end
            if result.get("mlflow_run_id") and "mlflow_run_id" not in ot_trial.user_attrs:
                ot_trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        attrs = {k: v for k, v in (result or {}).items() if k in RECORDED_KEYS}
        if result is not None and not error and not result.get("is_final", False):
            result = None
        attrs[ENDED_ATTR] = "error" if error else ("final" if result else "stopped early")
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        if not self._is_open(ot_trial):
            self._record_again(ot_trial, result, error, attrs)
            self._completed_trials.add(trial_id)
            return
        for key, value in attrs.items():
            ot_trial.set_user_attr(key, value)
        for key, value in (_constraints(result) or {}).items():
            ot_trial.set_constraint(key, value)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _is_open(self, ot_trial) -> bool:
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        return not frozen.state.is_finished()

    def _record_again(self, ot_trial, result, error: bool, attrs: dict) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics] if result else None
        state = optuna.trial.TrialState.COMPLETE
        if values is None or any(v is None for v in values):
            values = None
            state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        self._ot_study.add_trial(
            optuna.trial.create_trial(
                params=frozen.params,
                distributions=frozen.distributions,
                values=values,
                state=state,
                user_attrs={**frozen.user_attrs, **attrs, "adabert.resumed_from": frozen.number},
                constraints=_constraints(result),
            )
        )


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
    task: str = "",
) -> PruneAwareOptunaSearch:
    """Single objective (maximise the task metric) or [metric, cost] (maximise, minimise)."""
    modes = ["max"] + ["min"] * (len(metrics) - 1)
    searcher = PruneAwareOptunaSearch(
        space=DefineByRun(space, task),
        metric=metrics[0] if len(metrics) == 1 else metrics,
        mode=modes[0] if len(metrics) == 1 else modes,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
        study_name=study_name,
        storage=storage(storage_url),
    )
    point = default_point(space, base) if enqueue_defaults else {}
    if point:
        # Not OptunaSearch's points_to_evaluate: a sweep restarted before Tune saved any state
        # builds a new searcher, and Optuna's skip_if_exists keeps the point from running twice.
        load_study(study_name, storage_url).enqueue_trial(point, skip_if_exists=True)
    return searcher


def load_study(study_name: str, storage_url: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=storage(storage_url))


def trial_states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def best_feasible_value(study: optuna.Study) -> float | None:
    """The best first objective among the trials Optuna counts as feasible (``CONSTRAINT``: a
    one-class student can outscore every learning one, but is never the best); what a progress
    line may call "best". None before the first feasible trial ends."""
    values = [trial.values[0] for trial in study.best_trials]
    return max(values) if values else None


def close_running_trials(study_name: str, storage_url: str, reason: str) -> int:
    """FAIL every trial of the study still RUNNING (interrupted, or asked by a driver that died
    before Tune recorded it), with the reason as an attribute; returns how many."""
    try:
        study = load_study(study_name, storage_url)
    except KeyError:  # the task never reached its tuning phase
        return 0
    closed = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, ENDED_ATTR, reason)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        closed += 1
    return closed
