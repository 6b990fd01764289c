"""RunConfig: every setting of one task's search -> derive -> retrain run, from TOML + overrides.

Sections are frozen dataclasses validated on construction; ``SupernetConfig`` and ``LossConfig``
live beside their components. Fields of ``supernet`` that depend on the teacher and the task
(vocab_size, num_labels, max_positions, teacher_embedding_size) are filled in by the pipeline.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from losses.config import LossConfig
from orchestrator.errors import UserInputError
from orchestrator.names import RULE, is_identifier
from searchspace.config import SupernetConfig


def _check(condition: bool, name: str, value: object, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class TaskSection:
    name: str = "sst2"
    # GLUE TSV folder (the GLUE root or the task's folder); None with no files = the hub.
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    text_a: str | None = None
    text_b: str | None = None
    label_column: str | None = None
    # Custom tasks only (a name not in the GLUE registry): label values, None = regression.
    labels: list[str] | None = None
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        # The name becomes folder, run, experiment and model names: an identifier, never a path.
        _check(is_identifier(self.name), "task.name", self.name, RULE)


@dataclass(frozen=True)
class TeacherSection:
    name_or_path: str = "bert-base-uncased"
    fine_tuned: bool = False
    epochs: float = 3.0
    learning_rate: float = 2e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    probe_epochs: int = 5
    probe_learning_rate: float = 5e-3

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "teacher.epochs", self.epochs, ">= 0")
        _check(self.learning_rate > 0, "teacher.learning_rate", self.learning_rate, "> 0")
        _check(self.batch_size >= 1, "teacher.batch_size", self.batch_size, ">= 1")
        _check(0 <= self.warmup_ratio < 1, "teacher.warmup_ratio", self.warmup_ratio, "in [0, 1)")
        _check(self.probe_epochs >= 1, "teacher.probe_epochs", self.probe_epochs, ">= 1")


@dataclass(frozen=True)
class DataSection:
    max_seq_length: int = 128
    max_train_samples: int | None = None
    max_dev_samples: int | None = None
    batch_size: int = 64
    # The transfer set: the training set plus augmented copies the teacher labels once
    # (orchestrator.tasks.augment). Unset = the recipe of the paper's headline figures
    # ([A-PT]/TinyBERT: 20 copies for SST-2/QNLI, 30 for MRPC/CoLA/STS-B/RTE, 10 for MNLI/QQP;
    # other tasks 20, or 30 for pairs); 0 = the training set alone (NAS-BERT's "no DA" rows).
    augment_copies: int | None = None
    # Word substitution by teacher-embedding neighbours: unset = 0.4 single sentences, 0.3 pairs
    # ([A-PT]); masking and n-gram sampling from Tang et al. 2019; top-15 from TinyBERT.
    augment_substitute_prob: float | None = None
    augment_mask_prob: float = 0.1
    augment_ngram_prob: float = 0.25
    augment_neighbours: int = 15

    def __post_init__(self) -> None:
        _check(self.max_seq_length >= 8, "data.max_seq_length", self.max_seq_length, ">= 8")
        _check(self.batch_size >= 1, "data.batch_size", self.batch_size, ">= 1")
        for name in ("max_train_samples", "max_dev_samples"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"data.{name}", value, ">= 1 or unset")
        copies = self.augment_copies
        _check(copies is None or copies >= 0, "data.augment_copies", copies, ">= 0 or unset")
        for name in ("augment_substitute_prob", "augment_mask_prob", "augment_ngram_prob"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= 1, f"data.{name}", value, "in [0, 1]")
        substitute = self.augment_substitute_prob or 0.0
        _check(
            self.augment_mask_prob + substitute <= 1,
            "data.augment_mask_prob + data.augment_substitute_prob",
            self.augment_mask_prob + substitute,
            "<= 1",
        )
        _check(
            self.augment_neighbours >= 1, "data.augment_neighbours", self.augment_neighbours, ">= 1"
        )


@dataclass(frozen=True)
class SearchSection:
    """Method notes section 7: 80 epochs; w: SGD 0.9, cosine 2e-2 -> 5e-4, wd 3e-4; α: Adam 3e-4,
    betas (0.5, 0.999), wd 1e-3; clip 5; joint single-level optimisation on the training set."""

    epochs: int = 80
    weight_lr: float = 2e-2
    weight_lr_min: float = 5e-4
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    # "joint" ([A-PT], [A-ET]): both optimisers step on the same training batch.
    # "alternating" ([PS], first-order DARTS): w on one half of train, α on the other half.
    optimization: str = "joint"
    temperature_initial: float = 1.0
    temperature_minimum: float = 0.2
    temperature_decay: str = "to_minimum"
    exclude_zero: bool = True
    max_steps_per_epoch: int | None = None
    # Share of the epochs in which only the weights learn, under architectures sampled from the
    # initial (uniform) α. Not in the paper or its code: a guard against the collapse where the
    # depth or op trained first (the embedding-only head learns fastest) wins because it is
    # sampled, hence trained, most. 0 reproduces the authors' joint optimisation from step one.
    arch_warmup_fraction: float = 0.2
    # Ours (the "train every op during warm-up"; DARTS's continuous relaxation at a
    # uniform α): in the warm-up epochs every op on every edge runs and trains, mixed with
    # uniform weights, and every depth's head trains. A hard Gumbel sample trains only the op
    # it picks, in either mixed_op_mode, so a convolution gets about 1 warm-up step in 10 while
    # pooling needs none. A warm-up step then costs about ten sampled steps. False = the
    # warm-up samples as the search does (AdaBERT's sources have no warm-up). Off by default:
    # on SST-2 and MRPC it left the search's score unchanged at about three times the search
    # time (README, the collapse table).
    warmup_all_ops: bool = False
    # Collapse guards against parameter-free ops (pooling, identity, zero) winning the search.
    # P-DARTS (Chen et al. 2019) keeps at most M = 2 skips at derive time; here the cap covers
    # every parameter-free op of the derived cell, the excess ones take their best
    # parametrised op. None = no cap (AdaBERT's sources), the default: with the transfer set,
    # pooling cells matched convolution cells on the demo tasks at a third of the cost
    # (README, "The collapse"), and the cap makes every student conv-heavy and slow.
    max_param_free_edges: int | None = None
    # Ours: derive-time candidates ranked on dev. Besides the genotype derived under
    # max_param_free_edges, derive one more from the same α under each cap listed here (at most
    # that many parameter-free edges per cell); every distinct candidate is retrained with the
    # same data order and steps, and the student with the best dev score is kept. The cap then
    # becomes a choice the task's data makes, not a fixed M. Each extra candidate costs one
    # more retrain. () = the argmax genotype only (AdaBERT's sources).
    candidate_param_free_caps: tuple[int, ...] = ()
    # Ours: the most FLOPs per example (at data.max_seq_length, as `student/flops` reports them)
    # a derived student may cost, for a user with a latency budget. A candidate over it keeps
    # the deepest stack of its cells that fits (same cell, the head of that depth); one that
    # does not fit with a single cell is dropped. When none fits, the cheapest single cell is
    # kept and the trial records derive/within_budget = 0. None = no bound (the sources).
    max_student_flops: float | None = None
    # Ours: β ramps linearly from 0 once α starts learning, reaching the full β after this
    # share of the search steps ("warm up with β ramped from 0"). 0 = full β from the start.
    efficiency_ramp_fraction: float = 0.0
    # P-DARTS's operation-level dropout on skips, ours on every parameter-free op: during the
    # search each such op's output is dropped per example with this probability. 0 = off.
    param_free_dropout: float = 0.0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "search.epochs", self.epochs, ">= 1")
        for name in ("weight_lr", "arch_lr", "temperature_initial", "temperature_minimum"):
            _check(getattr(self, name) > 0, f"search.{name}", getattr(self, name), "> 0")
        for name in ("weight_lr_min", "weight_decay", "arch_weight_decay", "grad_clip"):
            _check(getattr(self, name) >= 0, f"search.{name}", getattr(self, name), ">= 0")
        _check(
            self.optimization in ("joint", "alternating"),
            "search.optimization",
            self.optimization,
            "'joint' or 'alternating'",
        )
        _check(
            self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "search.max_steps_per_epoch",
            self.max_steps_per_epoch,
            ">= 1 or unset",
        )
        _check(
            0.0 <= self.arch_warmup_fraction < 1.0,
            "search.arch_warmup_fraction",
            self.arch_warmup_fraction,
            "in [0, 1)",
        )
        _check(
            self.max_param_free_edges is None or self.max_param_free_edges >= 0,
            "search.max_param_free_edges",
            self.max_param_free_edges,
            ">= 0 or unset",
        )
        _check(
            all(cap >= 0 for cap in self.candidate_param_free_caps),
            "search.candidate_param_free_caps",
            list(self.candidate_param_free_caps),
            "a list of integers >= 0",
        )
        _check(
            self.max_student_flops is None or self.max_student_flops > 0,
            "search.max_student_flops",
            self.max_student_flops,
            "> 0 or unset",
        )
        for name in ("efficiency_ramp_fraction", "param_free_dropout"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"search.{name}", value, "in [0, 1)")


@dataclass(frozen=True)
class RetrainSection:
    # "inherit" ([P]): keep the operation weights trained during search, fine-tune with KD.
    # "scratch" ([PS]): re-initialise the derived student and train it with the same KD loss.
    mode: str = "inherit"
    epochs: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        _check(
            self.mode in ("inherit", "scratch"), "retrain.mode", self.mode, "'inherit' or 'scratch'"
        )
        _check(self.epochs >= 0, "retrain.epochs", self.epochs, ">= 0")
        _check(self.learning_rate > 0, "retrain.learning_rate", self.learning_rate, "> 0")


@dataclass(frozen=True)
class RunSection:
    seed: int = 42
    output_dir: str = "runs"
    # The teacher-knowledge cache: a folder, or a URI (s3://, gs://, file://) that every node
    # of a cluster shares (entries are mirrored locally, see orchestrator/teacher/knowledge.py).
    cache_dir: str = ".adabert/cache"
    # 0 keeps torch's default thread count (Ray sets OMP_NUM_THREADS per trial).
    threads: int = 0
    measure_latency: bool = True
    latency_seq_length: int = 128
    latency_repeats: int = 5
    progress_bar: bool = True

    def __post_init__(self) -> None:
        _check(self.threads >= 0, "run.threads", self.threads, ">= 0")
        _check(self.latency_repeats >= 1, "run.latency_repeats", self.latency_repeats, ">= 1")


@dataclass(frozen=True)
class RunConfig:
    task: TaskSection = field(default_factory=TaskSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    data: DataSection = field(default_factory=DataSection)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    search: SearchSection = field(default_factory=SearchSection)
    retrain: RetrainSection = field(default_factory=RetrainSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _section_to_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return build_config(data)


def _section_to_dict(section: Any) -> dict[str, Any]:
    data = dataclasses.asdict(section)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _field_types(section_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def coerce_value(key: str, value: Any, expected: Any) -> Any:
    """Check a TOML value against a field's annotation; ints are accepted for floats.

    The one type check of every config file and ``--set`` override (run and sweep alike); the
    message names the dotted key."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce_value(key, value, option)
            except UserInputError as exc:
                errors.append(str(exc))
        raise UserInputError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserInputError(f"{key} must be a list, got {value!r}")
        (item_type, *_) = typing.get_args(expected) or (Any,)
        items = [coerce_value(key, v, item_type) for v in value]
        return tuple(items) if origin is tuple else items
    if expected is Any:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise UserInputError(f"{key} must be true or false, got {value!r}")
    if expected is int and isinstance(value, bool):
        raise UserInputError(f"{key} must be an integer, got {value!r}")
    if expected is float and isinstance(value, bool):
        raise UserInputError(f"{key} must be a number, got {value!r}")
    if expected is str and not isinstance(value, str):
        raise UserInputError(
            f"{key} must be a string, got {value!r} (quote it: {key}='\"{value}\"')"
        )
    if not isinstance(value, expected):
        kind = {int: "an integer", float: "a number"}.get(expected, f"of type {expected.__name__}")
        raise UserInputError(f"{key} must be {kind}, got {value!r}")
    return value


