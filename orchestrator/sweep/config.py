"""SweepConfig: what ``adabert sweep`` runs, read from TOML and validated before anything starts.

A sweep file has four parts::

    [sweep]                      # how: trials, concurrency, objectives, scheduler, stores
    [base.<section>]             # a RunConfig shared by every task (teacher, data, search, ...)
    [[tasks]]                    # one entry per task: TaskSection keys, or demo = "sentiment",
                                 # plus overrides = ["data.max_train_samples=2000", ...]
    [space]                      # the outer hyperparameters Optuna tunes, as dotted RunConfig keys
    "loss.efficiency_weight" = { type = "float", low = 0.5, high = 8.0, log = true }

``sweep.*``, ``base.<section>.*`` and ``space`` entries can be overridden with ``--set``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from orchestrator.config import (
    RunConfig,
    build_config,
    build_section,
    merge_overrides,
    parse_override,
    read_toml,
)
from orchestrator.errors import UserInputError
from orchestrator.names import check_identifier
from orchestrator.storage import check_no_credentials, is_uri, join
from orchestrator.sweep.secrets import check_no_plain_password

BUILTIN_CONFIGS = ("demo",)
OBJECTIVES = ("params", "flops", "latency")
SCHEDULERS = ("asha", "fifo")


def _check(condition: bool, name: str, value: object, rule: str) -> None:
    if not condition:
        raise UserInputError(f"{name} must be {rule}, got {value!r}")


def _positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _check(value >= 1, f"sweep.{name}", value, ">= 1")


@dataclass(frozen=True)
class SweepSection:
    name: str = "sweep"
    root: str = "sweeps"  # the sweep folder is <root>/<name>
    trials_per_task: int = 8
    max_concurrent_trials: int = 2  # per task; tasks run side by side on the cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    cpus_per_prepare: float = 1.0
    # Besides the task metric (maximised): "" (single objective) or params/flops/latency
    # (minimised), which makes the study multi-objective with a Pareto front per task.
    second_objective: str = ""
    scheduler: str = "asha"
    grace_period: int = 2  # epochs (search + retrain) every trial gets before ASHA may stop it
    reduction_factor: int = 2
    seed: int = 0  # TPE seed; each task's study adds a stable offset from its name
    # Trials TPE samples at random before it models the results (the enqueued defaults count).
    # Optuna's default, 10, exceeds a typical CPU sweep of 8 trials per task, which would make
    # the whole study a random search.
    startup_trials: int = 4
    enqueue_defaults: bool = True  # the first trial of every study runs the base config as is
    address: str = ""  # "" starts a local Ray; "auto" or an address joins a cluster
    object_store_mb: int = 256
    dashboard: bool = False
    tracking_uri: str = ""  # "" = sqlite file in the sweep folder
    optuna_storage: str = ""  # "" = sqlite file in the sweep folder
    # Ray Tune's storage (trial checkpoints, experiment state) as a path or URI (s3://, gs://)
    # that every node reaches; the sweep uses <storage>/<name>. "" = <sweep folder>/tune.
    # `adabert sweep --storage URI` (or $ADABERT_STORAGE) sets it with the cache and artifacts.
    storage: str = ""
    # Where a new MLflow experiment keeps its artifacts (students, plots), as a path or URI;
    # the sweep uses <artifact_location>/<name>. "" = <sweep folder>/mlartifacts with the default
    # SQLite store, the tracking server's own default otherwise.
    artifact_location: str = ""
    # The champion (registered, the summary's "best") is the trial with the fewest FLOPs among
    # those within this much of the best task metric (absolute: 0.005 = half a point of
    # accuracy, F1 or correlation, one example in 200 on the demo's dev sets). Users ship under
    # latency budgets; a dev-set difference that small is noise. 0 = the best metric alone.
    champion_tolerance: float = 0.005
    register_best: bool = True
    log_model: bool = True
    demo_train_size: int = 400
    demo_dev_size: int = 200

    # A killed or crashed trial is restarted from its last epoch checkpoint this many times.
    max_failures: int = 2
    # The sweep stops (records closed, resumable) when free space under its folder falls below
    # this, and refuses to start below it: a full disk cannot record that runs ended.
    min_free_mb: int = 256

    def __post_init__(self) -> None:
        check_identifier(self.name, "sweep.name")
        _check(bool(self.root.strip()), "sweep.root", self.root, "a folder")
        check_no_plain_password(self.tracking_uri, "sweep.tracking_uri")
        check_no_plain_password(self.optuna_storage, "sweep.optuna_storage")
        for name in ("storage", "artifact_location"):
            check_no_credentials(getattr(self, name), f"sweep.{name}")
        _positive(self, "trials_per_task", "max_concurrent_trials", "startup_trials")
        _positive(self, "grace_period", "demo_train_size", "demo_dev_size")
        _check(self.cpus_per_trial > 0, "sweep.cpus_per_trial", self.cpus_per_trial, "> 0")
        _check(self.gpus_per_trial >= 0, "sweep.gpus_per_trial", self.gpus_per_trial, ">= 0")
        _check(self.cpus_per_prepare > 0, "sweep.cpus_per_prepare", self.cpus_per_prepare, "> 0")
        _check(
            self.second_objective in ("", *OBJECTIVES),
            "sweep.second_objective",
            self.second_objective,
            f"'' or one of {list(OBJECTIVES)}",
        )
        _check(self.scheduler in SCHEDULERS, "sweep.scheduler", self.scheduler, str(SCHEDULERS))
        _check(self.reduction_factor >= 2, "sweep.reduction_factor", self.reduction_factor, ">= 2")
        _check(self.object_store_mb >= 80, "sweep.object_store_mb", self.object_store_mb, ">= 80")
        _check(self.max_failures >= 0, "sweep.max_failures", self.max_failures, ">= 0")
        _check(self.min_free_mb >= 0, "sweep.min_free_mb", self.min_free_mb, ">= 0")
        _check(
            0 <= self.champion_tolerance < 1,
            "sweep.champion_tolerance",
            self.champion_tolerance,
            "in [0, 1)",
        )
        for name in ("demo_train_size", "demo_dev_size"):
            _check(getattr(self, name) >= 8, f"sweep.{name}", getattr(self, name), ">= 8")


@dataclass(frozen=True)
class ParamRange:
    """One tuned hyperparameter: a float or int range (optionally log-scaled) or choices."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class TaskEntry:
    name: str
    overrides: tuple[str, ...] = ()  # dotted --set style overrides for this task only
    demo: str = ""  # generate this demo task's data into the sweep folder


