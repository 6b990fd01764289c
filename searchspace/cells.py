"""MixedOp, the searchable cell and the derived cell (DARTS-style DAG, AdaBERT's attentive output).

A cell maps its two inputs (each with its own padding mask) to one output whose mask is the
union of theirs: for sentence pairs under the "joint" encoding the first cell receives the two
sentences separately; under "siamese" each sentence is both inputs (``pair_encoding.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.config import SupernetConfig
from searchspace.genotype import Genotype, edge_key, edge_list
from searchspace.primitives import PARAMETER_FREE, build_op


class MixedOp(nn.Module):
    """One edge of the supernet: every primitive, mixed by the sampled architecture weights.

    ``param_free_dropout`` p (training mode only): each parameter-free op's output is zeroed
    per example with probability p and otherwise scaled by 1 / (1 - p). P-DARTS drops skip
    connections; ours extends it to every parameter-free op. Masks come from the global torch
    RNG, whose state the trial checkpoints save.
    """

    def __init__(self, config: SupernetConfig) -> None:
        super().__init__()
        self.mode = config.mixed_op_mode
        self.ops = nn.ModuleDict(
            {name: build_op(name, config.hidden_size) for name in config.primitives}
        )
        # "zero" is left out: dropping a zero output changes nothing.
        self.droppable = [name in PARAMETER_FREE and name != "zero" for name in self.ops]

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        weights: torch.Tensor,
        *,
        param_free_dropout: float = 0.0,
    ) -> torch.Tensor:
        ops = list(self.ops.values())
        p = param_free_dropout if self.training else 0.0

        def run(index: int) -> torch.Tensor:
            out = ops[index](x, mask)
            if p > 0 and self.droppable[index]:
                keep = out.new_empty((out.shape[0], 1, 1)).bernoulli_(1.0 - p)
                out = out * keep / (1.0 - p)
            return out

        if self.mode == "sampled":
            # GDAS-style ([PS]): only the selected op runs; the gradient reaches the logits
            # through the selected weight, which is 1 in the forward pass.
            index = int(weights.argmax())
            return weights[index] * run(index)
        total = torch.zeros_like(x)
        zero_in_forward = (weights.detach() == 0).tolist()
        for index, (w, is_zero) in enumerate(zip(weights, zero_in_forward)):
            if not is_zero:
                total = total + w * run(index)
            elif w.requires_grad:
                # A straight-through hard sample is exactly 0 here in the forward pass, so the
                # gradient reaching x and the op's weights through this term is 0 · (...) = 0;
                # only ∂L/∂w = <∂L/∂node, op(x)> needs the output. Computing it without autograd
                # gives the same gradients as the full mixture at about a third of the cost.
                with torch.no_grad():
                    out = run(index)
                total = total + w * out
            # A constant zero weight (a one-hot genotype at evaluation) contributes nothing.
        return total


def _attentive_sum(nodes: list[torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    weights = torch.softmax(logits, dim=0)
    return sum(w * node for w, node in zip(weights, nodes))


class SearchCell(nn.Module):
    """Inner node x_j = sum over earlier nodes i of MixedOp_{i,j}(x_i); output = attentive sum."""

    def __init__(self, config: SupernetConfig) -> None:
        super().__init__()
        self.nodes_per_cell = config.nodes_per_cell
        self.pairs = edge_list(config.nodes_per_cell)
        self.edges = nn.ModuleDict({edge_key(s, t): MixedOp(config) for s, t in self.pairs})
        # [A-ET]/[A-PT]: softmax over learnable per-cell node weights; trained with w, not α.
        self.output_logits = nn.Parameter(torch.randn(config.nodes_per_cell) * 1e-2)

    def forward(
        self,
        s0: torch.Tensor,
        m0: torch.Tensor,
        s1: torch.Tensor,
        m1: torch.Tensor,
        edge_weights: torch.Tensor,
        *,
        param_free_dropout: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Off, the edges get the plain (x, mask, weights) call (reference MixedOps in tests).
        extra = {"param_free_dropout": param_free_dropout} if param_free_dropout else {}
        states, masks = [s0, s1], [m0, m1]
        for target in range(2, 2 + self.nodes_per_cell):
            node = 0
            for row, (source, t) in enumerate(self.pairs):
                if t == target:
                    edge = self.edges[edge_key(source, target)]
                    node = node + edge(states[source], masks[source], edge_weights[row], **extra)
            states.append(node)
            masks.append(torch.maximum(m0, m1))
        return _attentive_sum(states[2:], self.output_logits), masks[-1]


class DerivedCell(nn.Module):
    """The cell a genotype describes; parameter names match SearchCell's for weight transfer."""

    def __init__(self, config: SupernetConfig, genotype: Genotype) -> None:
        super().__init__()
        self.nodes_per_cell = config.nodes_per_cell
        self.kept = sorted((e.source, e.target, e.op) for e in genotype.edges)
        self.edges = nn.ModuleDict(
            {edge_key(s, t): build_op(op, config.hidden_size) for s, t, op in self.kept}
        )
        self.output_logits = nn.Parameter(torch.randn(config.nodes_per_cell) * 1e-2)

    def forward(
        self, s0: torch.Tensor, m0: torch.Tensor, s1: torch.Tensor, m1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states, masks = [s0, s1], [m0, m1]
        for target in range(2, 2 + self.nodes_per_cell):
            node = torch.zeros_like(s1)
            for source, t, _ in self.kept:
                if t == target:
                    node = node + self.edges[edge_key(source, target)](
                        states[source], masks[source]
                    )
            states.append(node)
            masks.append(torch.maximum(m0, m1))
        return _attentive_sum(states[2:], self.output_logits), masks[-1]
