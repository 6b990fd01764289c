"""One task end to end (Ray-free): prepare data and teacher knowledge, search, derive, retrain.

``prepare_task`` is idempotent and cached on disk, so a sweep runs it once per task and every
trial calls it again as a cheap cache hit; ``run_trial`` is one search -> derive -> retrain ->
evaluate with progress reported through a callback.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from losses.objective import AdaBertObjective
from orchestrator.batches import STUDENT_COLUMNS, batch_loader, distillation_tensors
from orchestrator.config import RunConfig, TaskSection
from orchestrator.data import (
    data_fingerprint,
    load_task_data,
    progress_bars,
    tokenize_for_distillation,
)
from orchestrator.errors import UserInputError
from orchestrator.evaluation import logits_to_predictions
from orchestrator.knowledge import prepare_teacher_knowledge
from orchestrator.latency import compare_latency
from orchestrator.metrics import compute_metrics, primary_metric
from orchestrator.progress import EpochCallback
from orchestrator.retrain import run_retrain
from orchestrator.search import run_search
from orchestrator.tasks import TaskSpec, custom_task, get_task
from orchestrator.teacher import (
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


@dataclass
class PreparedTask:
    """Everything a trial needs, with no teacher model in it (trials never run the teacher)."""

    task: TaskSpec
    primary_metric: str
    train: TensorDataset
    dev: TensorDataset
    vocab_size: int
    teacher_dir: str
    teacher_metrics: dict[str, float]
    teacher_params: int
    word_embeddings: torch.Tensor
    position_embeddings: torch.Tensor | None
    cache_hit: bool
    probe_metrics: dict[str, float] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def teacher_embedding_size(self) -> int:
        return int(self.word_embeddings.shape[1])


@dataclass
class TrialResult:
    genotype: Genotype
    student: DerivedStudent
    metrics: dict[str, float]
    primary_metric: str
    phase_seconds: dict[str, float]
    history: dict[str, list[dict[str, float]]]


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


def _prepare_task(cfg: RunConfig, *, on_progress: EpochCallback | None, progress: bool):
    started = time.perf_counter()
    task = resolve_task(cfg.task)
    teacher_reference = resolve_teacher_reference(cfg.teacher.name_or_path)
    data = load_run_data(cfg, task)
    tokenizer = load_tokenizer(teacher_reference)
    tokenized = {
        split: tokenize_for_distillation(
            data[split], tokenizer, max_seq_length=cfg.data.max_seq_length, is_pair=task.is_pair
        )
        for split in ("train", "validation")
    }
    all_columns = (*TEACHER_COLUMNS, *STUDENT_COLUMNS, "labels")
    train_columns = _columns(tokenized["train"], all_columns)
    dev_columns = _columns(tokenized["validation"], all_columns)
    data_seconds = time.perf_counter() - started
    knowledge = prepare_teacher_knowledge(
        teacher_reference,
        tokenizer,
        task=task,
        train_columns=train_columns,
        dev_columns=dev_columns,
        fingerprints={split: data_fingerprint(data[split]) for split in data},
        max_seq_length=cfg.data.max_seq_length,
        settings=cfg.teacher,
        cache_root=Path(cfg.run.cache_dir),
        seed=cfg.run.seed,
        on_progress=on_progress,
        progress=progress,
    )
    predictions = logits_to_predictions(task, knowledge.dev.logits.numpy())
    teacher_metrics = compute_metrics(task, predictions, dev_columns["labels"].numpy())
    return PreparedTask(
        task=task,
        primary_metric=f"dev/{primary_metric(task)}",
        train=distillation_tensors(
            train_columns, knowledge.train.probe_logits, knowledge.train.logits
        ),
        dev=distillation_tensors(dev_columns, knowledge.dev.probe_logits, knowledge.dev.logits),
        vocab_size=len(tokenizer),
        teacher_dir=knowledge.teacher_dir,
        teacher_metrics={f"teacher/{k}": float(v) for k, v in teacher_metrics.items()},
        teacher_params=knowledge.num_parameters,
        word_embeddings=knowledge.word_embeddings,
        position_embeddings=knowledge.position_embeddings,
        cache_hit=knowledge.cache_hit,
        probe_metrics=dict(knowledge.meta.get("probe_metrics", {})),
        phase_seconds={
            "data": data_seconds,
            "teacher": time.perf_counter() - started - data_seconds,
        },
    )


def supernet_config_for(cfg: RunConfig, prepared: PreparedTask) -> SupernetConfig:
    """The user's supernet settings with the fields that the teacher and the task dictate."""
    return dataclasses.replace(
        cfg.supernet,
        vocab_size=max(prepared.vocab_size, int(prepared.word_embeddings.shape[0])),
        num_labels=prepared.task.num_labels,
        max_positions=max(cfg.data.max_seq_length, cfg.run.latency_seq_length),
        teacher_embedding_size=prepared.teacher_embedding_size,
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


def _loaders(cfg: RunConfig, prepared: PreparedTask):
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


def run_trial(
    cfg: RunConfig, prepared: PreparedTask, *, on_epoch: EpochCallback | None = None
) -> TrialResult:
    seed_everything(cfg.run.seed)
    apply_threads(cfg)
    phase_seconds = dict(prepared.phase_seconds)
    config = supernet_config_for(cfg, prepared)
    tables = teacher_tables(prepared, config)
    supernet = AdaBertSupernet(
        config, teacher_word_embeddings=tables[0], teacher_position_embeddings=tables[1]
    )
    objective = AdaBertObjective(
        cfg.loss, config, seq_len=cfg.data.max_seq_length, is_regression=prepared.task.is_regression
    )
    train_loader, arch_loader, dev_loader = _loaders(cfg, prepared)
    started = time.perf_counter()
    search = run_search(
        supernet,
        objective,
        prepared.task,
        train_loader=train_loader,
        dev_loader=dev_loader,
        arch_loader=arch_loader,
        cfg=cfg.search,
        primary_metric=prepared.primary_metric,
        seed=cfg.run.seed,
        on_epoch=on_epoch,
        progress=cfg.run.progress_bar,
    )
    phase_seconds["search"] = time.perf_counter() - started
    started = time.perf_counter()
    supernet.load_state_dict(search.supernet_state)
    if cfg.retrain.mode == "inherit":
        student = DerivedStudent.from_supernet(supernet, search.genotype)
    else:
        student = scratch_student(config, search.genotype, tables)
    retrain_loader = batch_loader(
        prepared.train, batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.run.seed + 2
    )
    retrain = run_retrain(
        student,
        prepared.task,
        train_loader=retrain_loader,
        dev_loader=dev_loader,
        cfg=cfg.retrain,
        loss_cfg=cfg.loss,
        primary_metric=prepared.primary_metric,
        on_epoch=on_epoch,
        progress=cfg.run.progress_bar,
    )
    phase_seconds["retrain"] = time.perf_counter() - started
    metrics = {
        **retrain.dev_metrics,
        **prepared.teacher_metrics,
        "search/best_epoch": float(search.best_epoch),
        "search/best_dev": search.best_score,
        "retrain/best_epoch": float(retrain.best_epoch),
        "student/params": float(student.num_parameters()),
        "student/flops": float(student.flops(cfg.data.max_seq_length)),
        "student/num_cells": float(search.genotype.num_cells),
        "teacher/params": float(prepared.teacher_params),
        "compression": prepared.teacher_params / student.num_parameters(),
    }
    teacher_score = prepared.teacher_metrics.get(
        prepared.primary_metric.replace("dev/", "teacher/")
    )
    if teacher_score:
        metrics["retention"] = metrics[prepared.primary_metric] / teacher_score
    return TrialResult(
        genotype=search.genotype,
        student=student,
        metrics=metrics,
        primary_metric=prepared.primary_metric,
        phase_seconds=phase_seconds,
        history={"search": search.history, "retrain": retrain.history},
    )


def measure_latency(
    cfg: RunConfig, prepared: PreparedTask, student: DerivedStudent, *, with_teacher: bool
) -> dict[str, float]:
    """CPU latency at batch 1 and 32 (``run.latency_seq_length`` tokens), interleaved in this
    process; with the teacher also the speedups, so ratios come from one side-by-side run."""
    models = {"student": (student, "student")}
    if with_teacher:
        teacher = load_teacher(prepared.teacher_dir, task=prepared.task, fine_tuned=True)
        models["teacher"] = (teacher, "teacher")
    latency = compare_latency(
        models,
        vocab_size=min(prepared.vocab_size, student.config.vocab_size),
        seq_len=cfg.run.latency_seq_length,
        repeats=cfg.run.latency_repeats,
    )
    if with_teacher:
        for batch_size in (1, 32):
            latency[f"speedup/b{batch_size}"] = (
                latency[f"latency/teacher_b{batch_size}_ms"]
                / latency[f"latency/student_b{batch_size}_ms"]
            )
    return latency