def build_section(section_cls: type, values: Any, name: str):
    """One config section from a TOML table: unknown keys, wrong types and invalid values are
    UserInputErrors naming ``name.key``."""
    if not isinstance(values, dict):
        raise UserInputError(f"config section [{name}] must be a table, got {values!r}")
    types_ = _field_types(section_cls)
    bad = sorted(set(values) - set(types_))
    if bad:
        raise UserInputError(f"unknown config key(s) in [{name}]: {', '.join(bad)}")
    kwargs = {k: coerce_value(f"{name}.{k}", v, types_[k]) for k, v in values.items()}
    try:
        return section_cls(**kwargs)
    except ValueError as exc:
        raise UserInputError(f"invalid config: {exc}") from exc


def build_config(data: dict[str, Any]) -> RunConfig:
    """Validate a nested dict (TOML shape) into a RunConfig; unknown keys are errors."""
    sections = _field_types(RunConfig)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise UserInputError(f"unknown config section(s): {', '.join(unknown)}")
    built = {
        name: build_section(section_cls, data.get(name, {}), name)
        for name, section_cls in sections.items()
    }
    return RunConfig(**built)


def parse_override(text: str, *, levels: tuple[int, ...] = (2,)) -> tuple[str, Any]:
    """``section.key=value``; the value is read as TOML (numbers, booleans, lists, strings) and
    falls back to a bare string, so ``--set task.name=sst2`` needs no quotes. ``levels`` are the
    allowed numbers of dotted parts in the key (sweep files also take ``base.section.key``)."""
    if "=" not in text:
        raise UserInputError(f"override must look like section.key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    if key.count(".") + 1 not in levels or not all(key.split(".")):
        shape = " or ".join(".".join(["part"] * n) for n in levels)
        raise UserInputError(f"override key must look like {shape}, got {key!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if raw.lower() in ("none", "null"):
        value = None
    return key, value


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {section: dict(values) for section, values in data.items()}
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        merged.setdefault(section, {})[name] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"config file {path} is not valid TOML: {exc}") from exc


def config_data(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """The TOML file's sections with ``overrides`` merged in, before defaults and validation:
    what the user wrote, so callers can tell an explicit setting from a default."""
    data = read_toml(path) if path else {}
    pairs = dict(parse_override(item) for item in overrides or [])
    return merge_overrides(data, pairs)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    return build_config(config_data(path, overrides))
