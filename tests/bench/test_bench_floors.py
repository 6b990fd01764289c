"""The bag-of-embeddings floor against a hand computation, and the majority baseline."""

from __future__ import annotations

import pytest
import torch
from bench_floors import BagOfEmbeddings, bag_of_embeddings, majority_baseline

from orchestrator.method.pipeline import projected_tables
from orchestrator.tasks.registry import get_task
from searchspace.config import SupernetConfig

CONFIG = SupernetConfig(vocab_size=11, max_positions=6, hidden_size=4, num_labels=3)


def _randomised(model: BagOfEmbeddings) -> BagOfEmbeddings:
    """Non-trivial LayerNorm and classifier weights, dropout off."""
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    return model.eval()


def _by_hand(model: BagOfEmbeddings, ids: list[int]) -> torch.Tensor:
    """Mean over the given (real) tokens of LayerNorm(word + position), one token at a time."""
    emb = model.embedding
    states = []
    for position, token in enumerate(ids):
        x = emb.word_embeddings.weight[token] + emb.position_embeddings.weight[position]
        centred = x - x.mean()
        normed = centred / torch.sqrt((centred**2).mean() + emb.norm.eps)
        states.append(normed * emb.norm.weight + emb.norm.bias)
    return sum(states) / len(states)


def _linear(model: BagOfEmbeddings, features: torch.Tensor) -> torch.Tensor:
    return model.classifier.weight @ features + model.classifier.bias


# Row 0: 3 real tokens then 2 pads (random ids, so a leak changes the result); row 1: 5 real.
IDS_A = torch.tensor([[2, 5, 7, 9, 4], [3, 3, 8, 1, 10]])
MASK_A = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
IDS_B = torch.tensor([[6, 2, 9, 9, 9], [4, 7, 0, 0, 0]])
MASK_B = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])


def _real(ids: torch.Tensor, mask: torch.Tensor, row: int) -> list[int]:
    return ids[row][mask[row].bool()].tolist()


def test_single_sentence_is_masked_mean_then_linear():
    model = _randomised(BagOfEmbeddings(CONFIG, pair=False))
    with torch.no_grad():
        logits = model(IDS_A, MASK_A, IDS_B, MASK_B)  # b is ignored: single tasks copy a
        expected = torch.stack(
            [_linear(model, _by_hand(model, _real(IDS_A, MASK_A, row))) for row in range(2)]
        )
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, expected)


def test_pair_classifies_u_v_difference_and_product():
    model = _randomised(BagOfEmbeddings(CONFIG, pair=True))
    assert model.classifier.in_features == 4 * CONFIG.hidden_size
    with torch.no_grad():
        logits = model(IDS_A, MASK_A, IDS_B, MASK_B)
        rows = []
        for row in range(2):
            u = _by_hand(model, _real(IDS_A, MASK_A, row))
            v = _by_hand(model, _real(IDS_B, MASK_B, row))
            rows.append(_linear(model, torch.cat([u, v, (u - v).abs(), u * v])))
    torch.testing.assert_close(logits, torch.stack(rows))


def test_padding_changes_nothing():
    model = _randomised(BagOfEmbeddings(CONFIG, pair=True))
    with torch.no_grad():
        short = model(IDS_A[:1, :3], MASK_A[:1, :3], IDS_B[:1, :4], MASK_B[:1, :4])
        padded = model(IDS_A[:1], MASK_A[:1], IDS_B[:1], MASK_B[:1])
    torch.testing.assert_close(short, padded)


def test_starts_from_the_projected_teacher_tables():
    config = SupernetConfig(
        vocab_size=11, max_positions=6, hidden_size=4, num_labels=2, teacher_embedding_size=8
    )
    torch.manual_seed(0)
    tables = (torch.randn(11, 8), torch.randn(6, 8))
    model = bag_of_embeddings(config, tables, pair=False)
    word, position = projected_tables(config, tables)
    torch.testing.assert_close(model.embedding.word_embeddings.weight, word)
    torch.testing.assert_close(model.embedding.position_embeddings.weight, position)
    # Low-dimensional tables only, as a derived student stores them.
    assert model.embedding.word_embeddings.weight.shape == (11, 4)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.flops(128) == 2 * 4 * 2


def test_majority_baseline_predicts_the_training_majority():
    mrpc = get_task("mrpc")  # F1 of class 1
    train = torch.tensor([1, 1, 0, 1])
    dev = torch.tensor([1, 0, 1, 1])
    result = majority_baseline(mrpc, train, dev)
    assert result["label"] == 1
    assert result["train_share"] == pytest.approx(0.75)
    assert result["metrics"]["accuracy"] == pytest.approx(0.75)
    assert result["score"] == pytest.approx(2 * 0.75 / 1.75)  # precision 0.75, recall 1


def test_majority_baseline_has_no_score_for_regression():
    result = majority_baseline(get_task("stsb"), torch.rand(5), torch.rand(4))
    assert result["score"] is None and result["label"] is None
