"""Dev-set evaluation of a student (derived or a supernet sub-network) with the task's metric."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from orchestrator.tasks.batches import Batch, trim_padding
from orchestrator.tasks.metrics import compute_metrics
from orchestrator.tasks.registry import TaskSpec


@torch.no_grad()
def predict(
    forward: Callable[[Batch], torch.Tensor], loader: DataLoader
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) over the whole loader; ``forward`` maps a batch to (B, C) logits."""
    outputs, labels = [], []
    for batch in loader:
        outputs.append(forward(trim_padding(batch)).float())
        labels.append(batch.labels)
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()


def logits_to_predictions(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if task.is_regression else logits.argmax(axis=-1)


def evaluate(
    task: TaskSpec, forward: Callable[[Batch], torch.Tensor], loader: DataLoader, *, prefix: str
) -> dict[str, float]:
    logits, labels = predict(forward, loader)
    metrics = compute_metrics(task, logits_to_predictions(task, logits), labels)
    return {f"{prefix}/{name}": float(value) for name, value in metrics.items()}


ALMOST_ONE_CLASS = 0.98


def constant_check(task: TaskSpec, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Is the model any better than a constant? A student that predicts one class for (almost)
    every example, or scores no higher than the best constant prediction of the dev set, learnt
    nothing worth shipping.

    Returns ``dev/majority_share`` (share of the most predicted class; for regression 1.0 when
    the predictions do not vary), ``dev/constant_baseline`` (the task's primary metric of the
    best constant prediction; 0.0 for correlations) and ``degenerate`` (1.0 or 0.0). "Almost
    every" is ``ALMOST_ONE_CLASS`` of the predictions, unless the gold labels are that skewed too.
    """
    predictions = logits_to_predictions(task, logits)
    metric = task.primary_metric
    score = compute_metrics(task, predictions, labels)[metric]
    if task.is_regression:
        share = 1.0 if float(np.ptp(predictions)) < 1e-6 else 0.0
        baseline = 0.0
        one_class = share >= 1.0
    else:
        counts = np.bincount(predictions, minlength=task.num_labels)
        share = float(counts.max() / len(predictions))
        gold = np.bincount(labels.astype(int), minlength=task.num_labels)
        gold_share = float(gold.max() / len(labels))
        one_class = share >= 1.0 or (share >= ALMOST_ONE_CLASS > gold_share)
        baseline = max(
            compute_metrics(task, np.full(len(labels), label), labels)[metric]
            for label in range(task.num_labels)
        )
    degenerate = one_class or score <= baseline + 1e-9
    return {
        "dev/majority_share": share,
        "dev/constant_baseline": float(baseline),
        "degenerate": float(degenerate),
    }
