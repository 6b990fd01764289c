"""Cost accounting in one place: exact parameters and FLOPs per primitive, per cell, per student.

Conventions (the FLOP counter test checks them against ``torch.utils.flop_counter``):
- a convolution or linear layer costs 2 FLOPs per multiply-accumulate; bias adds, ReLU and the
  parameter-free LayerNorm are not counted (same as torch's counter);
- a pooling window of k costs k FLOPs per output element (adds or comparisons);
- identity and zero cost nothing; embedding look-ups cost nothing.
FLOPs are per example: one sequence of ``seq_len`` tokens through every cell, or for
``pair_encoding="siamese"`` one pair (each sentence through every cell, see ``cell_passes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from searchspace.config import SupernetConfig
from searchspace.head import features_size
from searchspace.primitives import CONV_SHAPES, POOL_KERNEL


@dataclass(frozen=True)
class OpCost:
    params: int
    flops: int


def op_cost(name: str, hidden_size: int, seq_len: int) -> OpCost:
    """Exact parameters and FLOPs of one primitive on a (seq_len, hidden_size) input."""
    if name in CONV_SHAPES:
        kernel, _ = CONV_SHAPES[name]
        params = kernel * hidden_size * hidden_size + hidden_size
        return OpCost(params, 2 * kernel * hidden_size * hidden_size * seq_len)
    if name in ("avg_pool_3", "max_pool_3"):
        return OpCost(0, POOL_KERNEL * hidden_size * seq_len)
    if name in ("identity", "zero"):
        return OpCost(0, 0)
    raise ValueError(f"primitive must be a known primitive name, got {name!r}")


def op_cost_table(config: SupernetConfig, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(params, flops) per primitive, in ``config.primitives`` order, as float64 tensors."""
    costs = [op_cost(name, config.hidden_size, seq_len) for name in config.primitives]
    params = torch.tensor([c.params for c in costs], dtype=torch.float64)
    flops = torch.tensor([c.flops for c in costs], dtype=torch.float64)
    return params, flops


def embedding_params(config: SupernetConfig) -> int:
    """Derived student's embedding: low-dimensional word + position tables and a LayerNorm."""
    h = config.hidden_size
    return config.vocab_size * h + config.max_positions * h + 2 * h


def cell_fixed_params(config: SupernetConfig) -> int:
    """Per-cell parameters outside the edges: the attentive output's node weights."""
    return config.nodes_per_cell


def cell_passes(config: SupernetConfig) -> int:
    """Cell-stack runs per example: a siamese pair encodes each sentence alone. The pipeline
    sets "joint" for single-sentence tasks, so a siamese config means a pair task."""
    return 2 if config.siamese else 1


def _linear_params(config: SupernetConfig) -> int:
    return features_size(config) * config.num_labels + config.num_labels


def head_params(config: SupernetConfig, num_cells: int) -> int:
    """Attentive head for one depth: num_cells + 1 layer weights and the output linear."""
    return (num_cells + 1) + _linear_params(config)


def head_flops(config: SupernetConfig) -> int:
    """The output linear; the siamese |u - v| and u * v are elementwise (not counted)."""
    return 2 * features_size(config) * config.num_labels


def expected_cost(
    config: SupernetConfig,
    edge_weights: torch.Tensor,
    depth_weights: torch.Tensor,
    seq_len: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected (params, flops) of the student under relaxed architecture weights.

    ``edge_weights`` is (num_edges, num_primitives), one distribution per edge shared by every
    cell; ``depth_weights`` is (max_cells,), the distribution over K = 1..max_cells. Under
    one-hot weights this is the exact count of the derived student (a test checks it).
    """
    op_params, op_flops = op_cost_table(config, seq_len)
    op_params = op_params.to(edge_weights.dtype)
    op_flops = op_flops.to(edge_weights.dtype)
    cell_params = (edge_weights * op_params).sum() + cell_fixed_params(config)
    cell_flops = (edge_weights * op_flops).sum()
    depths = torch.arange(1, config.max_cells + 1, dtype=edge_weights.dtype)
    expected_depth = (depth_weights * depths).sum()
    expected_head = (depth_weights * (depths + 1)).sum() + _linear_params(config)
    params = embedding_params(config) + expected_depth * cell_params + expected_head
    flops = cell_passes(config) * expected_depth * cell_flops + head_flops(config)
    return params, flops


def genotype_cost(config: SupernetConfig, genotype, seq_len: int) -> OpCost:
    """Exact parameters and FLOPs of the student a genotype describes, without building it."""
    edges, depth = genotype.to_arch_weights(config)
    params, flops = expected_cost(config, edges.double(), depth.double(), seq_len)
    return OpCost(int(round(float(params))), int(round(float(flops))))
