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
