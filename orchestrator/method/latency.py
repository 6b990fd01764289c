"""CPU latency of a model's forward pass, measured in this process (median of repeats)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_latency_ms(forward: Callable[[], object], *, repeats: int, warmup: int = 2) -> float:
    return interleaved_latency_ms({"forward": forward}, repeats=repeats, warmup=warmup)["forward"]


def student_inputs(batch_size: int, seq_len: int, vocab_size: int, *, pair: bool, seed: int = 0):
    """Full-length random inputs: latency is measured at seq_len with no padding to trim. A
    single sentence is passed as the same tensors twice, as inference passes it (the student
    encodes it once); a pair as two sentences of ``seq_len``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (batch_size, seq_len), generator=generator)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    if not pair:
        return ids, mask, ids, mask
    other = torch.randint(1, vocab_size, (batch_size, seq_len), generator=generator)
    return ids, mask, other, mask.clone()


def teacher_inputs(batch_size: int, seq_len: int, vocab_size: int, *, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, vocab_size, (batch_size, seq_len), generator=generator),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
    }


def add_equal_text(models: dict[str, tuple[torch.nn.Module, str]], name: str, seq_len: int):
    """Times pair student ``name`` a second time as ``<name>_equal_text``, each sentence at
    ``seq_len // 2``: as much text as a transformer's joint ``seq_len``. Returns the
    ``seq_lens`` argument of ``compare_latency`` for it."""
    models[f"{name}_equal_text"] = models[name]
    return {f"{name}_equal_text": seq_len // 2}


def compare_latency(
    models: dict[str, tuple[torch.nn.Module, str]],
    *,
    vocab_size: int,
    seq_len: int,
    batch_sizes: tuple[int, ...] = (1, 32),
    repeats: int = 5,
    seq_lens: dict[str, int] | None = None,
) -> dict[str, float]:
    """Latency of several models side by side: per batch size, every model is warmed up, then
    timed one forward at a time, round after round, and each reports its median. A burst of
    other work on the machine then lands on all of them alike; timed one after another, a
    1 ms student's few repeats could fall in such a burst while the teacher's did not (the
    demo's champion once timed 7.8x its teacher where other runs gave 20-33x).

    ``models`` maps a name to (model, kind): kind "student" (one sentence), "pair_student"
    (two sentences) or "teacher" (HF-style kwargs).
    ``seq_lens`` gives some of them another length than ``seq_len`` (for a pair student, the
    length of each sentence). Returns ``{"latency/<name>_b<B>_ms": ms}``.
    """
    results = {}
    for batch_size in batch_sizes:
        forwards = {}
        for name, (model, kind) in models.items():
            model.eval()
            length = (seq_lens or {}).get(name, seq_len)
            if kind in ("student", "pair_student"):
                args = student_inputs(batch_size, length, vocab_size, pair=kind == "pair_student")
                forwards[name] = lambda m=model, a=args: m(*a)  # noqa: E731
            else:
                kwargs = teacher_inputs(batch_size, length, vocab_size)
                forwards[name] = lambda m=model, k=kwargs: m(**k)  # noqa: E731
        for name, timing in interleaved_latency_ms(forwards, repeats=repeats).items():
            results[f"latency/{name}_b{batch_size}_ms"] = timing
    return results


@torch.inference_mode()
def interleaved_latency_ms(
    forwards: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median milliseconds of each forward over ``repeats`` rounds that time every forward
    once, in turn."""
    for forward in forwards.values():
        for _ in range(warmup):
            forward()
    timings: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(repeats):
        for name, forward in forwards.items():
            start = time.perf_counter()
            forward()
            timings[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in timings.items()}
