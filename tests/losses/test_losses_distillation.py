"""KD terms against numbers computed by hand (plain Python floats, math.exp / math.log)."""

from __future__ import annotations

import math

import pytest
import torch

from losses import logit_kd, probe_kd, soft_cross_entropy, task_loss
from losses.distillation import probe_layer_weights, teacher_layer


def _softmax(row: list[float], t: float = 1.0) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def _log_softmax(row: list[float], t: float = 1.0) -> list[float]:
    log_z = math.log(sum(math.exp(v / t) for v in row))
    return [v / t - log_z for v in row]


def _soft_ce(student: list[list[float]], teacher: list[list[float]], t: float) -> float:
    rows = [
        -sum(p * q for p, q in zip(_softmax(tr, t), _log_softmax(sr, t)))
        for sr, tr in zip(student, teacher)
    ]
    return sum(rows) / len(rows)


def _ce(logits: list[list[float]], labels: list[int]) -> float:
    return sum(-_log_softmax(row)[y] for row, y in zip(logits, labels)) / len(labels)


# ---------------------------------------------------------------------------------------------
# soft_cross_entropy / logit_kd / task_loss


def test_soft_cross_entropy_hand_numbers():
    student = [[1.0, 2.0], [0.0, 0.0]]
    teacher = [[0.0, 1.0], [2.0, 0.0]]
    e = math.e
    # Row 1: p = (1/(1+e), e/(1+e)), log q = (1 - log(e+e^2), 2 - log(e+e^2)).
    log_z = math.log(e + e**2)
    row1 = -(1 / (1 + e) * (1 - log_z) + e / (1 + e) * (2 - log_z))
    # Row 2: the student is uniform, so the cross-entropy is log 2 whatever the teacher says.
    row2 = math.log(2)
    expected = (row1 + row2) / 2
    assert expected == pytest.approx(0.6377, abs=1e-4)  # 0.5 * (0.5822 + 0.6931)
    got = soft_cross_entropy(torch.tensor(student), torch.tensor(teacher), 1.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert got.item() == pytest.approx(_soft_ce(student, teacher, 1.0), rel=1e-6)


def test_soft_cross_entropy_temperature_scaling():
    student = [[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]
    teacher = [[0.0, 1.0, 0.0], [2.0, 0.0, -2.0]]
    at_one = soft_cross_entropy(torch.tensor(student), torch.tensor(teacher), 1.0).item()
    at_two = soft_cross_entropy(torch.tensor(student), torch.tensor(teacher), 2.0).item()
    assert at_two == pytest.approx(_soft_ce(student, teacher, 2.0), rel=1e-6)
    # T = 2 is the same as T = 1 on halved logits, and differs from T = 1.
    halved = [[v / 2 for v in r] for r in student], [[v / 2 for v in r] for r in teacher]
    assert at_two == pytest.approx(_soft_ce(*halved, 1.0), rel=1e-6)
    assert at_two != pytest.approx(at_one, rel=1e-3)


def test_soft_cross_entropy_minimum_is_teacher_entropy():
    teacher = torch.tensor([[0.3, -0.2, 1.0]])
    p = _softmax([0.3, -0.2, 1.0])
    entropy = -sum(x * math.log(x) for x in p)
    assert soft_cross_entropy(teacher, teacher, 1.0).item() == pytest.approx(entropy, rel=1e-6)
    assert soft_cross_entropy(teacher + 5.0, teacher, 1.0).item() == pytest.approx(
        entropy, rel=1e-5
    )


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_soft_cross_entropy_rejects_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature"):
        soft_cross_entropy(torch.zeros(1, 2), torch.zeros(1, 2), t)


def test_logit_kd_classification_is_soft_cross_entropy():
    student, teacher = [[1.0, -1.0], [0.2, 0.4]], [[0.0, 2.0], [1.0, 1.0]]
    got = logit_kd(torch.tensor(student), torch.tensor(teacher), 1.5).item()
    assert got == pytest.approx(_soft_ce(student, teacher, 1.5), rel=1e-6)


def test_logit_kd_regression_is_mse():
    student = torch.tensor([[0.5], [1.0], [-2.0]])
    teacher = torch.tensor([[1.5], [-1.0], [-2.0]])
    # ((0.5-1.5)^2 + (1-(-1))^2 + 0) / 3 = 5/3; the temperature does not enter.
    got = logit_kd(student, teacher, 4.0, is_regression=True)
    assert got.item() == pytest.approx(5 / 3, rel=1e-6)
    assert logit_kd(student, teacher.squeeze(-1), 1.0, is_regression=True).item() == (
        pytest.approx(5 / 3, rel=1e-6)
    )


def test_task_loss_hand_numbers():
    logits = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    # Row 1, label 1: -(2 - log(e + e^2 + 1)); row 2, label 0: log 3.
    expected = (-(2 - math.log(math.e + math.e**2 + 1)) + math.log(3)) / 2
    got = task_loss(torch.tensor(logits), torch.tensor([1, 0]), is_regression=False)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    reg = task_loss(torch.tensor([[0.5], [2.0]]), torch.tensor([1.0, 0.0]), is_regression=True)
    assert reg.item() == pytest.approx((0.25 + 4.0) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# teacher_layer: student cell m of k <- teacher layer j(m)


def _table(k: int, m_teacher: int, mapping: str, max_cells: int | None = None) -> list[int]:
    return [
        teacher_layer(m, k, m_teacher, mapping=mapping, max_cells=max_cells)
        for m in range(1, k + 1)
    ]


def test_teacher_layer_ceil_tables():
    # ceil(m * M / k)
    assert _table(8, 6, "ceil") == [1, 2, 3, 3, 4, 5, 6, 6]
    assert _table(4, 12, "ceil") == [3, 6, 9, 12]
    assert _table(5, 12, "ceil") == [3, 5, 8, 10, 12]
    assert _table(4, 6, "ceil") == [2, 3, 5, 6]
    assert _table(1, 6, "ceil") == [6]


def test_teacher_layer_floor_matches_easytransfer():
    # EasyTransfer modeling_adabert.py: delta_l = 12 // (1 + l); probe m * delta_l for m = 0..l.
    # For a 6-layer teacher and 8 cells delta is 0: every cell meets the embedding probe.
    assert _table(8, 6, "floor") == [0] * 8
    assert _table(4, 12, "floor") == [2, 4, 6, 8]
    assert _table(8, 12, "floor") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _table(3, 6, "floor") == [1, 2, 3]


def test_teacher_layer_kmax_tables():
    # floor(M * m / K_max), independent of the sampled k.
    assert _table(8, 6, "kmax", 8) == [0, 1, 2, 3, 3, 4, 5, 6]
    assert _table(4, 12, "kmax", 8) == [1, 3, 4, 6]
    assert _table(4, 12, "kmax", 4) == [3, 6, 9, 12]
    assert _table(2, 6, "kmax", 8) == _table(8, 6, "kmax", 8)[:2]


def test_teacher_layer_invalid_arguments():
    with pytest.raises(ValueError, match="student_layer"):
        teacher_layer(0, 4, 12, mapping="ceil")
    with pytest.raises(ValueError, match="student_layer"):
        teacher_layer(5, 4, 12, mapping="ceil")
    with pytest.raises(ValueError, match="max_cells"):
        teacher_layer(1, 4, 12, mapping="kmax")
    with pytest.raises(ValueError, match="mapping"):
        teacher_layer(1, 4, 12, mapping="round")


# ---------------------------------------------------------------------------------------------
# probe_layer_weights and probe_kd


# Teacher probes: batch 2, M + 1 = 5 layers (0 = embeddings), 2 classes.
TEACHER_PROBES = [
    [[0.0, 0.0], [0.5, -0.5], [1.0, 0.0], [0.0, 2.0], [3.0, -1.0]],
    [[0.1, 0.2], [-0.3, 0.3], [0.0, 1.0], [0.5, 1.5], [-2.0, 2.0]],
]
LABELS = [0, 1]
# Student heads per depth: K_max = 3, batch 2, 2 classes.
STUDENT = [
    [[0.2, -0.1], [0.0, 0.4]],
    [[1.0, 0.5], [-0.5, 0.7]],
    [[-0.3, 0.9], [1.2, -0.8]],
]

MAPPINGS = {  # M = 4, K_max = 3, by hand
    "ceil": {1: [4], 2: [2, 4], 3: [2, 3, 4]},  # ceil(4m/k)
    "kmax": {1: [1], 2: [1, 2], 3: [1, 2, 4]},  # floor(4m/3)
}


def _column(j: int) -> list[list[float]]:
    return [row[j] for row in TEACHER_PROBES]


def _hand_layer_weights(layers: list[int], weighting: str) -> list[float]:
    if weighting == "uniform":
        return [1 / len(layers)] * len(layers)
    losses = [_ce(_column(j), LABELS) for j in layers]
    return _softmax([-x for x in losses])


def _hand_probe_kd(depth_weights, temperature, weighting, mapping) -> float:
    total = 0.0
    for k in (1, 2, 3):
        layers = MAPPINGS[mapping][k]
        weights = _hand_layer_weights(layers, weighting)
        kd_k = sum(
            w * _soft_ce(STUDENT[m - 1], _column(j), temperature)
            for m, (j, w) in enumerate(zip(layers, weights), start=1)
        )
        total += depth_weights[k - 1] * kd_k
    return total


def test_probe_layer_weights_are_softmax_of_negative_probe_ce():
    ce2 = (-_log_softmax([1.0, 0.0])[0] - _log_softmax([0.0, 1.0])[1]) / 2
    ce4 = (-_log_softmax([3.0, -1.0])[0] - _log_softmax([-2.0, 2.0])[1]) / 2
    expected = [math.exp(-ce2) / (math.exp(-ce2) + math.exp(-ce4))]
    expected.append(1 - expected[0])
    got = probe_layer_weights(
        torch.tensor(TEACHER_PROBES),
        torch.tensor(LABELS),
        [2, 4],
        weighting="attentive",
        is_regression=False,
    )
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert got[1] > got[0]  # probe 4 is the more confident one on the gold labels


def test_probe_layer_weights_uniform():
    got = probe_layer_weights(
        torch.tensor(TEACHER_PROBES),
        torch.tensor(LABELS),
        [1, 2, 4],
        weighting="uniform",
        is_regression=False,
    )
    assert got.tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="weighting"):
        probe_layer_weights(
            torch.tensor(TEACHER_PROBES),
            torch.tensor(LABELS),
            [1],
            weighting="learned",
            is_regression=False,
        )


def _probe_kd(depth_weights, temperature, weighting, mapping) -> float:
    return probe_kd(
        torch.tensor(STUDENT),
        torch.tensor(TEACHER_PROBES),
        torch.tensor(LABELS),
        torch.tensor(depth_weights),
        temperature=temperature,
        weighting=weighting,
        mapping=mapping,
    ).item()


@pytest.mark.parametrize("mapping", ["ceil", "kmax"])
@pytest.mark.parametrize("weighting", ["attentive", "uniform"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_probe_kd_matches_hand_loop(mapping, weighting, temperature):
    for depth in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]):
        expected = _hand_probe_kd(depth, temperature, weighting, mapping)
        got = _probe_kd(depth, temperature, weighting, mapping)
        assert got == pytest.approx(expected, rel=1e-5), depth


def test_probe_kd_one_hot_depth_selects_k():
    values = [_probe_kd(d, 1.0, "attentive", "ceil") for d in ([1, 0, 0], [0, 1, 0], [0, 0, 1])]
    assert len({round(v, 6) for v in values}) == 3  # each k gives its own value
    # k = 2 by hand: layers [2, 4], student heads 1 and 2.
    w = _hand_layer_weights([2, 4], "attentive")
    k2 = w[0] * _soft_ce(STUDENT[0], _column(2), 1.0) + w[1] * _soft_ce(STUDENT[1], _column(4), 1.0)
    assert values[1] == pytest.approx(k2, rel=1e-5)
    # Linear in the depth weights.
    mixed = _probe_kd([0.2, 0.3, 0.5], 1.0, "attentive", "ceil")
    assert mixed == pytest.approx(0.2 * values[0] + 0.3 * values[1] + 0.5 * values[2], rel=1e-5)


def test_probe_kd_gradient_reaches_depth_weights_and_students():
    student = torch.tensor(STUDENT, requires_grad=True)
    depth = torch.tensor([0.0, 1.0, 0.0], requires_grad=True)
    loss = probe_kd(
        student,
        torch.tensor(TEACHER_PROBES),
        torch.tensor(LABELS),
        depth,
        temperature=1.0,
    )
    loss.backward()
    assert torch.all(depth.grad != 0)
    assert student.grad[0].abs().sum() > 0 and student.grad[1].abs().sum() > 0
    assert student.grad[2].abs().sum() == 0  # depth 3 has weight 0
