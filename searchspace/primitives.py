"""The ten candidate operations of AdaBERT on (batch, seq, hidden) tensors, mask-aware.

Every op takes ``x`` of shape (B, T, H) and ``mask`` of shape (B, T) (1 = real token) and
returns (B, T, H) with padding positions set to zero, so padding never leaks into real tokens:
a padded batch gives, on its real tokens, exactly what the unpadded batch gives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

PRIMITIVES: tuple[str, ...] = (
    "std_conv_3",
    "std_conv_5",
    "std_conv_7",
    "dil_conv_3",
    "dil_conv_5",
    "dil_conv_7",
    "avg_pool_3",
    "max_pool_3",
    "identity",
    "zero",
)

PARAMETER_FREE: frozenset[str] = frozenset({"avg_pool_3", "max_pool_3", "identity", "zero"})

# (kernel, dilation) of the convolutional primitives. Dilation 2 follows [A-PT] and [PS]; the
# TF reproduction's morphological dilation2d is a known bug (method notes, section 6).
CONV_SHAPES: dict[str, tuple[int, int]] = {
    "std_conv_3": (3, 1),
    "std_conv_5": (5, 1),
    "std_conv_7": (7, 1),
    "dil_conv_3": (3, 2),
    "dil_conv_5": (5, 2),
    "dil_conv_7": (7, 2),
}

POOL_KERNEL = 3


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask.unsqueeze(-1).to(x.dtype)


class Conv(nn.Module):
    """ReLU -> 1-D conv along tokens ("same" padding) -> parameter-free LayerNorm.

    [A-ET] applies ReLU before the conv; [A-PT]/[PS] follow with a non-affine BatchNorm. Batch
    statistics would mix padding into real tokens, so the normalisation here is a per-token
    LayerNorm without affine parameters: same role (keeps edge outputs on one scale), no leak.
    """

    def __init__(self, hidden_size: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(
            hidden_size,
            hidden_size,
            kernel_size,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
        )
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(_masked(x, mask)).transpose(1, 2)
        h = self.conv(h).transpose(1, 2)
        return _masked(self.norm(h), mask)


class AvgPool(nn.Module):
    """Average over a window of 3 tokens, counting only real tokens ([A-PT] excludes padding)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        summed = nn.functional.avg_pool1d(
            _masked(x, mask).transpose(1, 2), POOL_KERNEL, 1, POOL_KERNEL // 2
        )
        count = nn.functional.avg_pool1d(m, POOL_KERNEL, 1, POOL_KERNEL // 2)
        out = (summed / count.clamp_min(1e-6)).transpose(1, 2)
        return _masked(out, mask)


class MaxPool(nn.Module):
    """Max over a window of 3 tokens; padding is -inf so it can never win."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        filled = x.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        out = nn.functional.max_pool1d(
            filled.transpose(1, 2), POOL_KERNEL, 1, POOL_KERNEL // 2
        ).transpose(1, 2)
        # Rows that are all padding give -inf everywhere; zero them rather than keep infinities.
        out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))
        return _masked(out, mask)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _masked(x, mask)


class Zero(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _conv_factory(name: str) -> Callable[[int], nn.Module]:
    kernel, dilation = CONV_SHAPES[name]
    return lambda hidden_size: Conv(hidden_size, kernel, dilation)


OPS: dict[str, Callable[[int], nn.Module]] = {
    **{name: _conv_factory(name) for name in CONV_SHAPES},
    "avg_pool_3": lambda hidden_size: AvgPool(),
    "max_pool_3": lambda hidden_size: MaxPool(),
    "identity": lambda hidden_size: Identity(),
    "zero": lambda hidden_size: Zero(),
}


def build_op(name: str, hidden_size: int) -> nn.Module:
    """Build the primitive called ``name`` for width ``hidden_size``."""
    if name not in OPS:
        raise ValueError(f"primitive must be one of {list(PRIMITIVES)}, got {name!r}")
    return OPS[name](hidden_size)