@dataclass(frozen=True)
class SweepConfig:
    sweep: SweepSection
    base: dict[str, dict[str, Any]]
    tasks: tuple[TaskEntry, ...]
    space: tuple[ParamRange, ...] = field(default=())
    # The file's tables after overrides, paths made absolute: what sweep.json records and what
    # a resumed sweep is rebuilt from.
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def folder(self) -> Path:
        return (Path(self.sweep.root) / self.sweep.name).resolve()

    @property
    def tune_storage(self) -> str:
        """Ray Tune's ``storage_path`` for this sweep: a path or a URI."""
        if not self.sweep.storage:
            return str(self.folder / "tune")
        return join(self.sweep.storage, self.sweep.name)

    @property
    def artifact_location(self) -> str | None:
        """A new MLflow experiment's artifact location; None = the tracking server's default."""
        if self.sweep.artifact_location:
            return join(self.sweep.artifact_location, self.sweep.name)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep": dataclasses.asdict(self.sweep),
            "base": self.base,
            "tasks": [dataclasses.asdict(t) for t in self.tasks],
            "space": {p.key: _range_to_dict(p) for p in self.space},
        }


def _range_to_dict(param: ParamRange) -> dict[str, Any]:
    if param.type == "categorical":
        return {"type": "categorical", "choices": list(param.choices)}
    return {"type": param.type, "low": param.low, "high": param.high, "log": param.log}


def _field_type(key: str) -> Any:
    """The annotation of a dotted RunConfig field, or a UserInputError naming the bad key."""
    section, _, name = key.partition(".")
    sections = typing.get_type_hints(RunConfig)
    if section not in sections or not name:
        raise UserInputError(f"space key {key!r} must be section.field of the run config")
    fields = typing.get_type_hints(sections[section])
    if name not in fields:
        raise UserInputError(f"space key {key!r}: [{section}] has no field {name!r}")
    return fields[name]


