"""AdaBertSupernet: embeddings, max_cells searchable cells and the depth choice.

It owns the architecture parameters (one shared set of edge logits for every cell, plus logits
over K = 1..max_cells) as registered ``nn.Parameter``s; the sampled weights come in as arguments
so the same forward serves Gumbel samples, soft relaxations and one-hot genotypes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from searchspace.cells import MixedOp, SearchCell
from searchspace.config import SupernetConfig
from searchspace.embeddings import StudentEmbedding
from searchspace.genotype import Genotype, derive_genotype
from searchspace.gumbel import gumbel_softmax
from searchspace.head import AttentiveHead
from searchspace.pair_encoding import encode


@dataclass
class SupernetOutput:
    logits_per_depth: torch.Tensor  # (depth, B, C): logits if the student had k = 1.. cells
    edge_weights: torch.Tensor  # (num_edges, num_primitives)
    depth_weights: torch.Tensor  # (max_cells,)


class AdaBertSupernet(nn.Module):
    def __init__(
        self,
        config: SupernetConfig,
        *,
        teacher_word_embeddings: torch.Tensor | None = None,
        teacher_position_embeddings: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.embedding = StudentEmbedding(
            config,
            teacher_word_embeddings=teacher_word_embeddings,
            teacher_position_embeddings=teacher_position_embeddings,
        )
        self.cells = nn.ModuleList(SearchCell(config) for _ in range(config.max_cells))
        self.head = AttentiveHead(config, list(range(1, config.max_cells + 1)))
        # Small random init ([A-PT] 1e-3) breaks the symmetry between ops without favouring any.
        self.edge_logits = nn.Parameter(
            torch.randn(config.num_edges, len(config.primitives)) * 1e-3
        )
        self.depth_logits = nn.Parameter(torch.randn(config.max_cells) * 1e-3)
        # Set by the search, not part of SupernetConfig (which student packages save): drop
        # probability of parameter-free op outputs in training mode (P-DARTS; see MixedOp).
        self.param_free_dropout = 0.0
        self._all_ops = False  # see every_op_runs

    @contextlib.contextmanager
    def every_op_runs(self):
        """Inside: every op of every edge and every depth runs, whatever mixed_op_mode says;
        with soft weights each op then trains (the search's all-ops warm-up)."""
        mixed = [m for m in self.modules() if isinstance(m, MixedOp)]
        modes = [m.mode for m in mixed]
        self._all_ops = True
        for m in mixed:
            m.mode = "all"
        try:
            yield
        finally:
            self._all_ops = False
            for m, mode in zip(mixed, modes):
                m.mode = mode

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.edge_logits, self.depth_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def sample_arch(
        self,
        temperature: float,
        *,
        noise: bool = True,
        hard: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Gumbel sample of (edge_weights, depth_weights), shared by all cells."""
        edges = gumbel_softmax(
            self.edge_logits, temperature, hard=hard, noise=noise, generator=generator
        )
        depth = gumbel_softmax(
            self.depth_logits, temperature, hard=hard, noise=noise, generator=generator
        )
        return edges, depth

    def forward(
        self,
        input_ids_a: torch.Tensor,
        attention_mask_a: torch.Tensor,
        input_ids_b: torch.Tensor,
        attention_mask_b: torch.Tensor,
        *,
        edge_weights: torch.Tensor,
        depth_weights: torch.Tensor,
    ) -> SupernetOutput:
        depth = self.computed_depth(depth_weights)
        cells = [
            partial(cell, edge_weights=edge_weights, param_free_dropout=self.param_free_dropout)
            for cell in self.cells[:depth]
        ]
        pooled, pooled_b = encode(
            self.config.siamese,
            self.embedding,
            cells,
            input_ids_a,
            attention_mask_a,
            input_ids_b,
            attention_mask_b,
        )
        logits = torch.stack([self.head(pooled, k, pooled_b) for k in range(1, depth + 1)])
        return SupernetOutput(logits, edge_weights, depth_weights)

    def computed_depth(self, depth_weights: torch.Tensor) -> int:
        """How many cells a forward pass needs to run.

        All of them when α_K learns from every depth's loss (the straight-through estimator
        needs every term_k). Only up to the sampled K in "sampled" mode (GDAS-style: gradient
        through the selected entry only) and for constant weights (evaluating a genotype).
        """
        sampled = self.config.mixed_op_mode == "sampled" and not self._all_ops
        if sampled or not depth_weights.requires_grad:
            return int(depth_weights.detach().argmax()) + 1
        return self.config.max_cells

    def genotype(self, *, exclude_zero: bool = True, max_param_free: int | None = None) -> Genotype:
        return derive_genotype(
            self.edge_logits,
            self.depth_logits,
            self.config,
            exclude_zero=exclude_zero,
            max_param_free=max_param_free,
        )
