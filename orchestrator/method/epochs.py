"""The training loop shared by the search and the retrain: capped batches, summed step terms, and
the state a loader needs to replay the same batch order after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch.utils.data import DataLoader

from orchestrator.progress import progress_bar
from orchestrator.tasks.batches import Batch, trim_padding

StepFunction = Callable[[Batch], dict[str, float]]


def steps_per_epoch(loader: DataLoader, limit: int | None) -> int:
    """Batches one epoch takes: the whole loader, or ``limit`` when that is smaller."""
    return len(loader) if not limit else min(len(loader), limit)


def capped_batches(loader: DataLoader, limit: int | None) -> Iterator[Batch]:
    """At most ``limit`` batches of ``loader`` (all when None), padding trimmed."""
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield trim_padding(batch)


def train_epoch(
    loader: DataLoader,
    step: StepFunction,
    *,
    limit: int | None,
    desc: str,
    progress: bool,
) -> tuple[dict[str, float], int]:
    """Run ``step`` on every batch of one epoch; returns (summed step terms, number of steps)."""
    sums: dict[str, float] = {}
    steps = 0
    batches: Iterable[Batch] = progress_bar(
        capped_batches(loader, limit),
        desc=desc,
        total=steps_per_epoch(loader, limit),
        enabled=progress,
    )
    for batch in batches:
        for name, value in step(batch).items():
            sums[name] = sums.get(name, 0.0) + value
        steps += 1
    return sums, steps


def means(sums: dict[str, float], steps: int, prefix: str) -> dict[str, float]:
    return {f"{prefix}{name}": value / max(1, steps) for name, value in sums.items()}


def optimiser_step(loss: torch.Tensor, optimisers, params, clip: float) -> None:
    for optimiser in optimisers:
        optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    for optimiser in optimisers:
        optimiser.step()


def loader_state(loader: DataLoader | None) -> torch.Tensor | None:
    """The shuffling generator's state: restoring it replays the same batch order."""
    if loader is None or loader.generator is None:
        return None
    return loader.generator.get_state()


def restore_loader(loader: DataLoader | None, state: torch.Tensor | None) -> None:
    if loader is not None and loader.generator is not None and state is not None:
        loader.generator.set_state(state)


def run_phase(phase, on_epoch=None) -> None:
    """Every remaining epoch of a search or retrain phase, each reported to ``on_epoch``."""
    while not phase.done:
        report = phase.run_epoch()
        if on_epoch is not None:
            on_epoch(report)
