"""Probe classifiers on the frozen teacher's layers (method notes 3.2), in plain PyTorch.

One linear probe per teacher layer (embedding layer included). Inputs follow [A-ET]'s
``HiddenLayerProbes``: the embedding layer is mean-pooled over real tokens, every transformer
layer contributes its [CLS] vector. Probes train on features pooled once from a single teacher
pass, so training them costs no further teacher forward passes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pool_layer_features(
    hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor
) -> torch.Tensor:
    """(M + 1) hidden states of (B, T, H) -> (B, M + 1, H) probe inputs."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states[0].dtype)
    embedding = (hidden_states[0] * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    layers = [embedding] + [h[:, 0] for h in hidden_states[1:]]
    return torch.stack(layers, dim=1)


class ProbeSet(nn.Module):
    """Independent linear probes for L layers in one batched weight: (B, L, H) -> (B, L, C)."""

    def __init__(self, num_layers: int, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_layers, hidden_size, num_labels))
        self.bias = nn.Parameter(torch.zeros(num_layers, num_labels))
        nn.init.normal_(self.weight, std=hidden_size**-0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("blh,lhc->blc", features, self.weight) + self.bias


def _probe_loss(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """Sum over layers of each probe's batch-mean loss ([A-ET]: Σ of the per-layer losses)."""
    num_layers = logits.shape[1]
    if is_regression:
        targets = labels.float()[:, None].expand(-1, num_layers)
        mean_per_layer = F.mse_loss(logits.squeeze(-1), targets)
    else:
        targets = labels[:, None].expand(-1, num_layers).reshape(-1)
        mean_per_layer = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
    return mean_per_layer * num_layers


def train_probes(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_labels: int,
    is_regression: bool,
    epochs: int,
    learning_rate: float,
    batch_size: int = 32,
    seed: int = 0,
) -> ProbeSet:
    """Adam on the frozen features; [A-ET] uses lr 5e-3, 4 epochs, batch 32."""
    torch.manual_seed(seed)
    probes = ProbeSet(features.shape[1], features.shape[2], num_labels)
    optimizer = torch.optim.Adam(probes.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    features = features.float()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = _probe_loss(probes(features[index]), labels[index], is_regression)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    probes.eval()
    return probes


@torch.no_grad()
def probe_logits(probes: ProbeSet, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    return torch.cat(
        [probes(features[i : i + batch_size].float()) for i in range(0, len(features), batch_size)]
    )
