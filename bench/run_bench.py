"""AdaBERT on real GLUE tasks, against a random genotype and a small BERT-style student.

Usage (from the repository root, after scripts/setup.sh):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/run_bench.py --glue-dir ../shared/data/glue \
        --tasks sst2 mrpc rte cola stsb --config bench/bench.toml [--set k=v ...] [--out DIR]

Per task this is ``adabert run`` (the project's own ``prepare_task`` and ``run_trial``: cached
teacher knowledge, search, derive, retrain with KD), followed by two baselines trained with the
same loss ((1 - γ)·CE + γ·KD on the teacher's final logits, through ``run_retrain``) for the
same number of optimizer steps the searched student's weights received:

- a random genotype of similar cost: seeded random architecture logits through
  ``derive_genotype`` with the searched supernet's config, the one whose exact parameter count
  is closest to the searched student's (same number of cells when possible), trained from
  scratch with embeddings initialised from the teacher's tables as the searched supernet's are;
- a BERT-style student of similar size: ``BertForSequenceClassification`` at the cells' width
  with as many layers as bring its parameter count closest to the searched student's, fed the
  teacher's joint pair encoding, word and position embeddings initialised from the same PCA
  projection of the teacher's tables.

Then the searched student, both baselines, the fine-tuned teacher and a BERT-base architecture
with random weights are timed side by side in this process (``compare_latency``, batch 1 and
32). Results go to ``<out>/bench.md`` and ``<out>/bench.json``, rewritten after every task;
the searched student's run folder goes to ``<out>/raw/runs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from orchestrator.batches import batch_loader
from orchestrator.config import (
    RetrainSection,
    RunConfig,
    build_config,
    merge_overrides,
    parse_override,
    read_toml,
)
from orchestrator.data import load_task_data, progress_bars, tokenize_for_distillation
from orchestrator.errors import UserInputError
from orchestrator.latency import compare_latency, teacher_inputs
from orchestrator.pipeline import (
    PreparedTask,
    TrialResult,
    prepare_task,
    projected_tables,
    run_trial,
    scratch_student,
    seed_everything,
    supernet_config_for,
    teacher_tables,
)
from orchestrator.progress import EpochCallback, EpochReport, console_reporter
from orchestrator.retrain import RetrainResult, run_retrain
from orchestrator.run_folder import write_run_folder
from orchestrator.tasks import GLUE_TASKS, get_task
from orchestrator.teacher import TEACHER_COLUMNS, load_teacher, load_tokenizer
from searchspace.config import SupernetConfig
from searchspace.costs import genotype_cost
from searchspace.genotype import Genotype, derive_genotype

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_THREADS = torch.get_num_threads()  # before anything sets it
DEFAULT_TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")
# The targets (a benchmark reports against them; nothing fails when they are missed).
RETENTION_TARGET = {"sst2": 0.97, "mrpc": 0.97}
SIZE_TARGET = 20.0  # BERT-base params / searched student params
SPEEDUP_TARGET = 50.0  # BERT-base latency / searched student latency, batch 1

# Bench-only settings ([bench] in bench.toml, or --set bench.<key>=<value>).
BENCH_DEFAULTS: dict[str, Any] = {
    # Adam learning rate of the BERT-style student; None = retrain.learning_rate.
    "bert_learning_rate": None,
    "bert_heads": 2,
    "bert_max_layers": 6,
    # Random genotypes drawn before keeping the one closest in parameters.
    "random_genotype_samples": 2000,
    "random_genotype_seed": 1234,
    # Torch thread counts latency is measured at, one interleaved run each; 0 = torch's default
    # at start-up. The first gives the headline speedups.
    "latency_threads": [1, 0],
}
# Columns of PreparedTask.train/dev (orchestrator.batches.distillation_tensors).
IDS_A, MASK_A, IDS_B, MASK_B, LABELS, PROBE_LOGITS, LOGITS = range(7)


# --- configuration ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    base: dict[str, Any]  # the RunConfig sections of bench.toml
    per_task: dict[str, dict[str, Any]]  # [tasks.<name>]: partial RunConfig sections
    options: dict[str, Any]  # [bench] merged over BENCH_DEFAULTS and --set bench.*
    run_overrides: dict[str, Any]  # --set section.key=value for the RunConfig
    toml_text: str


def read_settings(path: str | None, overrides: list[str]) -> BenchSettings:
    data = read_toml(path) if path else {}
    options = dict(BENCH_DEFAULTS)
    options.update(_table(data.pop("bench", {}), "[bench]"))
    per_task = _table(data.pop("tasks", {}), "[tasks]")
    for name, table in per_task.items():
        if name not in GLUE_TASKS:
            raise UserInputError(f"[tasks.{name}]: not a GLUE task ({', '.join(GLUE_TASKS)})")
        _table(table, f"[tasks.{name}]")
    run_overrides = {}
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("bench."):
            options[key.split(".", 1)[1]] = value
        else:
            run_overrides[key] = value
    unknown = sorted(set(options) - set(BENCH_DEFAULTS))
    if unknown:
        raise UserInputError(f"unknown bench setting(s): {', '.join(unknown)}")
    threads = options["latency_threads"]
    if isinstance(threads, int) and not isinstance(threads, bool):
        threads = options["latency_threads"] = [threads]
    if not threads or not all(isinstance(t, int) and t >= 0 for t in threads):
        raise UserInputError(f"bench.latency_threads must be a list of ints >= 0, got {threads!r}")
    text = Path(path).read_text(encoding="utf-8") if path else ""
    return BenchSettings(data, per_task, options, run_overrides, text)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be a table, got {value!r}")
    return value


def task_config(settings: BenchSettings, task: str, glue_dir: Path) -> RunConfig:
    """bench.toml, then its [tasks.<task>] table, then --set; task name and folder last."""
    data = {section: dict(values) for section, values in settings.base.items()}
    for section, values in settings.per_task.get(task, {}).items():
        data.setdefault(section, {}).update(_table(values, f"[tasks.{task}.{section}]"))
    layout = get_task(task).glue
    if layout is None:
        raise UserInputError(f"task {task!r} has no GLUE TSV layout")
    folder = glue_dir / layout.folder
    if not (folder / layout.train_file).is_file() or not (folder / layout.dev_file).is_file():
        raise UserInputError(f"{folder} has no {layout.train_file} and {layout.dev_file}")
    pairs = dict(settings.run_overrides)
    pairs["task.name"] = task
    pairs["task.data_dir"] = str(folder)
    return build_config(merge_overrides(data, pairs))


# --- step budget -----------------------------------------------------------------------------


def steps_per_epoch(rows: int, batch_size: int, cap: int | None) -> int:
    full = math.ceil(rows / batch_size)
    return min(full, cap) if cap else full


def searched_steps(cfg: RunConfig, train_rows: int) -> dict[str, int]:
    """Optimizer steps on the searched student's weights: the search's (when retrain inherits
    them) plus the retrain's, as run_search and run_retrain count them."""
    batch = cfg.data.batch_size
    search_rows = train_rows // 2 if cfg.search.optimization == "alternating" else train_rows
    search = cfg.search.epochs * steps_per_epoch(search_rows, batch, cfg.search.max_steps_per_epoch)
    if cfg.retrain.mode != "inherit":
        search = 0  # a scratch retrain throws the searched weights away
    retrain = cfg.retrain.epochs * steps_per_epoch(
        train_rows, batch, cfg.retrain.max_steps_per_epoch
    )
    return {"search": search, "retrain": retrain, "total": search + retrain}


