"""Baselines of the GLUE benchmark: the step budget they share with the searched student, a
random genotype of similar cost and a BERT-style student of similar batch-1 latency (see
run_bench.py; the floors are in bench_floors.py, the latency match in bench_bert_pick.py)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from bench_bert_pick import BertShape, bert_config, candidate_shapes, latency_matched_shape

from orchestrator.config import (
    RetrainSection,
    RunConfig,
)
from orchestrator.method.latency import teacher_inputs
from orchestrator.method.pipeline import (
    PreparedTask,
    TrialResult,
    load_run_data,
    projected_tables,
    scratch_student,
    seed_everything,
    teacher_tables,
)
from orchestrator.method.retrain import RetrainResult, run_retrain
from orchestrator.progress import EpochCallback, EpochReport
from orchestrator.tasks.batches import DistillationSet, batch_loader
from orchestrator.tasks.data import tokenize_for_distillation, with_rows
from orchestrator.teacher.model import TEACHER_COLUMNS, load_tokenizer
from searchspace.config import SupernetConfig
from searchspace.costs import genotype_cost
from searchspace.genotype import Genotype, derive_genotype

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


def random_genotype_any_size(
    config: SupernetConfig, *, seed: int, exclude_zero: bool, avoid: Genotype
) -> Genotype:
    """One genotype drawn over the whole search space: seeded random logits through
    ``derive_genotype`` (a uniform number of cells, a uniform op on every edge), whatever its
    cost. The architecture a user would pick without the search; never ``avoid`` (the searched
    genotype)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        edge_logits = torch.randn(config.num_edges, len(config.primitives), generator=generator)
        depth_logits = torch.randn(config.max_cells, generator=generator)
        genotype = derive_genotype(edge_logits, depth_logits, config, exclude_zero=exclude_zero)
        if genotype.hash != avoid.hash:
            return genotype


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


def bert_style_student(config: SupernetConfig, shape: BertShape, *, max_positions: int, tables):
    """BertForSequenceClassification of ``shape`` (4x FFN); word and position embeddings
    initialised from the teacher tables PCA-projected to its width (the searched supernet's
    start when the width is the cells'), everything else BERT's random init."""
    from transformers import BertForSequenceClassification

    bert = bert_config(
        shape,
        vocab_size=config.vocab_size,
        max_positions=max_positions,
        num_labels=config.num_labels,
    )
    model = BertForSequenceClassification(bert)
    # The projection is fitted at the transformer's width, not the cells'.
    word, position = projected_tables(dataclasses.replace(config, hidden_size=shape.width), tables)
    embeddings = model.bert.embeddings
    with torch.no_grad():
        embeddings.word_embeddings.weight.copy_(word[: bert.vocab_size])
        if tables[1] is not None:
            embeddings.position_embeddings.weight.copy_(position[:max_positions])
    return model


def joint_encoding_datasets(
    cfg: RunConfig, prepared: PreparedTask
) -> tuple[DistillationSet, DistillationSet]:
    """Train/dev rows with the teacher's joint encoding in the student slots and the teacher's
    logits from ``prepared``. The data is re-read and re-tokenised exactly as ``prepare_task``
    does (same subsample seed, the teacher's tokenizer); rows are aligned by position, which is
    checked against the student columns and labels ``prepared`` holds."""
    data = load_run_data(cfg, prepared.task)
    tokenizer = load_tokenizer(prepared.teacher_dir)
    encoded = []
    for split, knowledge in (("train", prepared.train), ("validation", prepared.dev)):
        rows = data[split]
        if split == "train" and prepared.augmented_texts:
            rows = with_rows(rows, prepared.augmented_texts)
        tokenized = tokenize_for_distillation(
            rows,
            tokenizer,
            max_seq_length=cfg.data.max_seq_length,
            is_pair=prepared.task.is_pair,
        )
        names = [*TEACHER_COLUMNS, "input_ids_a", "input_ids_b", "labels"]
        columns = dict(tokenized.with_format("torch", columns=names)[:])
        aligned = (
            torch.equal(columns["input_ids_a"], knowledge.input_ids_a)
            and torch.equal(columns["input_ids_b"], knowledge.input_ids_b)
            and torch.equal(columns["labels"], knowledge.labels)
        )
        if not aligned:
            raise RuntimeError(f"re-tokenised {split} rows do not match the prepared task's")
        encoded.append(
            # The joint encoding rides in the student slots: (ids, mask, token types, mask).
            DistillationSet(
                b_copies_a=False,  # slot b carries the token types
                input_ids_a=columns["input_ids"],
                attention_mask_a=columns["attention_mask"],
                input_ids_b=columns["token_type_ids"],
                attention_mask_b=columns["attention_mask"],
                labels=knowledge.labels,
                teacher_probe_logits=knowledge.teacher_probe_logits,
                teacher_logits=knowledge.teacher_logits,
            )
        )
    return encoded[0], encoded[1]


