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
    # Which of several runs of the phase this is, e.g. "candidate 2/3" (derive-time candidates).
    part: str = ""


EpochCallback = Callable[[EpochReport], None]


def progress_bar(items: Iterable[T], *, desc: str, total: int | None, enabled: bool) -> Iterator[T]:
    """tqdm on a terminal, the bare iterable elsewhere (Ray workers, CI logs)."""
    if not enabled or not sys.stderr.isatty():
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)


# Keys worth a place on the one-line epoch summary, in this order, when a report has them.
_CONSOLE_KEYS = (
    "teacher/train_loss",
    "train/loss_total",
    "train/loss_ce",
    "train/loss_kd",
    "train/loss_efficiency",
    "retrain/loss_total",
    "arch/entropy",
    "arch/temperature",
)


# The constant check behind every dev evaluation (``evaluate``): one flag is printed instead.
_NOT_PRINTED = frozenset(
    {"teacher/train_loss", "dev/majority_share", "dev/constant_baseline", "dev/one_class",
     "dev/degenerate"}
)  # fmt: skip


def console_reporter(stream=None) -> EpochCallback:
    """An EpochCallback printing one line per epoch: losses, dev metrics and the genotype."""

    def report(event: EpochReport) -> None:
        out = stream or sys.stderr
        part = f", {event.part}" if event.part else ""
        parts = [f"[{event.phase} {event.epoch}/{event.num_epochs}{part}]"]
        for key in _CONSOLE_KEYS:
            if key in event.metrics:
                parts.append(f"{key.split('/')[-1]} {event.metrics[key]:.4g}")
        for key, value in event.metrics.items():
            if key.startswith(("dev/", "teacher/")) and key not in _NOT_PRINTED:
                parts.append(f"{key} {value:.4f}")
        if event.metrics.get("dev/degenerate"):
            parts.append("(no better than a constant)")
        if event.genotype is not None:
            parts.append(f"| {event.genotype.summary()}")
        print(" ".join(parts), file=out, flush=True)

    return report
