"""Gumbel-softmax relaxation with a straight-through hard sample, and the temperature schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def gumbel_softmax(
    logits: torch.Tensor,
    temperature: float,
    *,
    hard: bool = True,
    noise: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Relaxed one-hot sample over the last axis.

    y = softmax((log_softmax(logits) + g) / temperature), g ~ Gumbel(0, 1) (method notes 2.1).
    With ``hard`` the forward value is one_hot(argmax y) and the gradient is that of y
    (straight-through), as in all three AdaBERT code bases. ``noise=False`` gives the
    deterministic relaxation used at evaluation time.
    """
    # Written as 'not > 0' so NaN is rejected too (every comparison with NaN is False).
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    scores = torch.log_softmax(logits, dim=-1)
    if noise:
        uniform = torch.rand(
            scores.shape, generator=generator, dtype=scores.dtype, device=scores.device
        )
        # Clamp keeps log(-log(u)) finite at u = 0 or 1.
        uniform = uniform.clamp(1e-10, 1.0 - 1e-10)
        scores = scores - torch.log(-torch.log(uniform))
    soft = torch.softmax(scores / temperature, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft


@dataclass(frozen=True)
class TemperatureSchedule:
    """Gumbel temperature per search epoch.

    ``decay="to_minimum"`` (default, the notes' recommendation): exponential anneal from
    ``initial`` that reaches ``minimum`` at ``total_epochs`` and stays there.
    ``decay="rate"`` ([A-PT]): max(initial * exp(-rate * epoch), minimum).
    ``decay="constant"``: always ``initial``.
    """

    initial: float = 1.0
    minimum: float = 0.2
    decay: str = "to_minimum"
    rate: float = 0.02
    total_epochs: int = 80

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"initial temperature must be > 0, got {self.initial!r}")
        if not self.minimum > 0:
            raise ValueError(f"minimum temperature must be > 0, got {self.minimum!r}")
        if not self.minimum <= self.initial:
            raise ValueError(
                f"minimum temperature must be <= initial ({self.initial!r}), got {self.minimum!r}"
            )
        if self.decay not in ("to_minimum", "rate", "constant"):
            raise ValueError(
                f"decay must be 'to_minimum', 'rate' or 'constant', got {self.decay!r}"
            )
        if not self.rate >= 0:
            raise ValueError(f"rate must be >= 0, got {self.rate!r}")
        if self.total_epochs < 1:
            raise ValueError(f"total_epochs must be >= 1, got {self.total_epochs!r}")

    def __call__(self, epoch: float) -> float:
        if not epoch >= 0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        if self.decay == "constant":
            return self.initial
        if self.decay == "rate":
            return max(self.initial * math.exp(-self.rate * epoch), self.minimum)
        progress = min(epoch / self.total_epochs, 1.0)
        return self.initial * (self.minimum / self.initial) ** progress