def train_on_budget(model, cfg, prepared, budget, name: str, reporter):
    """``model`` trained on the transfer set for the searched student's total step budget:
    (the retrain result, the retrain section it ran with)."""
    retrain_cfg = budget_retrain(cfg, len(prepared.train), budget["total"])
    trained = train_baseline(
        model,
        cfg,
        prepared,
        retrain_cfg=retrain_cfg,
        train=prepared.train,
        dev=prepared.dev,
        name=name,
        reporter=reporter,
    )
    return trained, retrain_cfg


def train_baseline(
    student: torch.nn.Module,
    cfg: RunConfig,
    prepared: PreparedTask,
    *,
    retrain_cfg: RetrainSection,
    train: DistillationSet,
    dev: DistillationSet,
    name: str,
    reporter: EpochCallback,
) -> RetrainResult:
    """The retrain phase's loop, loss and data order (seed + 2), with this budget; each set is
    batched as its ``b_copies_a`` says."""

    def report(event: EpochReport) -> None:
        reporter(dataclasses.replace(event, phase=name))

    return run_retrain(
        student,
        prepared.task,
        train_loader=batch_loader(
            train,
            batch_size=cfg.data.batch_size,
            shuffle=True,
            seed=cfg.run.seed + 2,
        ),
        dev_loader=batch_loader(
            dev,
            batch_size=cfg.data.batch_size,
            shuffle=False,
            seed=cfg.run.seed,
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


def pick_random_genotype(cfg, result: TrialResult, config, options) -> tuple[Genotype, dict]:
    """The random-genotype control's architecture, drawn once per task (not per seed): the
    draw depends only on the searched genotype and ``bench.random_genotype_seed``."""
    return random_genotype_like(
        config,
        result.genotype,
        seq_len=cfg.run.latency_seq_length,
        samples=int(options["random_genotype_samples"]),
        seed=int(options["random_genotype_seed"]),
        exclude_zero=cfg.search.exclude_zero,
    )


def random_baseline(cfg, prepared, config, budget, reporter, *, genotype: Genotype, choice: dict):
    """``genotype`` (from ``pick_random_genotype``) trained from scratch with ``cfg``'s seed."""
    seed_everything(cfg.run.seed)
    student = scratch_student(config, genotype, teacher_tables(prepared, config))
    trained, retrain_cfg = train_on_budget(student, cfg, prepared, budget, "random", reporter)
    return {
        "model": student,
        "metrics": strip_prefix(trained.dev_metrics),
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


def pick_bert_shape(cfg, prepared, result: TrialResult, config, options) -> tuple[BertShape, dict]:
    """The BERT-style control's shape, picked once per task: the candidate whose batch-1
    latency is closest to the searched student's (``result.student``)."""
    return latency_matched_shape(
        result.student,
        candidate_shapes(options["bert_layers"], options["bert_widths"], options["bert_heads"]),
        vocab_size=config.vocab_size,
        input_vocab=min(prepared.vocab_size, config.vocab_size),
        max_positions=bert_max_positions(cfg),
        num_labels=config.num_labels,
        seq_len=cfg.run.latency_seq_length,
        repeats=cfg.run.latency_repeats,
        pair=prepared.task.is_pair,
    )


def bert_max_positions(cfg) -> int:
    return max(cfg.data.max_seq_length, cfg.run.latency_seq_length)


def bert_baseline(cfg, prepared, config, options, budget, reporter, *, datasets, shape: BertShape):
    """The BERT-style control of ``shape`` (from ``pick_bert_shape``) trained with ``cfg``'s
    seed on ``datasets`` (``joint_encoding_datasets`` of the config the task was prepared with:
    its seed drew any subsample)."""
    train, dev = datasets
    max_positions = bert_max_positions(cfg)
    seed_everything(cfg.run.seed)  # after the timing: its random models must not shift the init
    model = bert_style_student(
        config, shape, max_positions=max_positions, tables=teacher_tables(prepared, config)
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
    arch = model.config
    return {
        "model": model,
        "metrics": strip_prefix(trained.dev_metrics),
        "params": count_params(model),
        "architecture": {
            "hidden_size": arch.hidden_size,
            "num_hidden_layers": arch.num_hidden_layers,
            "num_attention_heads": arch.num_attention_heads,
            "intermediate_size": arch.intermediate_size,
            "max_position_embeddings": arch.max_position_embeddings,
            "vocab_size": arch.vocab_size,
        },
        "embedding_init": "teacher word + position tables, PCA-projected to its width "
        "(as the searched supernet starts at the cells' width); token types, layers, pooler, "
        "head: BERT random init",
        "input": "teacher's joint pair encoding ([CLS] a [SEP] b [SEP], token types)",
        "steps": retrain_steps(retrain_cfg, len(prepared.train), cfg.data.batch_size),
        "retrain": dataclasses.asdict(retrain_cfg),
        "best_epoch": trained.best_epoch,
        "history": trained.history,
    }


def strip_prefix(metrics: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in metrics.items()}
