"""Dev-set evaluation of a student (derived or a supernet sub-network) with the task's metric."""

from __future__ import annotations

import math
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
    """The task's metrics under ``prefix``, and the constant check of the same predictions
    (``{prefix}/majority_share``, ``/constant_baseline``, ``/one_class``, ``/degenerate``), which
    ``selection_key`` reads to choose the best epoch."""
    logits, labels = predict(forward, loader)
    metrics = compute_metrics(task, logits_to_predictions(task, logits), labels)
    scores = {f"{prefix}/{name}": float(value) for name, value in metrics.items()}
    score = metrics[task.primary_metric]
    return scores | constant_check(task, logits, labels, prefix=prefix, score=score)


def selection_key(metrics: dict[str, float], primary_metric: str) -> tuple[bool, bool, float]:
    """Order of candidate epochs: a student better than a constant prediction first, then one
    that still tells the classes apart, then the score. On MRPC predicting "equivalent" for
    every pair scores F1 0.81, more than many students that learnt something; ranking by the
    score alone kept such epochs as the best of a search or a retrain. ``primary_metric`` is the
    prefixed name (``dev/f1``); the prefix's constant-check fields are read beside it (absent in
    checkpoints written before they existed: then the score alone decides, as it did)."""
    prefix = primary_metric.rpartition("/")[0]
    score = metrics[primary_metric]
    score = -math.inf if math.isnan(score) else score
    degenerate = bool(metrics.get(f"{prefix}/degenerate", 0.0))
    one_class = bool(metrics.get(f"{prefix}/one_class", 0.0))
    return (not degenerate, not one_class, score)


def selection_score(metrics: dict[str, float], primary_metric: str) -> float:
    """``selection_key`` as one float, for a scheduler that compares numbers (Ray Tune's ASHA):
    the score (every task metric lies in [-1, 1]; NaN counts as -2), 4 less for a student no
    better than a constant and 4 less again for one that answers one class. On MRPC a one-class
    trial's F1 of 0.81 would otherwise outrank a learning trial's 0.79 at every rung."""
    good, tells_classes_apart, score = selection_key(metrics, primary_metric)
    score = -2.0 if score == -math.inf else min(max(score, -1.0), 1.0)
    return score - 4.0 * (not good) - 4.0 * (not tells_classes_apart)


ALMOST_ONE_CLASS = 0.98


CONSTANT_CHECK_FIELDS = tuple(
    f"dev/{name}" for name in ("majority_share", "constant_baseline", "one_class", "degenerate")
)


def constant_check(
    task: TaskSpec,
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    prefix: str = "dev",
    score: float | None = None,
) -> dict[str, float]:
    """Is the model any better than a constant? A student that predicts one class for (almost)
    every example, or scores no higher than the best constant prediction of the dev set, learnt
    nothing worth shipping.

    Returns, under ``prefix``: ``majority_share`` (share of the most predicted class; for
    regression 1.0 when the predictions do not vary), ``constant_baseline`` (the task's primary
    metric of the best constant prediction; 0.0 for correlations), ``one_class`` and
    ``degenerate`` (one class, or no better than the constant; 1.0 or 0.0). "Almost every" is
    ``ALMOST_ONE_CLASS`` of the predictions, unless the gold labels are that skewed too.
    ``score`` is the primary metric of these predictions when the caller has it already.
    """
    predictions = logits_to_predictions(task, logits)
    metric = task.primary_metric
    if score is None:
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
        f"{prefix}/majority_share": share,
        f"{prefix}/constant_baseline": float(baseline),
        f"{prefix}/one_class": float(one_class),
        f"{prefix}/degenerate": float(degenerate),
    }
