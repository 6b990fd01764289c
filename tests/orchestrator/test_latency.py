"""compare_latency: every model timed on its own input length, all of them in turn."""

from __future__ import annotations

import torch

from orchestrator.method.latency import compare_latency, interleaved_latency_ms


class Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()
        self.one_sentence: set[bool] = set()

    def forward(self, *args, **kwargs):
        first = args[0] if args else kwargs["input_ids"]
        self.shapes.add(tuple(first.shape))
        if args:
            self.one_sentence.add(args[2] is args[0] and args[3] is args[1])
        return first


def test_a_model_in_seq_lens_gets_its_own_length_and_the_others_seq_len():
    student, half, teacher = Recorder(), Recorder(), Recorder()
    models = {
        "full": (student, "student"), "half": (half, "pair_student"), "t": (teacher, "teacher"),
    }  # fmt: skip
    timed = compare_latency(
        models, vocab_size=50, seq_len=8, batch_sizes=(1, 3), repeats=1, seq_lens={"half": 4}
    )
    assert student.shapes == {(1, 8), (3, 8)}
    assert half.shapes == {(1, 4), (3, 4)}
    assert teacher.shapes == {(1, 8), (3, 8)}
    assert set(timed) == {f"latency/{n}_b{b}_ms" for n in models for b in (1, 3)}


def test_a_single_sentence_student_gets_one_sentence_and_a_pair_student_two():
    single, pair = Recorder(), Recorder()
    models = {"single": (single, "student"), "pair": (pair, "pair_student")}
    compare_latency(models, vocab_size=50, seq_len=8, batch_sizes=(2,), repeats=1)
    assert single.one_sentence == {True}  # as inference passes it: encoded once
    assert pair.one_sentence == {False}


def test_models_are_timed_in_turn_round_after_round():
    """A burst of other work must land on every model alike: after the warm-up, one forward of
    each per round, not all of one model's repeats and then the next's."""
    calls = []
    forwards = {name: (lambda n=name: calls.append(n)) for name in ("student", "teacher")}
    timed = interleaved_latency_ms(forwards, repeats=3, warmup=1)
    assert calls == ["student", "teacher"] + ["student", "teacher"] * 3
    assert set(timed) == {"student", "teacher"} and all(ms >= 0 for ms in timed.values())
