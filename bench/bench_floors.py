"""The benchmark's floors: what a task scores with no architecture at all.

- ``majority_baseline``: the dev metric of always predicting the training set's majority class.
- ``BagOfEmbeddings``: embeddings -> masked mean over real tokens -> linear. A re-implementation
  of AdaBERT saw its search collapse to exactly this network, so a searched student that does
  not beat it has not shown that its cells do anything. It starts from the same teacher-projected
  tables as the random genotype (``scratch_student``) and trains with the same KD loss and step
  budget as every other baseline.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from bench_baselines import (
    count_params,
    retrain_steps,
    strip_prefix,
    train_on_budget,
)
from torch import nn

from orchestrator.method.pipeline import (
    PreparedTask,
    projected_tables,
    seed_everything,
    teacher_tables,
)
from orchestrator.tasks.metrics import compute_metrics
from orchestrator.tasks.registry import TaskSpec
from searchspace.config import SupernetConfig
from searchspace.derived import student_config
from searchspace.embeddings import StudentEmbedding, masked_mean
from searchspace.pair_encoding import pair_features

PAIR_FEATURES = "[u, v, |u - v|, u * v]"


class BagOfEmbeddings(nn.Module):
    """(input_ids_a, attention_mask_a, input_ids_b, attention_mask_b) -> logits, the
    DerivedStudent call signature, so ``run_retrain``, ``evaluate`` and ``compare_latency``
    take it unchanged.

    The embedding layer is the students' own (``StudentEmbedding`` at the cell width: word +
    position, LayerNorm, dropout, zero at padding). Single-sentence tasks classify u, the masked
    mean of sentence a (b is a copy of a in their rows, so it is not embedded twice); pair tasks
    classify ``pair_features(u, v)``.
    """

    genotype = None  # EpochReport's genotype field

    def __init__(self, config: SupernetConfig, *, pair: bool) -> None:
        super().__init__()
        self.config = student_config(config)  # low-dimensional tables, as students store them
        self.pair = pair
        self.embedding = StudentEmbedding(self.config)
        width = self.config.hidden_size * (4 if pair else 1)
        self.classifier = nn.Linear(width, self.config.num_labels)

    def features(self, input_ids_a, attention_mask_a, input_ids_b, attention_mask_b):
        u = masked_mean(self.embedding(input_ids_a, attention_mask_a), attention_mask_a)
        if not self.pair:
            return u
        v = masked_mean(self.embedding(input_ids_b, attention_mask_b), attention_mask_b)
        return pair_features(u, v)

    def forward(self, input_ids_a, attention_mask_a, input_ids_b, attention_mask_b):
        return self.classifier(
            self.features(input_ids_a, attention_mask_a, input_ids_b, attention_mask_b)
        )

    def num_parameters(self) -> int:
        return count_params(self)

    def flops(self, seq_len: int) -> int:
        """The linear layer only, 2 per MAC: ``DerivedStudent.flops`` leaves out the embedding
        lookup and pooling too, so the two counts compare."""
        del seq_len  # the classifier reads one pooled vector whatever the length
        return 2 * self.classifier.in_features * self.classifier.out_features


def bag_of_embeddings(config: SupernetConfig, tables, *, pair: bool) -> BagOfEmbeddings:
    """A fresh classifier over the teacher's tables projected like the searched supernet's."""
    model = BagOfEmbeddings(config, pair=pair)
    word, position = projected_tables(config, tables)
    with torch.no_grad():
        model.embedding.word_embeddings.weight.copy_(word)
        model.embedding.position_embeddings.weight.copy_(position)
    return model


def floor_baseline(cfg, prepared: PreparedTask, config, budget, reporter) -> dict[str, Any]:
    """The bag of embeddings trained like the random genotype: same seed, loss, learning rate,
    data order and step budget."""
    seed_everything(cfg.run.seed)
    pair = prepared.task.is_pair
    model = bag_of_embeddings(config, teacher_tables(prepared, config), pair=pair)
    trained, retrain_cfg = train_on_budget(
        model, cfg, prepared, budget, "bag-of-embeddings", reporter
    )
    return {
        "model": model,
        "metrics": strip_prefix(trained.dev_metrics),
        "params": model.num_parameters(),
        "flops": model.flops(cfg.run.latency_seq_length),
        "features": PAIR_FEATURES if pair else "u",
        "architecture": "embedding -> masked mean over real tokens -> linear",
        "embedding_init": "teacher word + position tables, PCA-projected to the width "
        "(as the random genotype starts); LayerNorm and linear fresh",
        "steps": retrain_steps(retrain_cfg, len(prepared.train), cfg.data.batch_size),
        "retrain": dataclasses.asdict(retrain_cfg),
        "best_epoch": trained.best_epoch,
        "history": trained.history,
    }


def majority_baseline(
    task: TaskSpec, train_labels: torch.Tensor, dev_labels: torch.Tensor
) -> dict[str, Any]:
    """The dev metrics of predicting the training set's most frequent class for every row.

    Regression gets no score: a constant has no correlation with anything (the metrics module
    scores it 0.0 only to keep epoch comparisons NaN-free), so reporting a number would
    invent one.
    """
    if task.is_regression:
        return {"label": None, "score": None, "metrics": {}, "reason": "regression"}
    counts = np.bincount(train_labels.numpy().astype(int), minlength=task.num_labels)
    label = int(counts.argmax())  # ties: the lowest class id
    labels = dev_labels.numpy()
    metrics = compute_metrics(task, np.full(len(labels), label), labels)
    return {
        "label": label,
        "score": metrics[task.primary_metric],
        "metrics": metrics,
        "train_share": float(counts[label] / counts.sum()),
    }