def budget_retrain(cfg: RunConfig, train_rows: int, total_steps: int, **changes) -> RetrainSection:
    """The retrain section, with epochs and a per-epoch cap giving ``total_steps`` (rounded up
    to a multiple of the epoch count, at most epochs - 1 steps over)."""
    full = steps_per_epoch(train_rows, cfg.data.batch_size, None)
    epochs = math.ceil(total_steps / full)
    cap = math.ceil(total_steps / epochs) if epochs else None
    return dataclasses.replace(
        cfg.retrain,
        epochs=epochs,
        max_steps_per_epoch=cap if cap is not None and cap < full else None,
        **changes,
    )


def retrain_steps(cfg: RetrainSection, train_rows: int, batch_size: int) -> int:
    return cfg.epochs * steps_per_epoch(train_rows, batch_size, cfg.max_steps_per_epoch)


# --- students --------------------------------------------------------------------------------


def random_genotype_like(
    config: SupernetConfig,
    searched: Genotype,
    *,
    seq_len: int,
    samples: int,
    seed: int,
    exclude_zero: bool,
) -> tuple[Genotype, dict[str, Any]]:
    """Of ``samples`` seeded random genotypes (random logits through ``derive_genotype``), the
    one whose exact parameter count is closest to the searched student's; among those with the
    searched number of cells when any was drawn. Never the searched genotype itself."""
    target = genotype_cost(config, searched, seq_len).params
    generator = torch.Generator().manual_seed(seed)
    best: tuple[tuple[int, int], int, Genotype] | None = None
    same_cells = 0
    for index in range(samples):
        edge_logits = torch.randn(config.num_edges, len(config.primitives), generator=generator)
        depth_logits = torch.randn(config.max_cells, generator=generator)
        genotype = derive_genotype(edge_logits, depth_logits, config, exclude_zero=exclude_zero)
        if genotype.hash == searched.hash:
            continue
        same_cells += genotype.num_cells == searched.num_cells
        gap = abs(genotype_cost(config, genotype, seq_len).params - target)
        rank = (int(genotype.num_cells != searched.num_cells), gap)
        if best is None or rank < best[0]:
            best = (rank, index, genotype)
    if best is None:
        raise RuntimeError("no random genotype differs from the searched one")
    _, index, genotype = best
    return genotype, {
        "target_params": target,
        "params": genotype_cost(config, genotype, seq_len).params,
        "samples": samples,
        "seed": seed,
        "sample_index": index,
        "same_num_cells": genotype.num_cells == searched.num_cells,
        "samples_with_same_num_cells": same_cells,
    }


