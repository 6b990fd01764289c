"""Knowledge distillation terms: plain logit KD and AdaBERT's probe-based, task-oriented KD.

Teacher knowledge arrives as tensors (probe logits per teacher layer, final logits), so a cache
can supply it and no teacher runs during search.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Batch mean of -Σ_c softmax(t / T)_c · log_softmax(s / T)_c (KL up to a constant)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    target = torch.softmax(teacher_logits / temperature, dim=-1)
    return -(target * torch.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()


def logit_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    *,
    is_regression: bool = False,
) -> torch.Tensor:
    """KD between two outputs; for regression (one output unit) the mean squared difference."""
    if is_regression:
        return F.mse_loss(student_logits.squeeze(-1), teacher_logits.squeeze(-1))
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


def task_loss(logits: torch.Tensor, labels: torch.Tensor, *, is_regression: bool) -> torch.Tensor:
    """Batch-mean CE on class ids, or MSE for regression."""
    if is_regression:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def teacher_layer(
    student_layer: int,
    num_cells: int,
    num_teacher_layers: int,
    *,
    mapping: str,
    max_cells: int | None = None,
) -> int:
    """Teacher layer j(m) distilled into student cell m (1-based; 0 is the embedding probe)."""
    if not 1 <= student_layer <= num_cells:
        raise ValueError(f"student_layer must be in 1..{num_cells}, got {student_layer!r}")
    if mapping == "ceil":
        return math.ceil(student_layer * num_teacher_layers / num_cells)
    if mapping == "floor":
        # [A-ET] modeling_adabert.py: for depth l, delta = M // (1 + l) because the embedding
        # layer counts as a student layer; cell m <- probe m * delta.
        return student_layer * (num_teacher_layers // (num_cells + 1))
    if mapping == "kmax":
        if max_cells is None:
            raise ValueError("mapping 'kmax' needs max_cells")
        return (num_teacher_layers * student_layer) // max_cells
    raise ValueError(f"mapping must be 'ceil', 'floor' or 'kmax', got {mapping!r}")


def probe_layer_weights(
    teacher_probe_logits: torch.Tensor,
    labels: torch.Tensor,
    layers: list[int],
    *,
    weighting: str,
    is_regression: bool,
) -> torch.Tensor:
    """Weights over the distilled layers: softmax(-teacher probe loss on the gold labels).

    Layers whose teacher probe is more confident in the true label weigh more ([A-PT], batch
    mean of the probe CE). ``uniform`` gives 1 / len(layers) ([A-ET]).
    """
    if weighting == "uniform":
        return torch.full((len(layers),), 1.0 / len(layers), dtype=teacher_probe_logits.dtype)
    if weighting != "attentive":
        raise ValueError(f"weighting must be 'attentive' or 'uniform', got {weighting!r}")
    losses = torch.stack(
        [task_loss(teacher_probe_logits[:, j], labels, is_regression=is_regression) for j in layers]
    )
    return torch.softmax(-losses.detach(), dim=0)


def probe_kd(
    student_logits_per_depth: torch.Tensor,
    teacher_probe_logits: torch.Tensor,
    labels: torch.Tensor,
    depth_weights: torch.Tensor,
    *,
    temperature: float,
    weighting: str = "attentive",
    mapping: str = "ceil",
    is_regression: bool = False,
) -> torch.Tensor:
    """Σ_k y_K[k] · Σ_{m=1..k} w_m · KD(student probe m, teacher probe j(m)).

    student_logits_per_depth: (K_max, B, C), row m-1 = the student's depth-m head (its probe
    for cell m). teacher_probe_logits: (B, M + 1, C), column 0 = embedding-layer probe.
    depth_weights: (K_max,) relaxed one-hot over K = 1..K_max. The logits may cover only the
    first depths (cells past a sampled K skipped); only those depths then contribute.
    """
    max_cells = depth_weights.shape[0]
    num_teacher_layers = teacher_probe_logits.shape[1] - 1
    per_pair = {}
    total = student_logits_per_depth.new_zeros(())
    for k in range(1, student_logits_per_depth.shape[0] + 1):
        layers = [
            teacher_layer(m, k, num_teacher_layers, mapping=mapping, max_cells=max_cells)
            for m in range(1, k + 1)
        ]
        weights = probe_layer_weights(
            teacher_probe_logits, labels, layers, weighting=weighting, is_regression=is_regression
        ).to(student_logits_per_depth.dtype)
        kd_k = student_logits_per_depth.new_zeros(())
        for m, (j, w) in enumerate(zip(layers, weights), start=1):
            if (m, j) not in per_pair:
                per_pair[(m, j)] = logit_kd(
                    student_logits_per_depth[m - 1],
                    teacher_probe_logits[:, j],
                    temperature,
                    is_regression=is_regression,
                )
            kd_k = kd_k + w * per_pair[(m, j)]
        total = total + depth_weights[k - 1] * kd_k
    return total
