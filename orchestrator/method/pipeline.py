"""One task end to end (Ray-free): prepare data and teacher knowledge, search, derive, retrain.

``prepare_task`` is idempotent and cached on disk. ``run_one_task`` is the one search -> derive
-> retrain -> evaluate (-> latency) sequence that ``adabert run``, the benchmark and the Ray
trial all call. ``TrialRunner`` underneath it runs that sequence epoch by epoch and can save and
restore its whole state, so a restarted trial continues where its last checkpoint left it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from losses.objective import AdaBertObjective
from orchestrator import storage
from orchestrator.config import RunConfig, TaskSection
from orchestrator.errors import UserInputError
from orchestrator.method.candidates import CandidateRanking, candidate_genotypes
from orchestrator.method.latency import add_equal_text, compare_latency
from orchestrator.method.retrain import RetrainPhase, RetrainResult
from orchestrator.method.search import SearchPhase, undecided_check
from orchestrator.progress import EpochCallback, EpochReport
from orchestrator.tasks.augment import AugmentSettings, default_copies, default_substitute_prob
from orchestrator.tasks.batches import STUDENT_COLUMNS, DistillationSet, batch_loader
from orchestrator.tasks.data import (
    data_fingerprint,
    load_task_data,
    progress_bars,
    rows_like,
    text_columns,
    tokenize_for_distillation,
)
from orchestrator.tasks.evaluation import (
    CONSTANT_CHECK_FIELDS,
    constant_check,
    logits_to_predictions,
    predict,
)
from orchestrator.tasks.metrics import compute_metrics, primary_metric
from orchestrator.tasks.registry import TaskSpec, custom_task, get_task
from orchestrator.teacher.knowledge import Augmentation, prepare_teacher_knowledge
from orchestrator.teacher.model import (
    TEACHER_COLUMNS,
    load_teacher,
    load_tokenizer,
    resolve_teacher_reference,
)
from searchspace.config import SupernetConfig
from searchspace.derived import DerivedStudent
from searchspace.embeddings import StudentEmbedding
from searchspace.genotype import Genotype
from searchspace.supernet import AdaBertSupernet

STATE_FORMAT = 1
LATENCY_MODES = ("none", "student", "with_teacher")


@dataclass
class PreparedTask:
    """Everything a trial needs, with no teacher model in it (trials never run the teacher)."""

    task: TaskSpec
    primary_metric: str
    train: DistillationSet
    dev: DistillationSet
    vocab_size: int
    teacher_dir: str
    teacher_metrics: dict[str, float]
    teacher_params: int
    word_embeddings: torch.Tensor
    position_embeddings: torch.Tensor | None
    cache_hit: bool
    # A content hash of the train and dev splits: what a trial asserts it trains on.
    data_fingerprint: str = ""
    probe_metrics: dict[str, float] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    train_examples: int = 0  # the training set's rows; the transfer set adds the augmented ones
    augmented_examples: int = 0
    # The augmented rows' texts (text_a, text_b, label, source), in the order they follow the
    # training rows in ``train``: for controls that encode text their own way.
    augmented_texts: dict[str, list] | None = None
    # What computing the teacher's cache entry took (fine_tune, knowledge, augment), also on a
    # hit; ``phase_seconds`` is what this process spent.
    knowledge_seconds: dict[str, float] = field(default_factory=dict)
    # The teacher's folder as any node can reach it (a URI under a shared cache, else
    # ``teacher_dir``, which exists on the preparing machine only).
    teacher_location: str = ""
    # The tokenizer's files (name -> bytes): every student package carries them, written on
    # whichever node trains the student.
    tokenizer_files: dict[str, bytes] = field(default_factory=dict)

    @property
    def teacher_embedding_size(self) -> int:
        return int(self.word_embeddings.shape[1])

    @property
    def teacher_metric(self) -> str:
        """The teacher's score under the task's primary metric, e.g. ``teacher/accuracy``."""
        return f"teacher/{self.task.primary_metric}"

    @property
    def teacher_score(self) -> float | None:
        return self.teacher_metrics.get(self.teacher_metric)


@dataclass
class TrialResult:
    genotype: Genotype
    student: DerivedStudent
    metrics: dict[str, float]
    primary_metric: str
    phase_seconds: dict[str, float]
    history: dict[str, list[dict[str, float]]]
    supernet_config: SupernetConfig  # as built: vocabulary, labels and widths the teacher set
    teacher_metric: str
    teacher_score: float | None

    @property
    def score(self) -> float:
        return self.metrics[self.primary_metric]

    @property
    def degenerate(self) -> bool:
        """No better than a constant prediction of the dev set (see ``constant_check``)."""
        return bool(self.metrics.get("student/degenerate"))

    @property
    def undecided(self) -> bool:
        """The genotype came from an almost uniform α (see ``undecided_check``)."""
        return bool(self.metrics.get("search/undecided"))

    @property
    def over_budget(self) -> bool:
        """Costs more FLOPs than ``search.max_student_flops``: no candidate fitted it."""
        return self.metrics.get("derive/within_budget") == 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_threads(cfg: RunConfig) -> None:
    """``run.threads`` > 0 pins torch's intra-op threads. On a shared machine, small models run
    many times slower with more threads than free cores (threads spin waiting for each other)."""
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)


def resolve_task(section: TaskSection) -> TaskSpec:
    """A GLUE task by name, or a custom task when the name is not registered but files are."""
    try:
        return get_task(section.name)
    except UserInputError:
        if section.train_file is None and section.data_dir is None:
            raise
    if section.text_a is None:
        raise UserInputError(
            f"task {section.name!r} is not a GLUE task; a custom task needs task.text_a "
            "(the text column) and task.labels (omit for regression)"
        )
    return custom_task(
        section.name,
        text_a=section.text_a,
        text_b=section.text_b,
        labels=section.labels,
        metric=section.metric,
    )


def load_run_data(cfg: RunConfig, task: TaskSpec):
    """The train and validation splits a run uses (source, columns and subsample from ``cfg``)."""
    return load_task_data(
        task,
        data_dir=cfg.task.data_dir,
        train_file=cfg.task.train_file,
        dev_file=cfg.task.dev_file,
        text_a=cfg.task.text_a,
        text_b=cfg.task.text_b,
        label_column=cfg.task.label_column,
        max_train_samples=cfg.data.max_train_samples,
        max_dev_samples=cfg.data.max_dev_samples,
        seed=cfg.run.seed,
    )


def _columns(dataset, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    # A full slice materialises tensors (datasets 5 returns lazy Column objects per name).
    return dict(dataset.with_format("torch", columns=list(names))[:])


def prepare_task(
    cfg: RunConfig, *, on_progress: EpochCallback | None = None, progress: bool | None = None
) -> PreparedTask:
    """Data, tokenisation and teacher knowledge (from the cache when it has this key)."""
    progress = cfg.run.progress_bar if progress is None else progress
    apply_threads(cfg)
    with progress_bars(progress):
        return _prepare_task(cfg, on_progress=on_progress, progress=progress)


def _prepare_task(cfg: RunConfig, *, on_progress: EpochCallback | None, progress: bool):
    started = time.perf_counter()
    task = resolve_task(cfg.task)
    teacher_reference = resolve_teacher_reference(cfg.teacher.name_or_path)
    data = load_run_data(cfg, task)
    tokenizer = load_tokenizer(teacher_reference)
    all_columns = (*TEACHER_COLUMNS, *STUDENT_COLUMNS, "labels")

    def tokenize(dataset) -> dict[str, torch.Tensor]:
        encoded = tokenize_for_distillation(
            dataset, tokenizer, max_seq_length=cfg.data.max_seq_length, is_pair=task.is_pair
        )
        return _columns(encoded, all_columns)

    train_columns = tokenize(data["train"])
    dev_columns = tokenize(data["validation"])
    augmentation = Augmentation(
        augment_settings(cfg, task),
        text_columns(data["train"]),
        lambda texts: tokenize(rows_like(texts, data["train"])),
    )
    fingerprints = {split: data_fingerprint(data[split]) for split in data}
    data_seconds = time.perf_counter() - started
    knowledge = prepare_teacher_knowledge(
        teacher_reference,
        tokenizer,
        task=task,
        train_columns=train_columns,
        dev_columns=dev_columns,
        fingerprints=fingerprints,
        max_seq_length=cfg.data.max_seq_length,
        settings=cfg.teacher,
        cache_root=cfg.run.cache_dir,
        seed=cfg.run.seed,
        augmentation=augmentation,
        on_progress=on_progress,
        progress=progress,
    )
    train_logits, train_probes = knowledge.train.logits, knowledge.train.probe_logits
    augmented_rows = 0
    if knowledge.augmented is not None:
        extra = augmentation.tokenize(knowledge.augmented.texts)
        augmented_rows = len(extra["labels"])
        train_columns = {k: torch.cat([train_columns[k], extra[k]]) for k in train_columns}
        train_logits = torch.cat([train_logits, knowledge.augmented.knowledge.logits])
        train_probes = torch.cat([train_probes, knowledge.augmented.knowledge.probe_logits])
    predictions = logits_to_predictions(task, knowledge.dev.logits.numpy())
    teacher_metrics = compute_metrics(task, predictions, dev_columns["labels"].numpy())
    return PreparedTask(
        task=task,
        primary_metric=f"dev/{primary_metric(task)}",
        train=DistillationSet.join(
            train_columns, train_probes, train_logits, b_copies_a=not task.is_pair
        ),
        dev=DistillationSet.join(
            dev_columns,
            knowledge.dev.probe_logits,
            knowledge.dev.logits,
            b_copies_a=not task.is_pair,
        ),
        vocab_size=len(tokenizer),
        teacher_dir=knowledge.teacher_dir,
        teacher_metrics={f"teacher/{k}": float(v) for k, v in teacher_metrics.items()},
        teacher_params=knowledge.num_parameters,
        word_embeddings=knowledge.word_embeddings,
        position_embeddings=knowledge.position_embeddings,
        cache_hit=knowledge.cache_hit,
        data_fingerprint=f"{fingerprints['train']}-{fingerprints['validation']}",
        probe_metrics=dict(knowledge.meta.get("probe_metrics", {})),
        train_examples=len(data["train"]),
        augmented_examples=augmented_rows,
        augmented_texts=knowledge.augmented.texts if knowledge.augmented else None,
        knowledge_seconds=dict(knowledge.meta.get("phase_seconds", {})),
        teacher_location=knowledge.teacher_location,
        tokenizer_files=tokenizer_files(tokenizer),
        phase_seconds={
            "data": data_seconds,
            "teacher": time.perf_counter() - started - data_seconds,
        },
    )


def tokenizer_files(tokenizer) -> dict[str, bytes]:
    """What ``save_pretrained`` writes for this tokenizer, as name -> bytes."""
    with tempfile.TemporaryDirectory(prefix="adabert-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


@contextlib.contextmanager
def teacher_folder(prepared: PreparedTask) -> Iterator[Path]:
    """The fine-tuned teacher's folder on this node: the preparing machine's copy when it is
    here, else a download from the shared cache."""
    here = Path(prepared.teacher_dir)
    if here.is_dir() or not prepared.teacher_location:
        yield here
        return
    with storage.local_copy(prepared.teacher_location) as folder:
        yield folder


def augment_settings(cfg: RunConfig, task: TaskSpec) -> AugmentSettings:
    """The task's augmentation with every unset field resolved to its recipe default."""
    data = cfg.data
    copies = data.augment_copies
    substitute = data.augment_substitute_prob
    return AugmentSettings(
        copies=default_copies(task.name, task.is_pair) if copies is None else copies,
        substitute_prob=default_substitute_prob(task.is_pair) if substitute is None else substitute,
        mask_prob=data.augment_mask_prob,
        ngram_prob=data.augment_ngram_prob,
        neighbours=data.augment_neighbours,
        seed=cfg.run.seed,
    )


