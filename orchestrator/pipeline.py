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
from orchestrator.batches import batch_loader, distillation_tensors
from orchestrator.config import RunConfig, TaskSection
from orchestrator.data import data_fingerprint, load_task_data, tokenize_for_distillation
from orchestrator.errors import UserInputError
from orchestrator.evaluation import logits_to_predictions
from orchestrator.knowledge import prepare_teacher_knowledge
from orchestrator.latency import compare_latency
from orchestrator.metrics import compute_metrics, primary_metric
from orchestrator.progress import EpochCallback
from orchestrator.retrain import run_retrain
from orchestrator.search import run_search
from orchestrator.tasks import TaskSpec, custom_task, get_task
from orchestrator.teacher import load_teacher, load_tokenizer, resolve_teacher_reference
from searchspace.config import SupernetConfig
from searchspace.derived import DerivedStudent
from searchspace.embeddings import StudentEmbedding
from searchspace.genotype import Genotype
from searchspace.supernet import AdaBertSupernet


@dataclass
class PreparedTask:
    """Everything a trial needs; rebuilt from the on-disk caches in any process."""

    task: TaskSpec
    primary_metric: str
    train: TensorDataset
    dev: TensorDataset
    vocab_size: int
    teacher_path: str
    teacher_metrics: dict[str, float]
    teacher_params: int
    teacher_embedding_size: int
    word_embeddings: torch.Tensor
    position_embeddings: torch.Tensor
    cache_hit: bool
    phase_seconds: dict[str, float] = field(default_factory=dict)


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


def resolve_task(section: TaskSection) -> TaskSpec:
    """A GLUE task by name, or a custom task when the name is not registered but files are."""
    try:
        return get_task(section.name)
    except UserInputError:
        if section.train_file is None:
            raise
    if section.text_a is None:
        raise UserInputError(f"custom task '{section.name}' needs task.text_a (a column name)")
    return custom_task(
        section.name,
        text_a=section.text_a,
        text_b=section.text_b,
        labels=section.labels,
        metric=section.metric,
    )


def _columns(dataset) -> dict[str, torch.Tensor]:
    names = ("input_ids_a", "attention_mask_a", "input_ids_b", "attention_mask_b", "labels")
    table = dataset.with_format("torch")
    return {name: table[name] for name in names}


def prepare_task(cfg: RunConfig, *, on_progress: EpochCallback | None = None) -> PreparedTask:
    started = time.perf_counter()
    task = resolve_task(cfg.task)
    teacher_path = resolve_teacher_reference(cfg.teacher.name_or_path)
    data = load_task_data(
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
    tokenizer = load_tokenizer(teacher_path)
    tokenized = {
        split: tokenize_for_distillation(
            data[split], tokenizer, max_seq_length=cfg.data.max_seq_length, is_pair=task.is_pair
        )
        for split in ("train", "validation")
    }
    data_seconds = time.perf_counter() - started
    teacher = prepare_teacher_knowledge(
        teacher_path,
        task=task,
        train=tokenized["train"],
        dev=tokenized["validation"],
        fingerprints={split: data_fingerprint(data[split]) for split in tokenized},
        max_seq_length=cfg.data.max_seq_length,
        settings=cfg.teacher,
        cache_root=Path(cfg.run.cache_dir),
        seed=cfg.run.seed,
        on_progress=on_progress,
    )
    dev_labels = _columns(tokenized["validation"])["labels"].numpy()
    teacher_metrics = compute_metrics(
        task, logits_to_predictions(task, teacher.dev_logits.numpy()), dev_labels
    )
    return PreparedTask(
        task=task,
        primary_metric=f"dev/{primary_metric(task)}",
        train=distillation_tensors(
            _columns(tokenized["train"]),
            teacher.train_knowledge.probe_logits,
            teacher.train_knowledge.logits,
        ),
        dev=distillation_tensors(
            _columns(tokenized["validation"]),
            teacher.dev_knowledge.probe_logits,
            teacher.dev_knowledge.logits,
        ),
        vocab_size=len(tokenizer),
        teacher_path=str(teacher.teacher_dir),
        teacher_metrics={f"teacher/{k}": float(v) for k, v in teacher_metrics.items()},
        teacher_params=teacher.num_parameters,
        teacher_embedding_size=int(teacher.word_embeddings.shape[1]),
        word_embeddings=teacher.word_embeddings,
        position_embeddings=teacher.position_embeddings,
        cache_hit=teacher.cache_hit,
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


def _teacher_tables(prepared: PreparedTask, config: SupernetConfig):
    positions = prepared.position_embeddings
    if len(positions) < config.max_positions:
        # A teacher with fewer positions than the student needs: pad with fresh rows.
        extra = torch.randn(config.max_positions - len(positions), positions.shape[1]) * 0.02
        positions = torch.cat([positions, extra])
    return prepared.word_embeddings, positions


def _scratch_student(config: SupernetConfig, genotype: Genotype, tables) -> DerivedStudent:
    """Fresh cells and head; embeddings from the teacher's tables, projected like the search's."""
    student = DerivedStudent(config, genotype)
    word, position = tables
    embedding = StudentEmbedding(
        config, teacher_word_embeddings=word, teacher_position_embeddings=position
    )
    low_word, low_position = embedding.low_dim_tables()
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
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    phase_seconds = dict(prepared.phase_seconds)
    config = supernet_config_for(cfg, prepared)
    tables = _teacher_tables(prepared, config)
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
        student = _scratch_student(config, search.genotype, tables)
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
    if cfg.run.measure_latency:
        started = time.perf_counter()
        metrics.update(measure_student_and_teacher(cfg, prepared, student))
        phase_seconds["latency"] = time.perf_counter() - started
    return TrialResult(
        genotype=search.genotype,
        student=student,
        metrics=metrics,
        primary_metric=prepared.primary_metric,
        phase_seconds=phase_seconds,
        history={"search": search.history, "retrain": retrain.history},
    )


def measure_student_and_teacher(
    cfg: RunConfig, prepared: PreparedTask, student: DerivedStudent
) -> dict[str, float]:
    """Student and teacher timed in this process, interleaved, batch 1 and 32."""
    teacher, _ = load_teacher(
        prepared.teacher_path,
        num_labels=prepared.task.num_labels,
        is_regression=prepared.task.is_regression,
    )
    seq_len = cfg.run.latency_seq_length
    latency = compare_latency(
        {"student": (student, "student"), "teacher": (teacher, "teacher")},
        vocab_size=min(prepared.vocab_size, student.config.vocab_size),
        seq_len=seq_len,
        repeats=cfg.run.latency_repeats,
    )
    for batch_size in (1, 32):
        latency[f"speedup/b{batch_size}"] = (
            latency[f"latency/teacher_b{batch_size}_ms"]
            / latency[f"latency/student_b{batch_size}_ms"]
        )
    return latency
