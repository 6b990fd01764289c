"""Efficiency-aware loss: expected normalised size + FLOPs under the architecture distribution.

[R] L_E = (K / K_max) · Σ_{edges} [SIZE(o) + FLOPs(o)] with normalised SIZE and FLOPs, taken
here as an expectation under the relaxed one-hot weights y (method notes 3.3):
L_E = (K̂ / K_max) · reduce_edges( Σ_o y_{e,o} · c_o ),   K̂ = Σ_k k · y_K[k],
c_o = (SIZE_o / max SIZE + FLOPs_o / max FLOPs) / 2 for the "max" normaliser.
"""

from __future__ import annotations

import torch


def op_cost_vector(
    op_params: torch.Tensor,
    op_flops: torch.Tensor,
    *,
    normalizer: str,
    primitives: tuple[str, ...],
) -> torch.Tensor:
    """Normalised cost c_o of each primitive, from its absolute params and FLOPs."""
    params = op_params.double()
    flops = op_flops.double()
    if normalizer == "max":
        return 0.5 * (params / params.max().clamp_min(1.0) + flops / flops.max().clamp_min(1.0))
    if normalizer == "softmax":
        # [A-PT]: parameter-free ops get size and FLOPs of 1 ("smoothing") before the softmax.
        free = torch.tensor([name in ("identity", "zero") for name in primitives])
        params = torch.where(free, torch.ones_like(params), params)
        flops = torch.where(free, torch.ones_like(flops), flops)
        return 0.5 * (torch.softmax(params / 1e5, dim=0) + torch.softmax(flops / 1e7, dim=0))
    raise ValueError(f"normalizer must be 'max' or 'softmax', got {normalizer!r}")


def efficiency_loss(
    edge_weights: torch.Tensor,
    depth_weights: torch.Tensor,
    op_costs: torch.Tensor,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """edge_weights (num_edges, num_ops), depth_weights (K_max,), op_costs (num_ops,) -> scalar."""
    per_edge = (edge_weights * op_costs.to(edge_weights.dtype)).sum(dim=-1)
    if reduction == "mean":
        cell = per_edge.mean()
    elif reduction == "sum":
        cell = per_edge.sum()
    else:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    max_cells = depth_weights.shape[0]
    depths = torch.arange(1, max_cells + 1, dtype=depth_weights.dtype, device=depth_weights.device)
    expected_depth = (depth_weights * depths).sum()
    return expected_depth / max_cells * cell
