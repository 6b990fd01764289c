"""Task metrics computed as HF's GLUE metric does (scikit-learn and scipy), keyed by metric name."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from orchestrator.tasks.registry import TaskSpec


def primary_metric(task: TaskSpec) -> str:
    """The metric that model selection maximises (the first of ``task.metrics``)."""
    return task.primary_metric


def _correlation(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    # A constant predictor (or constant gold scores) has no correlation with anything: scipy
    # returns NaN with a ConstantInputWarning, which would poison "best epoch" comparisons
    # (NaN > x is always False). Score it as 0.0, like a predictor carrying no information.
    if len(labels) < 2 or np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0
    function = pearsonr if name == "pearson" else spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(function(predictions, labels)[0])
    return 0.0 if math.isnan(value) else value


def _classification(
    name: str, predictions: np.ndarray, labels: np.ndarray, num_labels: int
) -> float:
    if name == "accuracy":
        return float(accuracy_score(labels, predictions))
    if name == "f1":
        # GLUE's F1 (MRPC, QQP) is binary F1 of class 1; custom multi-class tasks get macro F1.
        # zero_division=0 scores "never predicts the positive class" as 0 without a warning.
        average = "binary" if num_labels <= 2 else "macro"
        return float(f1_score(labels, predictions, average=average, zero_division=0))
    with warnings.catch_warnings():
        # sklearn returns 0.0 for a constant prediction but may warn about the 0/0 it hit.
        warnings.simplefilter("ignore")
        return float(matthews_corrcoef(labels, predictions))


def compute_metrics(
    task: TaskSpec, predictions: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Every metric of ``task``, in ``task.metrics`` order.

    Args:
        task: the task (decides the metric names and classification vs regression).
        predictions: (N,) class ids for classification, floats for regression.
        labels: (N,) gold class ids or gold floats.

    Returns:
        ``{metric name: value}`` with exactly the keys of ``task.metrics``.

    Raises:
        ValueError: the arrays are not 1-D, differ in length, or are empty.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"predictions and labels must be 1-D, got shapes {predictions.shape} and "
            f"{labels.shape} (pass class ids, not logits)"
        )
    if len(predictions) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need as many predictions as labels (and at least one), got {len(predictions)} "
            f"and {len(labels)}"
        )
    results: dict[str, float] = {}
    for name in task.metrics:
        if name in ("pearson", "spearmanr"):
            results[name] = _correlation(
                name, predictions.astype(np.float64), labels.astype(np.float64)
            )
        elif name in ("accuracy", "f1", "matthews_correlation"):
            results[name] = _classification(
                name, predictions.astype(np.int64), labels.astype(np.int64), task.num_labels
            )
        else:
            raise ValueError(f"task '{task.name}' asks for unknown metric '{name}'")
    return results
