"""Efficiency-aware loss: expected normalised size + FLOPs under the architecture distribution.

[R] L_E = (K / K_max) · Σ_{edges} [SIZE(o) + FLOPs(o)] with normalised SIZE and FLOPs, taken
here as an expectation under the relaxed one-hot weights y (method notes 3.3):
L_E = (K̂ / K_max) · reduce_edges( Σ_o y_{e,o} · c_o ),   K̂ = Σ_k k · y_K[k].
The normalised per-op cost c_o is where the sources disagree (``normalizer``):
- "max": m_o = (SIZE_o / max SIZE + FLOPs_o / max FLOPs) / 2, in [0, 1] (the notes' reading of
  the [R] formula). With the paper's β = 4 the dearest cell costs 4 loss units: the search
  collapses to parameter-free edges (measured on SST-2, see README).
- "softmax": c = softmax_o(m_o), a cost vector summing to 1 as [A-ET]'s fixed vector does; the
  spread between the dearest and the cheapest op is at most e, so β = 4 steers without
  dominating.
- "pt": [A-PT]'s ½·[softmax(SIZE/1e5) + softmax(FLOPs/1e7)], identity and zero smoothed to 1.
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
    max_normalised = 0.5 * (
        params / params.max().clamp_min(1.0) + flops / flops.max().clamp_min(1.0)
    )
    if normalizer == "max":
        return max_normalised
    if normalizer == "softmax":
        return torch.softmax(max_normalised, dim=0)
    if normalizer == "pt":
        # [A-PT]: parameter-free ops get size and FLOPs of 1 ("smoothing") before the softmax.
        free = torch.tensor([name in ("identity", "zero") for name in primitives])
        params = torch.where(free, torch.ones_like(params), params)
        flops = torch.where(free, torch.ones_like(flops), flops)
        return 0.5 * (torch.softmax(params / 1e5, dim=0) + torch.softmax(flops / 1e7, dim=0))
    raise ValueError(f"normalizer must be 'max', 'softmax' or 'pt', got {normalizer!r}")


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