def parse_range(key: str, spec: Any) -> ParamRange:
    if not isinstance(spec, dict):
        raise UserInputError(f"space.{key} must be a table like {{type = 'float', ...}}")
    expected = _field_type(key)
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "choices"})
    if unknown:
        raise UserInputError(f"space.{key} has unknown key(s): {', '.join(unknown)}")
    if kind == "categorical":
        choices = spec.get("choices")
        _check(isinstance(choices, list) and choices, f"space.{key}.choices", choices, "a list")
        return ParamRange(key, "categorical", choices=tuple(choices))
    _check(kind in ("float", "int"), f"space.{key}.type", kind, "'float', 'int' or 'categorical'")
    if kind == "float" and expected is not float:
        raise UserInputError(f"space.{key}: type 'float' but the field is {expected}")
    if kind == "int" and expected is not int:
        raise UserInputError(f"space.{key}: type 'int' but the field is {expected}")
    low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    for bound_name, bound in (("low", low), ("high", high)):
        _check(
            isinstance(bound, (int, float)) and not isinstance(bound, bool),
            f"space.{key}.{bound_name}",
            bound,
            "a number",
        )
    _check(low < high, f"space.{key}.low", low, f"< high ({high})")
    _check(not log or low > 0, f"space.{key}.low", low, "> 0 for a log range")
    if kind == "int":
        _check(low == int(low) and high == int(high), f"space.{key}", (low, high), "integers")
    return ParamRange(key, kind, float(low), float(high), log)


