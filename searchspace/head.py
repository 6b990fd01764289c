"""Attentive multi-depth classifier head ([A-ET], [A-PT]).

For depth k the mean-pooled embedding and cell outputs [e, c_1, ..., c_k] are mixed by a softmax
over k + 1 learnable scalars, then tanh -> dropout -> linear. The depth-m head also serves as the
student's probe for cell m in probe-based distillation ([A-ET]).
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.config import SupernetConfig


class AttentiveHead(nn.Module):
    def __init__(self, config: SupernetConfig, depths: list[int]) -> None:
        super().__init__()
        self.per_depth = config.head_per_depth
        self.layer_logits = nn.ParameterDict(
            {str(k): nn.Parameter(torch.randn(k + 1) * 1e-2) for k in depths}
        )
        if self.per_depth:
            self.classifiers = nn.ModuleDict(
                {str(k): nn.Linear(config.hidden_size, config.num_labels) for k in depths}
            )
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, pooled: list[torch.Tensor], depth: int) -> torch.Tensor:
        """pooled: [embedding, cell 1, ...] each (B, H), at least depth + 1 of them -> (B, C)."""
        weights = torch.softmax(self.layer_logits[str(depth)], dim=0)
        mixed = sum(w * p for w, p in zip(weights, pooled[: depth + 1]))
        linear = self.classifiers[str(depth)] if self.per_depth else self.classifier
        return linear(self.dropout(torch.tanh(mixed)))
