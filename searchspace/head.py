"""Attentive multi-depth classifier head ([A-ET], [A-PT]).

For depth k the mean-pooled embedding and cell outputs [e, c_1, ..., c_k] are mixed by a softmax
over k + 1 learnable scalars, then tanh -> dropout -> linear. The depth-m head also serves as the
student's probe for cell m in probe-based distillation ([A-ET]).

With ``pair_encoding="siamese"`` each sentence is mixed on its own (u for a, v for b, the same
softmax) and the linear reads [u, v, |u - v|, u * v] (4 x hidden): same parameter names, a
wider weight.
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.config import SupernetConfig
from searchspace.pair_encoding import pair_features


def features_size(config: SupernetConfig) -> int:
    """Width of the vector the head's linear reads."""
    return 4 * config.hidden_size if config.siamese else config.hidden_size


class AttentiveHead(nn.Module):
    def __init__(self, config: SupernetConfig, depths: list[int]) -> None:
        super().__init__()
        self.per_depth = config.head_per_depth
        self.siamese = config.siamese
        width = features_size(config)
        self.layer_logits = nn.ParameterDict(
            {str(k): nn.Parameter(torch.randn(k + 1) * 1e-2) for k in depths}
        )
        if self.per_depth:
            self.classifiers = nn.ModuleDict(
                {str(k): nn.Linear(width, config.num_labels) for k in depths}
            )
        else:
            self.classifier = nn.Linear(width, config.num_labels)
        self.dropout = nn.Dropout(config.dropout)

    def linear(self, depth: int) -> nn.Linear:
        return self.classifiers[str(depth)] if self.per_depth else self.classifier

    def mix(self, pooled: list[torch.Tensor], depth: int) -> torch.Tensor:
        weights = torch.softmax(self.layer_logits[str(depth)], dim=0)
        return sum(w * p for w, p in zip(weights, pooled[: depth + 1]))

    def features(self, mixed: torch.Tensor, mixed_b: torch.Tensor | None = None) -> torch.Tensor:
        """What the linear reads (before tanh): the mixed vector, or the siamese pair features
        (a single sentence compares with itself, v = u)."""
        if not self.siamese:
            if mixed_b is not None:
                raise ValueError("a joint-encoding head reads one pooled list per pair")
            return mixed
        return pair_features(mixed, mixed if mixed_b is None else mixed_b)

    def forward(
        self,
        pooled: list[torch.Tensor],
        depth: int,
        pooled_b: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """pooled: [embedding, cell 1, ...] each (B, H), at least depth + 1 of them -> (B, C);
        ``pooled_b``: sentence b's list under the siamese encoding."""
        mixed = self.mix(pooled, depth)
        mixed_b = None if pooled_b is None or pooled_b is pooled else self.mix(pooled_b, depth)
        features = self.features(mixed, mixed_b)
        return self.linear(depth)(self.dropout(torch.tanh(features)))