def _parse_task(entry: Any, index: int) -> TaskEntry:
    if not isinstance(entry, dict):
        raise UserInputError(f"tasks[{index}] must be a table")
    entry = dict(entry)
    overrides = entry.pop("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UserInputError(f"tasks[{index}].overrides must be a list of 'section.key=value'")
    demo = entry.pop("demo", "")
    if demo:
        from orchestrator.tasks.demo import DEMO_TASKS

        _check(demo in DEMO_TASKS, f"tasks[{index}].demo", demo, f"one of {sorted(DEMO_TASKS)}")
    name = check_identifier(entry.get("name", demo), f"tasks[{index}].name")
    entry["name"] = name
    task_overrides = [f"task.{key}={_toml_value(value)}" for key, value in entry.items()]
    return TaskEntry(name=name, overrides=tuple(task_overrides + overrides), demo=demo)


def _toml_value(value: Any) -> str:
    return json.dumps(value)


def _load_raw(source: str) -> dict[str, Any]:
    """A built-in config name (``demo``) or a TOML file path."""
    if source in BUILTIN_CONFIGS:
        # The configs package itself, not "orchestrator": run by the `pytest` script, tests/ comes
        # first on sys.path and its orchestrator/ folder makes "orchestrator" a namespace whose
        # files() would look there first.
        text = resources.files("orchestrator.configs").joinpath(f"{source}.toml").read_text()
        return tomllib.loads(text)
    return read_toml(source)


def _apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        key, value = parse_override(item, levels=(2, 3))
        head, _, rest = key.partition(".")
        if head == "sweep":
            raw.setdefault("sweep", {})[rest] = value
        elif head == "base":
            section, _, name = rest.partition(".")
            if not name:
                raise UserInputError(f"override {item!r} must be base.section.key=value")
            base = raw.setdefault("base", {})
            base[section] = {**base.get(section, {}), name: value}
        elif head == "space":
            raw.setdefault("space", {})[rest] = value
        else:
            raise UserInputError(f"override {item!r} must start with sweep., base. or space.")
    return raw


PATH_KEYS = ("train_file", "dev_file", "data_dir")


def _absolute_paths(raw: dict[str, Any]) -> dict[str, Any]:
    """Folder and file settings made absolute against the working directory, so the recorded
    config means the same thing when a sweep is resumed from elsewhere."""
    raw = json.loads(json.dumps(raw))
    sweep = raw.setdefault("sweep", {})
    if isinstance(sweep, dict) and isinstance(sweep.get("root", "sweeps"), str):
        sweep["root"] = os.path.abspath(sweep.get("root", "sweeps"))
    for key in ("storage", "artifact_location"):
        if isinstance(sweep, dict) and isinstance(sweep.get(key), str):
            sweep[key] = _absolute(sweep[key])
    run = raw.setdefault("base", {}).setdefault("run", {})
    if isinstance(run, dict) and isinstance(run.get("cache_dir", ".adabert/cache"), str):
        run["cache_dir"] = _absolute(run.get("cache_dir", ".adabert/cache"))
    for entry in raw.get("tasks", []):
        for key in PATH_KEYS:
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                entry[key] = os.path.abspath(entry[key])
    return raw


def _absolute(location: str) -> str:
    """A path made absolute; a URI or "" as given."""
    return location if (not location or is_uri(location)) else os.path.abspath(location)


def load_sweep_config(source: str, overrides: list[str] | None = None) -> SweepConfig:
    """A built-in config name (``demo``) or a TOML file, with ``--set`` overrides."""
    raw = _apply_overrides(_load_raw(source), list(overrides or []))
    return parse_sweep_config(_absolute_paths(raw))


def parse_sweep_config(raw: dict[str, Any]) -> SweepConfig:
    """Validate the tables of a sweep file (or of a recorded sweep.json)."""
    if not isinstance(raw, dict):
        raise UserInputError(f"a sweep config must be a table of sections, got {raw!r}")
    unknown = sorted(set(raw) - {"sweep", "base", "tasks", "space"})
    if unknown:
        raise UserInputError(f"unknown sweep config section(s): {', '.join(unknown)}")
    sweep = build_section(SweepSection, raw.get("sweep", {}), "sweep")
    base = raw.get("base", {})
    if not isinstance(base, dict) or not all(isinstance(v, dict) for v in base.values()):
        raise UserInputError("[base] must hold tables like [base.search]")
    if "task" in base:
        raise UserInputError("[base.task] is not allowed: tasks come from [[tasks]]")
    entries = raw.get("tasks", [])
    if not isinstance(entries, list):
        raise UserInputError("tasks must be a list of [[tasks]] tables")
    tasks = tuple(_parse_task(entry, i) for i, entry in enumerate(entries))
    if not tasks:
        raise UserInputError("a sweep needs at least one [[tasks]] entry")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise UserInputError(f"task names must be unique in a sweep, got {names}")
    space_tables = raw.get("space", {})
    if not isinstance(space_tables, dict):
        raise UserInputError("[space] must be a table of 'section.key' = { ... } entries")
    space = tuple(parse_range(key, spec) for key, spec in space_tables.items())
    config = SweepConfig(sweep=sweep, base=base, tasks=tasks, space=space, raw=raw)
    for task in tasks:
        task_run_config(config, task, data_root=Path("/nonexistent"))  # validates early
    return config


def task_run_config(
    config: SweepConfig, task: TaskEntry, *, data_root: Path, hparams: dict | None = None
) -> RunConfig:
    """The RunConfig of one task: base, then the task's entry, then sampled hyperparameters."""
    overrides = dict(parse_override(o) for o in task.overrides)
    if task.demo:
        overrides |= demo_task_overrides(task.demo, data_root / task.demo)
    overrides |= dict(hparams or {})
    return build_config(merge_overrides(config.base, overrides))


def demo_task_overrides(demo: str, folder: Path) -> dict[str, Any]:
    """Task fields of a generated demo task, as a custom task on CSV/JSONL files."""
    from orchestrator.tasks.demo import DEMO_TASKS

    spec = DEMO_TASKS[demo]
    suffix = "jsonl" if spec.is_pair else "csv"
    values = {
        "task.train_file": str(folder / f"train.{suffix}"),
        "task.dev_file": str(folder / f"dev.{suffix}"),
        "task.text_a": spec.text_columns[0],
        "task.label_column": spec.label_column,
        "task.labels": list(spec.label_names),
        "task.metric": spec.metric,
    }
    if spec.is_pair:
        values["task.text_b"] = spec.text_columns[1]
    return values


def smoke_test_overrides() -> list[str]:
    """Tiny budgets for ``--smoke-test`` (Ray Tune example convention): minutes, not hours."""
    return [
        "sweep.trials_per_task=2",
        "sweep.grace_period=1",
        "sweep.demo_train_size=64",
        "sweep.demo_dev_size=32",
        "base.data.max_train_samples=64",
        "base.data.max_dev_samples=32",
        "base.data.max_seq_length=32",
        "base.data.augment_copies=1",
        "base.teacher.epochs=1.0",
        "base.teacher.probe_epochs=1",
        "base.search.epochs=2",
        "base.retrain.epochs=1",
        "base.run.latency_repeats=1",
    ]
