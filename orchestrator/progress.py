"""Progress reporting: the per-epoch report every phase emits, and a terminal progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from searchspace.genotype import Genotype

T = TypeVar("T")


@dataclass
class EpochReport:
    """What a phase tells the outside world after each epoch (forwarded to Ray Tune / MLflow)."""

    phase: str  # "teacher", "probes", "search" or "retrain"
    epoch: int  # 1-based
    num_epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    genotype: Genotype | None = None


EpochCallback = Callable[[EpochReport], None]


def progress_bar(items: Iterable[T], *, desc: str, total: int | None, enabled: bool) -> Iterator[T]:
    """tqdm on a terminal, the bare iterable elsewhere (Ray workers, CI logs)."""
    if not enabled or not sys.stderr.isatty():
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