class JointEncodingStudent(torch.nn.Module):
    """An HF sequence classifier behind the student's call signature, so that ``run_retrain``
    and ``evaluate`` train and score it unchanged. Its dataset carries the teacher's joint
    encoding in the four student slots: (input_ids, attention_mask, token_type_ids,
    attention_mask); ``trim_padding`` then cuts all four to the batch's longest pair."""

    genotype = None  # EpochReport's genotype field

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, _attention_mask):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits


def bert_style_student(
    config: SupernetConfig,
    *,
    target_params: int,
    max_positions: int,
    heads: int,
    max_layers: int,
    tables,
):
    """BertForSequenceClassification at the cells' width (4x FFN), with the layer count whose
    parameter count is closest to ``target_params``; word and position embeddings initialised
    from the PCA-projected teacher tables, everything else BERT's random init."""
    from transformers import BertConfig, BertForSequenceClassification

    candidates = []
    for layers in range(1, max_layers + 1):
        bert_config = BertConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * config.hidden_size,
            max_position_embeddings=max_positions,
            num_labels=config.num_labels,
        )
        with torch.device("meta"):
            params = BertForSequenceClassification(bert_config).num_parameters()
        candidates.append((abs(params - target_params), layers, bert_config))
    _, _, bert_config = min(candidates, key=lambda item: item[:2])
    model = BertForSequenceClassification(bert_config)
    word, position = projected_tables(config, tables)
    embeddings = model.bert.embeddings
    with torch.no_grad():
        embeddings.word_embeddings.weight.copy_(word[: bert_config.vocab_size])
        if tables[1] is not None:
            embeddings.position_embeddings.weight.copy_(position[:max_positions])
    return model


