"""The BERT-style student's shape, picked by batch-1 latency rather than parameters.

Parameters say little about speed here: the students' parameters are mostly their embedding
table, which a lookup reads a few rows of. What a student is sold on is its latency, so the
transformer control is the candidate shape (layers x width) whose batch-1 latency is closest to
the searched student's, all timed in this process with one torch thread at the latency sequence
length (the headline setting of the benchmark's speedups).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from orchestrator.method.latency import median_latency_ms, student_inputs, teacher_inputs

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class BertShape:
    layers: int
    width: int
    heads: int

    @property
    def label(self) -> str:
        return f"{self.layers}x{self.width}"


def candidate_shapes(layers: Sequence[int], widths: Sequence[int], heads: int) -> list[BertShape]:
    """Every (layers, width) pair, smallest first: ties in ``pick_by_latency`` go to the
    earlier, cheaper shape."""
    return [BertShape(n, w, heads) for w in sorted(set(widths)) for n in sorted(set(layers))]


def pick_by_latency(
    target_ms: float, candidates: Sequence[T], time_ms: Callable[[T], float]
) -> tuple[T, list[float]]:
    """The candidate whose ``time_ms`` is closest to ``target_ms`` (the first one on a tie),
    and every candidate's time in ``candidates`` order."""
    if not candidates:
        raise ValueError("no candidate shapes to pick from")
    timings = [float(time_ms(candidate)) for candidate in candidates]
    best = min(range(len(candidates)), key=lambda i: abs(timings[i] - target_ms))
    return candidates[best], timings


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bert_config(shape: BertShape, *, vocab_size: int, max_positions: int, num_labels: int):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=shape.width,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=4 * shape.width,  # BERT's ratio
        max_position_embeddings=max_positions,
        num_labels=num_labels,
    )


def latency_matched_shape(
    student: torch.nn.Module,
    shapes: Sequence[BertShape],
    *,
    vocab_size: int,
    input_vocab: int,
    max_positions: int,
    num_labels: int,
    seq_len: int,
    repeats: int,
    pair: bool,
) -> tuple[BertShape, dict[str, Any]]:
    """Times ``student`` and one randomly initialised BERT per shape at batch 1, one thread,
    ``seq_len`` random token ids below ``input_vocab`` (the inputs ``compare_latency`` uses);
    returns the closest shape and a record of every timing. Candidates are built one at a time
    to keep memory flat."""
    from transformers import BertForSequenceClassification

    params: dict[BertShape, int] = {}

    def time_shape(shape: BertShape) -> float:
        config = bert_config(
            shape, vocab_size=vocab_size, max_positions=max_positions, num_labels=num_labels
        )
        model = BertForSequenceClassification(config).eval()
        params[shape] = sum(p.numel() for p in model.parameters())
        inputs = teacher_inputs(1, seq_len, input_vocab)
        return median_latency_ms(lambda: model(**inputs), repeats=repeats)

    with torch_threads(1):
        student.eval()
        args = student_inputs(1, seq_len, input_vocab, pair=pair)
        target = median_latency_ms(lambda: student(*args), repeats=repeats)
        chosen, timings = pick_by_latency(target, shapes, time_shape)
    record = {
        "by": f"batch-1 latency, 1 torch thread, sequence {seq_len}, median of {repeats}",
        "target_ms": target,
        "chosen": chosen.label,
        "candidates": [
            {**dataclasses.asdict(shape), "params": params[shape], "latency_b1_ms": ms}
            for shape, ms in zip(shapes, timings)
        ],
    }
    return chosen, record
