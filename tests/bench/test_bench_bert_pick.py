"""The BERT-style control's shape: the candidate closest in batch-1 latency."""

from __future__ import annotations

import bench_bert_pick
import pytest
import torch
from bench_bert_pick import BertShape, candidate_shapes, latency_matched_shape, pick_by_latency


def test_candidates_cover_every_pair_smallest_width_first():
    shapes = candidate_shapes([2, 1, 2], [128, 64], heads=2)
    assert [s.label for s in shapes] == ["1x64", "2x64", "1x128", "2x128"]
    assert {s.heads for s in shapes} == {2}


def test_picks_the_closest_latency_on_a_fake_clock():
    shapes = candidate_shapes([1, 2, 4], [64, 128], heads=2)
    fake_ms = {"1x64": 0.6, "2x64": 1.1, "4x64": 2.0, "1x128": 1.3, "2x128": 2.4, "4x128": 4.6}
    chosen, timings = pick_by_latency(1.7, shapes, lambda s: fake_ms[s.label])
    assert chosen.label == "4x64"  # 0.3 above the target; the next closest, 1x128, is 0.4 below
    assert timings == [fake_ms[s.label] for s in shapes]


def test_closest_wins_even_when_below_the_target():
    shapes = [BertShape(1, 64, 2), BertShape(2, 64, 2), BertShape(3, 64, 2)]
    fake_ms = {1: 1.0, 2: 1.9, 3: 2.3}
    chosen, _ = pick_by_latency(2.0, shapes, lambda s: fake_ms[s.layers])
    assert chosen.layers == 2


def test_a_tie_goes_to_the_earlier_cheaper_shape():
    shapes = [BertShape(1, 64, 2), BertShape(2, 64, 2)]
    chosen, _ = pick_by_latency(1.5, shapes, lambda s: {1: 1.0, 2: 2.0}[s.layers])
    assert chosen.layers == 1


def test_no_candidates_is_an_error():
    with pytest.raises(ValueError):
        pick_by_latency(1.0, [], lambda s: 0.0)


class _Student(torch.nn.Module):
    def forward(self, ids_a, mask_a, ids_b, mask_b):
        return ids_a.float().mean(dim=1, keepdim=True)


def test_latency_matched_shape_times_student_then_each_candidate(monkeypatch):
    """Real tiny BERTs, a fake clock: the first timing is the student's, then one per shape
    in order; the record holds every candidate and the pick."""
    clock = iter([3.0, 1.0, 2.8, 5.0])  # student, then 1x8, 2x8, 1x16
    seen_threads = []

    def fake_latency(forward, *, repeats, warmup=2):
        forward()  # the model must run on the inputs it is given
        seen_threads.append(torch.get_num_threads())
        return next(clock)

    monkeypatch.setattr(bench_bert_pick, "median_latency_ms", fake_latency)
    shapes = candidate_shapes([1, 2], [8], heads=2) + [BertShape(1, 16, 2)]
    before = torch.get_num_threads()
    chosen, record = latency_matched_shape(
        _Student(),
        shapes,
        vocab_size=20,
        input_vocab=20,
        max_positions=16,
        num_labels=2,
        seq_len=16,
        repeats=3,
        pair=False,
    )
    assert chosen == BertShape(2, 8, 2)
    assert record["target_ms"] == 3.0 and record["chosen"] == "2x8"
    assert [c["latency_b1_ms"] for c in record["candidates"]] == [1.0, 2.8, 5.0]
    assert [(c["layers"], c["width"]) for c in record["candidates"]] == [(1, 8), (2, 8), (1, 16)]
    assert all(c["params"] > 0 for c in record["candidates"])
    assert seen_threads == [1, 1, 1, 1]  # timed with one torch thread
    assert torch.get_num_threads() == before  # and restored