def supernet_config_for(cfg: RunConfig, prepared: PreparedTask) -> SupernetConfig:
    """The user's supernet settings with the fields that the teacher and the task dictate."""
    return dataclasses.replace(
        cfg.supernet,
        vocab_size=max(prepared.vocab_size, int(prepared.word_embeddings.shape[0])),
        num_labels=prepared.task.num_labels,
        max_positions=max(cfg.data.max_seq_length, cfg.run.latency_seq_length),
        teacher_embedding_size=prepared.teacher_embedding_size,
        # One sentence has nothing to compare: the cells see it as the paper's code does.
        pair_encoding=cfg.supernet.pair_encoding if prepared.task.is_pair else "joint",
    )


def teacher_tables(prepared: PreparedTask, config: SupernetConfig):
    """Teacher (word, position) tables; positions padded with fresh rows when the student needs
    more than the teacher has, None for teachers without absolute position embeddings."""
    positions = prepared.position_embeddings
    if positions is not None and len(positions) < config.max_positions:
        extra = torch.randn(config.max_positions - len(positions), positions.shape[1]) * 0.02
        positions = torch.cat([positions, extra])
    return prepared.word_embeddings, positions


def projected_tables(config: SupernetConfig, tables) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's (word, position) tables at the cell width, as the supernet starts from them
    (each table times the projection onto its top principal directions)."""
    word, position = tables
    embedding = StudentEmbedding(
        config, teacher_word_embeddings=word, teacher_position_embeddings=position
    )
    return embedding.low_dim_tables()


def scratch_student(config: SupernetConfig, genotype: Genotype, tables) -> DerivedStudent:
    """Fresh cells and head; embeddings from the teacher's tables, projected like the search's."""
    student = DerivedStudent(config, genotype)
    low_word, low_position = projected_tables(config, tables)
    with torch.no_grad():
        student.embedding.word_embeddings.weight.copy_(low_word)
        student.embedding.position_embeddings.weight.copy_(low_position)
    return student


def _search_loaders(cfg: RunConfig, prepared: PreparedTask):
    """(weights loader, α loader or None, dev loader) of the search."""
    batch_size, seed = cfg.data.batch_size, cfg.run.seed
    dev = batch_loader(prepared.dev, batch_size=batch_size, shuffle=False, seed=seed)
    if cfg.search.optimization == "alternating":
        # [PS]: first-order DARTS, weights on one half of the training set, α on the other.
        half = len(prepared.train) // 2
        order = torch.randperm(len(prepared.train), generator=torch.Generator().manual_seed(seed))
        w_part = torch.utils.data.Subset(prepared.train, order[:half].tolist())
        a_part = torch.utils.data.Subset(prepared.train, order[half:].tolist())
        return (
            batch_loader(w_part, batch_size=batch_size, shuffle=True, seed=seed),
            batch_loader(a_part, batch_size=batch_size, shuffle=True, seed=seed + 1),
            dev,
        )
    train = batch_loader(prepared.train, batch_size=batch_size, shuffle=True, seed=seed)
    return train, None, dev


class TrialRunner:
    """Search -> derive -> retrain of one config, one epoch per step of ``epochs()``.

    Between two epochs ``state_dict()`` captures everything that decides the rest of the run
    (weights, α, optimiser and scheduler states, the best epoch so far, the Gumbel, data-order
    and global RNG states, the history); a new runner given that state by ``load_state_dict``
    continues exactly as the first one would have.
    """

    def __init__(self, cfg: RunConfig, prepared: PreparedTask) -> None:
        seed_everything(cfg.run.seed)
        apply_threads(cfg)
        self.cfg, self.prepared = cfg, prepared
        self.phase_seconds = dict(prepared.phase_seconds)
        self.config = supernet_config_for(cfg, prepared)
        self.tables = teacher_tables(prepared, self.config)
        self.supernet = AdaBertSupernet(
            self.config,
            teacher_word_embeddings=self.tables[0],
            teacher_position_embeddings=self.tables[1],
        )
        objective = AdaBertObjective(
            cfg.loss,
            self.config,
            seq_len=cfg.data.max_seq_length,
            is_regression=prepared.task.is_regression,
        )
        train_loader, arch_loader, self.dev_loader = _search_loaders(cfg, prepared)
        self.search = SearchPhase(
            self.supernet,
            objective,
            prepared.task,
            train_loader=train_loader,
            dev_loader=self.dev_loader,
            arch_loader=arch_loader,
            cfg=cfg.search,
            primary_metric=prepared.primary_metric,
            seed=cfg.run.seed,
            progress=cfg.run.progress_bar,
        )
        self.retrain: RetrainPhase | None = None
        self.ranking: CandidateRanking | None = None

    @property
    def completed_epochs(self) -> int:
        done = self.search.epoch
        if self.ranking is not None:
            done += self.ranking.index * self.cfg.retrain.epochs
        return done + (self.retrain.epoch if self.retrain is not None else 0)

    def epochs(self) -> Iterator[EpochReport]:
        """Run the remaining epochs, yielding after each (the state is consistent there)."""
        while not self.search.done:
            yield self._timed("search", self.search.run_epoch)
        if self.ranking is None:
            self._timed("retrain", self._start_ranking)
        while not self.ranking.done:
            if self.retrain is None:
                self._timed("retrain", lambda: self._start_retrain(self._candidate_student()))
            self._timed("retrain", self.retrain.start)
            while not self.retrain.done:
                yield self._labelled(self._timed("retrain", self.retrain.run_epoch))
            self.ranking.record(self.retrain)
            if not self.ranking.done:
                self.retrain = None

    def _labelled(self, report: EpochReport) -> EpochReport:
        """A retrain epoch of one of several candidates says which one."""
        count = len(self.ranking.candidates)
        if count > 1:
            report.part = f"candidate {self.ranking.index + 1}/{count}"
            report.metrics["derive/candidate"] = float(self.ranking.index)
        return report

    def _timed(self, phase: str, step):
        started = time.perf_counter()
        try:
            return step()
        finally:
            self.phase_seconds[phase] = (
                self.phase_seconds.get(phase, 0.0) + time.perf_counter() - started
            )

    def _start_ranking(self) -> None:
        search = self.search.result()
        self.supernet.load_state_dict(search.supernet_state)
        candidates = candidate_genotypes(
            search.genotype, self.supernet, self.cfg.search, self.cfg.data.max_seq_length
        )
        self.ranking = CandidateRanking(candidates, self.prepared.primary_metric)

    def _candidate_student(self) -> DerivedStudent:
        """The current candidate as the retrain starts it; the supernet holds the search's
        best epoch."""
        genotype = self.ranking.current
        if self.ranking.index > 0:
            # A later candidate's initial weights do not depend on how the earlier ones trained.
            torch.manual_seed(self.cfg.run.seed + self.ranking.index)
        if self.cfg.retrain.mode == "inherit":
            return DerivedStudent.from_supernet(self.supernet, genotype)
        return scratch_student(self.config, genotype, self.tables)

    def _start_retrain(self, student: DerivedStudent) -> None:
        cfg = self.cfg
        loader = batch_loader(
            self.prepared.train,
            batch_size=cfg.data.batch_size,
            shuffle=True,
            seed=cfg.run.seed + 2,
        )
        self.retrain = RetrainPhase(
            student,
            self.prepared.task,
            train_loader=loader,
            dev_loader=self.dev_loader,
            cfg=cfg.retrain,
            loss_cfg=cfg.loss,
            primary_metric=self.prepared.primary_metric,
            progress=cfg.run.progress_bar,
        )

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers, strings and containers only (``torch.load(weights_only=True)``)."""
        retrain = None
        if self.retrain is not None:
            retrain = self.retrain.state_dict()
            retrain["genotype"] = self.retrain.student.genotype.to_dict()
        search = self.search.state_dict()
        if retrain is not None:
            # The retrain no longer needs the supernet: keep the search's record, and the best
            # epoch's weights only while a later candidate may inherit them.
            search = {k: v for k, v in search.items() if k not in ("supernet", "w_opt", "a_opt")}
            if self.ranking.index + 1 >= len(self.ranking.candidates):
                search["best"] = {k: v for k, v in search["best"].items() if k != "state"}
        return {
            "format": STATE_FORMAT,
            "search": search,
            "retrain": retrain,
            "ranking": self.ranking.state_dict() if self.ranking is not None else None,
            "torch_rng": torch.get_rng_state(),
            "phase_seconds": dict(self.phase_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"trial state format {state.get('format')!r} is not {STATE_FORMAT}")
        retrain = state["retrain"]
        if retrain is None:
            self.search.load_state_dict(state["search"])
        else:
            self.search.epoch = int(state["search"]["epoch"])
            self.search.best = state["search"]["best"]
            self.search.history = list(state["search"]["history"])
            if "state" in self.search.best:
                self.supernet.load_state_dict(self.search.best["state"])
            genotype = Genotype.from_dict(retrain["genotype"])
            self.ranking = CandidateRanking([genotype], self.prepared.primary_metric)
            if state.get("ranking") is not None:
                self.ranking.load_state_dict(state["ranking"])
            self._start_retrain(DerivedStudent(self.config, genotype))
            self.retrain.load_state_dict(retrain)
        torch.set_rng_state(state["torch_rng"])
        self.phase_seconds = dict(state["phase_seconds"])

    def result(self) -> TrialResult:
        prepared = self.prepared
        if self.ranking is None or not self.ranking.done:
            raise RuntimeError("the trial has epochs left to run")
        best = self.search.best
        chosen = self.ranking.best
        retrain = RetrainResult(chosen["epoch"], dict(chosen["metrics"]), list(chosen["history"]))
        student = DerivedStudent(self.config, Genotype.from_dict(chosen["genotype"]))
        student.load_state_dict(chosen["student"])
        seq_len = self.cfg.data.max_seq_length
        metrics = {
            **retrain.dev_metrics,
            **prepared.teacher_metrics,
            "search/best_epoch": float(best["epoch"]),
            "search/best_dev": float(self.search.best_score),
            "retrain/best_epoch": float(retrain.best_epoch),
            "student/params": float(student.num_parameters()),
            "student/flops": float(student.flops(seq_len)),
            "student/num_cells": float(student.genotype.num_cells),
            "derive/candidates": float(len(self.ranking.candidates)),
            "derive/chosen": float(chosen["index"]),
            "teacher/params": float(prepared.teacher_params),
            "compression": prepared.teacher_params / student.num_parameters(),
        }
        bound = self.cfg.search.max_student_flops
        if bound is not None:
            metrics["derive/within_budget"] = float(metrics["student/flops"] <= bound)
        if prepared.teacher_score:
            metrics["retention"] = metrics[prepared.primary_metric] / prepared.teacher_score
        check = {k: v for k, v in retrain.dev_metrics.items() if k in CONSTANT_CHECK_FIELDS}
        if len(check) < len(CONSTANT_CHECK_FIELDS):
            # A checkpoint written before the retrain's evaluation carried the constant check.
            student.eval()
            logits, labels = predict(lambda b: student(*b.student_inputs()), self.dev_loader)
            check = constant_check(prepared.task, logits, labels, prefix="dev")
            metrics |= check
        metrics["student/degenerate"] = check["dev/degenerate"]
        metrics |= undecided_check(self.search.history, best["epoch"])
        baseline, teacher = check["dev/constant_baseline"], prepared.teacher_score
        if teacher is not None and teacher > baseline:
            # How much of the teacher's gain over a constant prediction the student keeps:
            # retention alone flatters students on skewed tasks (MRPC's F1 is 0.81 for free).
            score = metrics[prepared.primary_metric]
            metrics["retention_above_baseline"] = (score - baseline) / (teacher - baseline)
        return TrialResult(
            genotype=student.genotype,
            student=student,
            metrics=metrics,
            primary_metric=prepared.primary_metric,
            phase_seconds=dict(self.phase_seconds),
            history={
                "search": list(self.search.history),
                "retrain": retrain.history,
                "candidates": list(self.ranking.scores),
            },
            supernet_config=self.config,
            teacher_metric=prepared.teacher_metric,
            teacher_score=prepared.teacher_score,
        )


def run_one_task(
    cfg: RunConfig,
    prepared: PreparedTask,
    *,
    on_epoch: EpochCallback | None = None,
    runner: TrialRunner | None = None,
    latency: str = "none",
) -> TrialResult:
    """Search, derive, retrain, evaluate and (``latency``) time one config on a prepared task.

    ``runner`` continues a run restored from a checkpoint; ``latency`` is "none", "student"
    (the student alone) or "with_teacher" (side by side, with speedups).
    """
    if latency not in LATENCY_MODES:
        raise ValueError(f"latency must be one of {LATENCY_MODES}, got {latency!r}")
    runner = runner or TrialRunner(cfg, prepared)
    for report in runner.epochs():
        if on_epoch is not None:
            on_epoch(report)
    result = runner.result()
    if latency != "none":
        started = time.perf_counter()
        result.metrics |= measure_latency(
            cfg, prepared, result.student, with_teacher=latency == "with_teacher"
        )
        result.phase_seconds["latency"] = time.perf_counter() - started
    return result


def student_kind(task) -> str:
    """``compare_latency``'s kind for a student of ``task``: one sentence or two."""
    return "pair_student" if task.is_pair else "student"


def measure_latency(
    cfg: RunConfig, prepared: PreparedTask, student: DerivedStudent, *, with_teacher: bool
) -> dict[str, float]:
    """CPU latency at batch 1 and 32 (``run.latency_seq_length`` tokens), interleaved in this
    process; with the teacher also the speedups, so ratios come from one side-by-side run.

    A pair student reads each sentence at that length, twice the teacher's joint text; for a
    pair task it is also timed on equal text (``student_equal_text``: each sentence at half the
    length), with its own speedups (``speedup/b<B>_equal_text``)."""
    seq_len = cfg.run.latency_seq_length
    kind = student_kind(prepared.task)
    models = {"student": (student, kind)}
    seq_lens = add_equal_text(models, "student", seq_len) if prepared.task.is_pair else {}
    if with_teacher:
        with teacher_folder(prepared) as folder:
            teacher = load_teacher(str(folder), task=prepared.task, fine_tuned=True)
        models["teacher"] = (teacher, "teacher")
    latency = compare_latency(
        models,
        vocab_size=min(prepared.vocab_size, student.config.vocab_size),
        seq_len=seq_len,
        repeats=cfg.run.latency_repeats,
        seq_lens=seq_lens,
    )
    if with_teacher:
        for batch_size in (1, 32):
            teacher_ms = latency[f"latency/teacher_b{batch_size}_ms"]
            for name, suffix in (("student", ""), ("student_equal_text", "_equal_text")):
                if name in models:
                    latency[f"speedup/b{batch_size}{suffix}"] = (
                        teacher_ms / latency[f"latency/{name}_b{batch_size}_ms"]
                    )
    return latency