def joint_encoding_datasets(
    cfg: RunConfig, prepared: PreparedTask
) -> tuple[TensorDataset, TensorDataset]:
    """Train/dev rows with the teacher's joint encoding in the student slots and the teacher's
    logits from ``prepared``. The data is re-read and re-tokenised exactly as ``prepare_task``
    does (same subsample seed, the teacher's tokenizer); rows are aligned by position, which is
    checked against the student columns and labels ``prepared`` holds."""
    data = load_task_data(
        prepared.task,
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
    tokenizer = load_tokenizer(prepared.teacher_dir)
    datasets = []
    for split, knowledge in (("train", prepared.train), ("validation", prepared.dev)):
        tokenized = tokenize_for_distillation(
            data[split],
            tokenizer,
            max_seq_length=cfg.data.max_seq_length,
            is_pair=prepared.task.is_pair,
        )
        names = [*TEACHER_COLUMNS, "input_ids_a", "input_ids_b", "labels"]
        columns = dict(tokenized.with_format("torch", columns=names)[:])
        tensors = knowledge.tensors
        aligned = (
            torch.equal(columns["input_ids_a"], tensors[IDS_A])
            and torch.equal(columns["input_ids_b"], tensors[IDS_B])
            and torch.equal(columns["labels"], tensors[LABELS])
        )
        if not aligned:
            raise RuntimeError(f"re-tokenised {split} rows do not match the prepared task's")
        datasets.append(
            TensorDataset(
                columns["input_ids"],
                columns["attention_mask"],
                columns["token_type_ids"],
                columns["attention_mask"],
                tensors[LABELS],
                tensors[PROBE_LOGITS],
                tensors[LOGITS],
            )
        )
    return datasets[0], datasets[1]


def train_baseline(
    student: torch.nn.Module,
    cfg: RunConfig,
    prepared: PreparedTask,
    *,
    retrain_cfg: RetrainSection,
    train: TensorDataset,
    dev: TensorDataset,
    name: str,
    reporter: EpochCallback,
) -> RetrainResult:
    """The retrain phase's loop, loss and data order (seed + 2), with this budget."""

    def report(event: EpochReport) -> None:
        reporter(dataclasses.replace(event, phase=name))

    return run_retrain(
        student,
        prepared.task,
        train_loader=batch_loader(
            train, batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.run.seed + 2
        ),
        dev_loader=batch_loader(
            dev, batch_size=cfg.data.batch_size, shuffle=False, seed=cfg.run.seed
        ),
        cfg=retrain_cfg,
        loss_cfg=cfg.loss,
        primary_metric=prepared.primary_metric,
        on_epoch=report,
        progress=cfg.run.progress_bar,
    )


# --- measurements ----------------------------------------------------------------------------


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.inference_mode()
def transformer_flops(model: torch.nn.Module, seq_len: int, vocab_size: int) -> int:
    """FLOPs of one full-length example by ``torch.utils.flop_counter`` (2 per MAC, the same
    convention as ``searchspace.costs``)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(**teacher_inputs(1, seq_len, vocab_size))
    return int(counter.get_total_flops())


def bert_base_architecture(num_labels: int):
    """BERT-base (12 x 768, 110M) with random weights: only its speed and size matter."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=num_labels))
    return model.eval()


# --- one task --------------------------------------------------------------------------------


def bench_task(
    task: str, cfg: RunConfig, options: dict[str, Any], out: Path, reporter: EpochCallback
) -> dict[str, Any]:
    started = time.perf_counter()
    # run_trial applies run.threads only after prepare_task; the teacher phase gets it too here.
    torch.set_num_threads(cfg.run.threads or DEFAULT_THREADS)
    print(f"== {task}: data and teacher knowledge", file=sys.stderr, flush=True)
    prepared = prepare_task(cfg, on_progress=reporter)
    print(f"== {task}: search, derive, retrain", file=sys.stderr, flush=True)
    result = run_trial(cfg, prepared, on_epoch=reporter)
    phases = dict(result.phase_seconds)
    run_dir = write_run_folder(
        cfg,
        genotype=result.genotype,
        student=result.student,
        metrics=result.metrics,
        phase_seconds=result.phase_seconds,
        history=result.history,
        root=out / "raw" / "runs",
    )
    config = supernet_config_for(cfg, prepared)
    seq_len = cfg.run.latency_seq_length
    train_rows = len(prepared.train)
    budget = searched_steps(cfg, train_rows)
    searched = {
        "metrics": _dev_metrics(result.metrics),
        "params": result.student.num_parameters(),
        "flops": result.student.flops(seq_len),
        "flops_at_train_seq": result.student.flops(cfg.data.max_seq_length),
        "genotype": result.genotype.to_dict(),
        "genotype_summary": result.genotype.summary(),
        "genotype_hash": result.genotype.hash,
        "search_best_epoch": result.metrics.get("search/best_epoch"),
        "search_best_dev": result.metrics.get("search/best_dev"),
        "retrain_best_epoch": result.metrics.get("retrain/best_epoch"),
        "steps": budget,
        "run_dir": str(run_dir),
        "history": result.history,
    }

    print(f"== {task}: random genotype of similar cost", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    random_result = random_baseline(cfg, prepared, result, config, options, budget, reporter)
    phases["baseline_random"] = time.perf_counter() - clock
    random_student = random_result.pop("model")

    print(f"== {task}: BERT-style student of similar size", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    bert_result = bert_baseline(cfg, prepared, result, config, options, budget, reporter)
    phases["baseline_bert"] = time.perf_counter() - clock
    bert_student = bert_result.pop("model")

    print(f"== {task}: latency, five models interleaved", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    teacher = load_teacher(prepared.teacher_dir, task=prepared.task, fine_tuned=True)
    bert_base = bert_base_architecture(prepared.task.num_labels)
    vocab = min(prepared.vocab_size, config.vocab_size)
    models = {
        "searched": (result.student, "student"),
        "random": (random_student, "student"),
        "bert_style": (bert_student, "teacher"),
        "teacher": (teacher, "teacher"),
        "bert_base": (bert_base, "teacher"),
    }
    latency, latency_runs = {}, []
    for used in dict.fromkeys(int(t) or DEFAULT_THREADS for t in options["latency_threads"]):
        torch.set_num_threads(used)
        load_before = os.getloadavg()[0]
        measured = compare_latency(
            models, vocab_size=vocab, seq_len=seq_len, repeats=cfg.run.latency_repeats
        )
        label = f"threads={used}"
        latency[label] = {k[len("latency/") : -len("_ms")]: v for k, v in measured.items()}
        latency_runs.append(
            {
                "label": label,
                "threads": used,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg()[0],
            }
        )
    torch.set_num_threads(cfg.run.threads or DEFAULT_THREADS)
    teacher_info = {
        "metrics": {k.split("/", 1)[1]: v for k, v in prepared.teacher_metrics.items()},
        "params": prepared.teacher_params,
        "flops": transformer_flops(teacher, seq_len, vocab),
        "cache_hit": prepared.cache_hit,
        "dir": prepared.teacher_dir,
        "probe_metrics": prepared.probe_metrics,
    }
    bert_result["flops"] = transformer_flops(bert_student, seq_len, vocab)
    bert_base_info = {
        "params": count_params(bert_base),
        "flops": transformer_flops(bert_base, seq_len, vocab),
    }
    phases["latency"] = time.perf_counter() - clock
    latency_meta = {
        "seq_len": seq_len,
        "repeats": cfg.run.latency_repeats,
        "headline": latency_runs[0]["label"],
        "runs": latency_runs,
    }
    del teacher, bert_base
    phases["total"] = time.perf_counter() - started

    metric = prepared.task.primary_metric
    teacher_score = teacher_info["metrics"].get(metric)
    ratios = {
        "retention": _ratio(searched["metrics"].get(metric), teacher_score),
        "retention_random": _ratio(random_result["metrics"].get(metric), teacher_score),
        "retention_bert_style": _ratio(bert_result["metrics"].get(metric), teacher_score),
        "size_vs_teacher": teacher_info["params"] / searched["params"],
        "size_vs_bert_base": bert_base_info["params"] / searched["params"],
    }
    speedups = {
        label: {
            f"speedup_b{batch}_vs_{other}": ms[f"{other}_b{batch}"] / ms[f"searched_b{batch}"]
            for batch in (1, 32)
            for other in ("teacher", "bert_base")
        }
        for label, ms in latency.items()
    }
    ratios |= speedups[latency_meta["headline"]]  # the first of bench.latency_threads
    ratios["speedups_by_threads"] = speedups
    return {
        "task": task,
        "status": "done",
        "metric": metric,
        "data": {
            "train_examples": train_rows,
            "dev_examples": len(prepared.dev),
            "train_available": _available(cfg, prepared, "train"),
            "dev_available": _available(cfg, prepared, "validation"),
            "max_seq_length": cfg.data.max_seq_length,
        },
        "teacher": teacher_info,
        "searched": searched,
        "random_genotype": random_result,
        "bert_style": bert_result,
        "bert_base": bert_base_info,
        "latency_ms": latency,
        "latency_meta": latency_meta,
        "ratios": ratios,
        "phase_seconds": phases,
        "config": cfg.to_dict(),
    }


def random_baseline(cfg, prepared, result: TrialResult, config, options, budget, reporter):
    genotype, choice = random_genotype_like(
        config,
        result.genotype,
        seq_len=cfg.run.latency_seq_length,
        samples=int(options["random_genotype_samples"]),
        seed=int(options["random_genotype_seed"]),
        exclude_zero=cfg.search.exclude_zero,
    )
    seed_everything(cfg.run.seed)
    student = scratch_student(config, genotype, teacher_tables(prepared, config))
    retrain_cfg = budget_retrain(cfg, len(prepared.train), budget["total"])
    trained = train_baseline(
        student,
        cfg,
        prepared,
        retrain_cfg=retrain_cfg,
        train=prepared.train,
        dev=prepared.dev,
        name="random",
        reporter=reporter,
    )
    return {
        "model": student,
        "metrics": _strip_prefix(trained.dev_metrics),
        "params": student.num_parameters(),
        "flops": student.flops(cfg.run.latency_seq_length),
        "genotype": genotype.to_dict(),
        "genotype_summary": genotype.summary(),
        "genotype_hash": genotype.hash,
        "choice": choice,
        "steps": retrain_steps(retrain_cfg, len(prepared.train), cfg.data.batch_size),
        "retrain": dataclasses.asdict(retrain_cfg),
        "best_epoch": trained.best_epoch,
        "history": trained.history,
    }


def bert_baseline(cfg, prepared, result: TrialResult, config, options, budget, reporter):
    with progress_bars(cfg.run.progress_bar):
        train, dev = joint_encoding_datasets(cfg, prepared)
    seed_everything(cfg.run.seed)
    model = bert_style_student(
        config,
        target_params=result.student.num_parameters(),
        max_positions=max(cfg.data.max_seq_length, cfg.run.latency_seq_length),
        heads=int(options["bert_heads"]),
        max_layers=int(options["bert_max_layers"]),
        tables=teacher_tables(prepared, config),
    )
    learning_rate = options["bert_learning_rate"] or cfg.retrain.learning_rate
    retrain_cfg = budget_retrain(
        cfg, len(prepared.train), budget["total"], learning_rate=float(learning_rate)
    )
    trained = train_baseline(
        JointEncodingStudent(model),
        cfg,
        prepared,
        retrain_cfg=retrain_cfg,
        train=train,
        dev=dev,
        name="bert-style",
        reporter=reporter,
    )
    shape = model.config
    return {
        "model": model,
        "metrics": _strip_prefix(trained.dev_metrics),
        "params": count_params(model),
        "architecture": {
            "hidden_size": shape.hidden_size,
            "num_hidden_layers": shape.num_hidden_layers,
            "num_attention_heads": shape.num_attention_heads,
            "intermediate_size": shape.intermediate_size,
            "max_position_embeddings": shape.max_position_embeddings,
            "vocab_size": shape.vocab_size,
        },
        "embedding_init": "teacher word + position tables, PCA-projected to the width "
        "(as the searched supernet starts); token types, layers, pooler, head: BERT random init",
        "input": "teacher's joint pair encoding ([CLS] a [SEP] b [SEP], token types)",
        "steps": retrain_steps(retrain_cfg, len(prepared.train), cfg.data.batch_size),
        "retrain": dataclasses.asdict(retrain_cfg),
        "best_epoch": trained.best_epoch,
        "history": trained.history,
    }


def _available(cfg: RunConfig, prepared: PreparedTask, split: str) -> int:
    limit = cfg.data.max_train_samples if split == "train" else cfg.data.max_dev_samples
    used = len(prepared.train if split == "train" else prepared.dev)
    if limit is None or used < limit:
        return used  # no subsample was taken
    with progress_bars(cfg.run.progress_bar):
        data = load_task_data(prepared.task, data_dir=cfg.task.data_dir, seed=cfg.run.seed)
    return len(data[split])


def _dev_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k[4:]: v for k, v in metrics.items() if k.startswith("dev/")}


def _strip_prefix(metrics: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in metrics.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


# --- report ----------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _m(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value / 1e6:.{digits}f}"


def _used(data: dict[str, int], split: str) -> str:
    used, available = data[f"{split}_examples"], data[f"{split}_available"]
    return f"{used:,}" if used == available else f"{used:,} of {available:,}"


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "**no**")


def markdown(report: dict[str, Any]) -> str:
    done = [r for r in report["tasks"] if r["status"] == "done"]
    failed = [r for r in report["tasks"] if r["status"] != "done"]
    finished = {r["task"] for r in report["tasks"]}
    pending = [t for t in report["tasks_requested"] if t not in finished]
    lines = [
        "# AdaBERT benchmark on GLUE dev",
        "",
        f"**Tasks done: {len(done)} of {len(report['tasks_requested'])}** "
        f"({', '.join(r['task'] for r in done) or 'none'})"
        + (f"; failed: {', '.join(r['task'] for r in failed)}" if failed else "")
        + (f"; pending: {', '.join(pending)}" if pending else "")
        + f". Started {report['started']}, updated {report['updated']}"
        + (" (run complete)." if report["complete"] else " (run in progress or interrupted)."),
        "",
        f"Teacher: `{report['teacher']}` fine-tuned per task by the pipeline. "
        f"Machine: {report['machine']['cpus']} CPU cores (shared), torch "
        f"{report['machine']['torch']}, transformers {report['machine']['transformers']}.",
        "",
        "## Results",
        "",
        "Dev-set primary metric. Retention = searched student / teacher. Baselines are trained "
        "with the same KD loss for the same number of optimizer steps as the searched student. "
        "Params, FLOPs and speedups are the searched student's; FLOPs per example at sequence "
        "length 128; speedups are latency ratios from one interleaved run (batch 1 and 32, "
        f"seq 128, {report['headline_threads']}); size ratios are exact parameter-count "
        "ratios.",
        "",
        "| task | train / dev examples | metric | teacher | searched | retention | "
        "random genotype | BERT-style | params (M) | FLOPs/ex (M) | size vs teacher | "
        "size vs BERT-base | b1 vs teacher | b32 vs teacher | b1 vs BERT-base | "
        "b32 vs BERT-base |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: |",
    ]
    for r in done:
        metric, ratios = r["metric"], r["ratios"]
        lines.append(
            f"| {r['task']} | {_used(r['data'], 'train')} / {_used(r['data'], 'dev')} | "
            f"{metric} | {_f(r['teacher']['metrics'].get(metric))} | "
            f"{_f(r['searched']['metrics'].get(metric))} | "
            f"{_f(_pct(ratios['retention']), 1, '%')} | "
            f"{_f(r['random_genotype']['metrics'].get(metric))} | "
            f"{_f(r['bert_style']['metrics'].get(metric))} | {_m(r['searched']['params'])} | "
            f"{_m(r['searched']['flops'], 1)} | {_f(ratios['size_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['size_vs_bert_base'], 1, 'x')} | "
            f"{_f(ratios['speedup_b1_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['speedup_b32_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['speedup_b1_vs_bert_base'], 1, 'x')} | "
            f"{_f(ratios['speedup_b32_vs_bert_base'], 1, 'x')} |"
        )
    lines += [
        "",
        "## Targets",
        "",
        "| task | retention ≥ 97% (SST-2, MRPC) | ≥ 20x smaller than BERT-base | "
        "≥ 50x faster than BERT-base at batch 1 | searched beats random genotype |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in done:
        metric, ratios = r["metric"], r["ratios"]
        retention_target = RETENTION_TARGET.get(r["task"])
        searched_score = r["searched"]["metrics"].get(metric)
        random_score = r["random_genotype"]["metrics"].get(metric)
        lines.append(
            f"| {r['task']} | "
            + (
                f"{_ok(ratios['retention'] >= retention_target)} "
                f"({_f(_pct(ratios['retention']), 1, '%')})"
                if retention_target and ratios["retention"] is not None
                else "n/a"
            )
            + f" | {_ok(ratios['size_vs_bert_base'] >= SIZE_TARGET)} "
            f"({_f(ratios['size_vs_bert_base'], 1, 'x')}) | "
            f"{_ok(ratios['speedup_b1_vs_bert_base'] >= SPEEDUP_TARGET)} "
            f"({_f(ratios['speedup_b1_vs_bert_base'], 1, 'x')}) | "
            f"{_ok(searched_score > random_score)} "
            f"({_f(searched_score)} vs {_f(random_score)}) |"
        )
    lines += [
        "",
        "## Students and baselines",
        "",
        "Every student is trained with (1 - γ)·CE + γ·KD on the teacher's final logits "
        "(`run_retrain`; the searched one also by the search before it); steps = optimizer "
        "steps on its weights, best dev epoch kept. The random genotype is the closest in exact "
        "parameter count among seeded random draws, trained from scratch with the teacher's "
        "PCA-projected embeddings; the BERT-style student reads the teacher's joint pair "
        "encoding, its embeddings initialised the same way. Best epoch of the searched "
        "student: search epoch / retrain epoch (0 = the derived student before retraining).",
        "",
        "| task | model | dev metrics | params (M) | FLOPs/ex (M) | steps | lr | best epoch | "
        "architecture |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in done:
        for name, part, steps, lr, best, arch in _model_rows(r):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in part.get("metrics", {}).items())
            lines.append(
                f"| {r['task']} | {name} | {shown or '-'} | {_m(part['params'])} | "
                f"{_m(part['flops'], 1)} | {steps} | {lr} | {best} | {arch} |"
            )
    lines += [
        "",
        "## Latency (ms)",
        "",
        "Median of `run.latency_repeats` forward passes after 2 warm-up passes, CPU, "
        "full-length random inputs at sequence 128, all five models interleaved per batch size "
        "in one process (the machine is shared: compare within a row, not across runs). "
        "The CNN students embed the two sentences separately (2 x 128 tokens); the "
        "transformers read one joint 128-token sequence.",
        "",
        "Torch threads per row: `bench.latency_threads` (0 = torch's default); on a loaded "
        "machine, more threads than free cores slow small models down most.",
        "",
        "| task | torch threads | batch | searched | random genotype | BERT-style | teacher | "
        "BERT-base | load avg |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in done:
        for run in r["latency_meta"]["runs"]:
            ms = r["latency_ms"][run["label"]]
            for batch in (1, 32):
                cells = " | ".join(
                    _f(ms[f"{name}_b{batch}"], 2)
                    for name in ("searched", "random", "bert_style", "teacher", "bert_base")
                )
                lines.append(
                    f"| {r['task']} | {run['threads']} | {batch} | {cells} | "
                    f"{run['load_average_before']:.1f} |"
                )
    lines += [
        "",
        "## Phase wall times (s)",
        "",
        "data = read + tokenise; teacher = fine-tune + probes + knowledge (≈ 0 on a cache hit); "
        "search and retrain = the searched student; then the two baselines; latency = loading, "
        "timing and counting FLOPs.",
        "",
        "| task | data | teacher | cache hit | search | retrain | random genotype | BERT-style | "
        "latency | total |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in done:
        ps = r["phase_seconds"]
        cells = " | ".join(
            _f(ps.get(k), 0) for k in ("search", "retrain", "baseline_random", "baseline_bert")
        )
        lines.append(
            f"| {r['task']} | {_f(ps.get('data'), 0)} | {_f(ps.get('teacher'), 0)} | "
            f"{'yes' if r['teacher']['cache_hit'] else 'no'} | {cells} | "
            f"{_f(ps.get('latency'), 0)} | {_f(ps.get('total'), 0)} |"
        )
    lines += ["", "## Searched genotypes", ""]
    for r in done:
        s = r["searched"]
        lines.append(
            f"- **{r['task']}** `{s['genotype_hash']}` (search best epoch "
            f"{_f(s['search_best_epoch'], 0)}, dev {_f(s['search_best_dev'])} as a supernet "
            f"sub-network): `{s['genotype_summary']}`"
        )
    for r in failed:
        lines += ["", f"## {r['task']} failed", "", "```", r["error"].rstrip(), "```"]
    lines += [
        "",
        "## Command",
        "",
        "```",
        report["command"],
        "```",
        "",
        "## Config",
        "",
        "Each task's config is bench.toml, then its `[tasks.<name>]` table, then the `--set` "
        "overrides, then `task.name` and `task.data_dir`. Bench-only settings: "
        f"`{json.dumps(report['bench_options'])}`.",
        "",
        f"bench.toml (`{report['config_path']}`):",
        "",
        "```toml",
        report["config_text"].rstrip(),
        "```",
        "",
        "`--set` overrides: "
        + (", ".join(f"`{s}`" for s in report["overrides"]) if report["overrides"] else "none"),
    ]
    for r in done:
        lines += [
            "",
            f"<details><summary>{r['task']}: resolved config</summary>",
            "",
            "```json",
            json.dumps(r["config"], indent=1, sort_keys=True),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _model_rows(r: dict[str, Any]) -> list[tuple]:
    """(name, part of the task's result, steps, learning rate, best epoch, architecture)."""
    cfg, searched = r["config"], r["searched"]
    rand, bert = r["random_genotype"], r["bert_style"]
    steps = searched["steps"]
    return [
        (
            "teacher",
            r["teacher"],
            "-",
            cfg["teacher"]["learning_rate"],
            "-",
            f"`{cfg['teacher']['name_or_path']}`, fine-tuned",
        ),
        (
            "searched",
            searched,
            f"{steps['search']:,} + {steps['retrain']:,}",
            cfg["retrain"]["learning_rate"],
            f"{_f(searched['search_best_epoch'], 0)} / {_f(searched['retrain_best_epoch'], 0)}",
            _code(searched["genotype_summary"]),
        ),
        (
            "random genotype",
            rand,
            f"{rand['steps']:,}",
            rand["retrain"]["learning_rate"],
            rand["best_epoch"],
            _code(rand["genotype_summary"]),
        ),
        (
            "BERT-style",
            bert,
            f"{bert['steps']:,}",
            bert["retrain"]["learning_rate"],
            bert["best_epoch"],
            _bert_shape(bert["architecture"]),
        ),
        ("BERT-base (random weights)", r["bert_base"], "-", "-", "-", "12 x 768, 12 heads"),
    ]


def _code(text: str) -> str:
    """Inline code inside a table cell: GitHub reads ``\\|`` as a literal pipe there too."""
    return "`" + text.replace("|", "\\|") + "`"


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _bert_shape(arch: dict[str, int]) -> str:
    return (
        f"{arch['num_hidden_layers']} x {arch['hidden_size']}, "
        f"{arch['num_attention_heads']} heads, FFN {arch['intermediate_size']}"
    )


def write_report(out: Path, report: dict[str, Any]) -> None:
    report["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    for name, text in (
        ("bench.json", json.dumps(report, indent=1, default=str) + "\n"),
        ("bench.md", markdown(report)),
    ):
        staging = out / f".{name}.tmp"
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, out / name)


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--glue-dir",
        default=str(ROOT.parent / "shared" / "data" / "glue"),
        help="GLUE root holding SST-2/, MRPC/, RTE/, CoLA/, STS-B/ (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(DEFAULT_TASKS),
        choices=sorted(name for name, spec in GLUE_TASKS.items() if spec.glue is not None),
        metavar="TASK",
        help=f"GLUE tasks, run in this order (default: {' '.join(DEFAULT_TASKS)})",
    )
    parser.add_argument(
        "--config",
        default=str(ROOT / "bench" / "bench.toml"),
        help="bench TOML: RunConfig sections, [bench] and [tasks.<name>] (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every task, e.g. search.epochs=3 or bench.bert_learning_rate=1e-4; "
        "wins over bench.toml and its [tasks.<name>] tables",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "bench" / "results"),
        help="folder for bench.md, bench.json and raw/runs/ (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else list(argv)
    glue_dir = Path(args.glue_dir)
    out = Path(args.out)
    try:
        settings = read_settings(args.config, args.set)
        # Validate every task's config before spending an hour on the first one.
        configs = {task: task_config(settings, task, glue_dir) for task in args.tasks}
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import transformers

    if not any(cfg.run.progress_bar for cfg in configs.values()):
        transformers.utils.logging.disable_progress_bar()
    first_threads = settings.options["latency_threads"][0] or DEFAULT_THREADS
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": shlex.join(["python", "bench/run_bench.py", *raw_args]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tasks_requested": list(args.tasks),
        "complete": False,
        "teacher": next(iter(configs.values())).teacher.name_or_path,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "config_path": args.config,
        "config_text": settings.toml_text,
        "overrides": list(args.set),
        "headline_threads": f"{first_threads} torch thread{'s' if first_threads > 1 else ''}",
        "bench_options": settings.options,
        "tasks": [],
    }
    write_report(out, report)
    reporter = console_reporter()
    status = 0
    for task, cfg in configs.items():
        try:
            report["tasks"].append(bench_task(task, cfg, settings.options, out, reporter))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # one task's failure must not lose the others' results
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"
            report["tasks"].append({"task": task, "status": "failed", "error": error})
            status = 1
        write_report(out, report)
        print(f"== {task}: written {out / 'bench.md'}", file=sys.stderr, flush=True)
    report["complete"] = True
    write_report(out, report)
    print((out / "bench.md").read_text(encoding="utf-8"))
    return status


if __name__ == "__main__":
    sys.exit(main())
