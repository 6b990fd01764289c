"""Gumbel straight-through sampling and the temperature schedule (method notes 2.1, 2.2)."""

from __future__ import annotations

import math

import pytest
import torch

from searchspace import TemperatureSchedule, gumbel_softmax

# ---------------------------------------------------------------------------------------------
# gumbel_softmax


def _manual_soft(logits: torch.Tensor, temperature: float, seed: int) -> torch.Tensor:
    """softmax((log_softmax(l) - log(-log u)) / tau), u from a generator seeded like the op's."""
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(seed))
    g = -torch.log(-torch.log(u))
    return torch.softmax((torch.log_softmax(logits, dim=-1) + g) / temperature, dim=-1)


def test_hard_sample_is_exactly_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(9, 10)
    for seed in range(5):
        y = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(seed))
        assert y.shape == (9, 10)
        # Forward value exactly 0/1 (not merely close), one 1 per row.
        assert torch.all((y == 0) | (y == 1))
        assert torch.equal(y.sum(-1), torch.ones(9))


def test_hard_sample_picks_argmax_of_the_soft_sample():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.1], [1.5, 1.4, -0.2, 0.0]])
    hard = gumbel_softmax(logits, 0.5, generator=torch.Generator().manual_seed(3))
    soft = gumbel_softmax(logits, 0.5, hard=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))
    assert torch.equal(hard.argmax(-1), _manual_soft(logits, 0.5, 3).argmax(-1))


def test_straight_through_gradient_equals_soft_gradient():
    base = torch.tensor([[0.2, -0.5, 1.0, 0.3, -1.2], [0.0, 0.4, -0.3, 0.9, 0.1]])
    weights = torch.tensor([[1.0, -2.0, 0.5, 3.0, 0.7], [-1.0, 0.3, 2.0, -0.4, 1.1]])
    tau = 0.6

    logits = base.clone().requires_grad_(True)
    y = gumbel_softmax(logits, tau, generator=torch.Generator().manual_seed(11))
    (y * weights).sum().backward()

    manual_logits = base.clone().requires_grad_(True)
    soft = _manual_soft(manual_logits, tau, 11)
    (soft * weights).sum().backward()

    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0
    torch.testing.assert_close(logits.grad, manual_logits.grad, atol=1e-6, rtol=1e-5)
    # The forward value is the hard one, not the soft one.
    assert torch.equal(y.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 5).float())


def test_noise_false_hard_is_one_hot_argmax_of_logits():
    logits = torch.tensor([[0.1, 3.0, -1.0], [2.0, 1.9, 1.8], [-5.0, -4.0, -4.5]])
    y = gumbel_softmax(logits, 0.3, noise=False)
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.equal(y, expected)
    # Without noise the soft sample is a plain tempered softmax of the logits.
    soft = gumbel_softmax(logits, 0.3, noise=False, hard=False)
    torch.testing.assert_close(soft, torch.softmax(logits / 0.3, dim=-1))


@pytest.mark.parametrize("tau", [0.2, 1.0, 5.0])
def test_soft_sample_sums_to_one(tau):
    torch.manual_seed(1)
    logits = torch.randn(4, 7) * 3
    y = gumbel_softmax(logits, tau, hard=False, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(y.sum(-1), torch.ones(4))
    assert torch.all(y > 0)


@pytest.mark.parametrize("tau", [0.0, -0.5])
def test_non_positive_temperature_raises(tau):
    with pytest.raises(ValueError, match="temperature") as info:
        gumbel_softmax(torch.zeros(3), tau)
    assert repr(tau) in str(info.value)


def test_nan_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(torch.zeros(3), float("nan"))


def test_sample_matches_hand_computation():
    values = [1.0, 2.0, 0.5]
    tau = 0.5
    u = torch.rand(3, generator=torch.Generator().manual_seed(7)).tolist()
    # By hand: log_softmax(l) - log(-log(u)), divided by tau, softmax.
    log_z = math.log(sum(math.exp(v) for v in values))
    scores = [(v - log_z - math.log(-math.log(ui))) / tau for v, ui in zip(values, u)]
    exps = [math.exp(s) for s in scores]
    expected = [e / sum(exps) for e in exps]

    y = gumbel_softmax(
        torch.tensor(values), tau, hard=False, generator=torch.Generator().manual_seed(7)
    )
    torch.testing.assert_close(y, torch.tensor(expected), atol=1e-6, rtol=1e-5)
    hard = gumbel_softmax(torch.tensor(values), tau, generator=torch.Generator().manual_seed(7))
    assert hard.tolist() == [1.0 if i == expected.index(max(expected)) else 0.0 for i in range(3)]


def test_same_generator_seed_same_sample_different_seed_differs():
    logits = torch.zeros(6, 10)
    a = gumbel_softmax(logits, 1.0, hard=False, generator=torch.Generator().manual_seed(5))
    b = gumbel_softmax(logits, 1.0, hard=False, generator=torch.Generator().manual_seed(5))
    c = gumbel_softmax(logits, 1.0, hard=False, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


# ---------------------------------------------------------------------------------------------
# TemperatureSchedule


def test_to_minimum_schedule_values():
    s = TemperatureSchedule(initial=1.0, minimum=0.2, decay="to_minimum", total_epochs=80)
    assert s(0) == pytest.approx(1.0)
    assert s(40) == pytest.approx(0.2**0.5)
    assert s(20) == pytest.approx(0.2**0.25)
    assert s(80) == pytest.approx(0.2)
    assert s(200) == pytest.approx(0.2)


def test_to_minimum_schedule_other_initial():
    s = TemperatureSchedule(initial=2.0, minimum=0.5, decay="to_minimum", total_epochs=10)
    assert s(0) == pytest.approx(2.0)
    assert s(5) == pytest.approx(2.0 * 0.25**0.5)  # = 1.0
    assert s(10) == pytest.approx(0.5)
    assert s(11) == pytest.approx(0.5)


def test_rate_schedule_values():
    s = TemperatureSchedule(initial=1.0, minimum=0.2, decay="rate", rate=0.02, total_epochs=80)
    assert s(0) == pytest.approx(1.0)
    assert s(10) == pytest.approx(0.8187307530779818)  # exp(-0.2)
    assert s(40) == pytest.approx(0.44932896411722156)  # exp(-0.8)
    assert s(80) == pytest.approx(0.20189651799465538)  # exp(-1.6), just above the floor
    assert s(100) == pytest.approx(0.2)  # exp(-2) = 0.135 < 0.2 -> floor
    assert s(1000) == pytest.approx(0.2)


def test_constant_schedule_values():
    s = TemperatureSchedule(initial=0.7, minimum=0.2, decay="constant", total_epochs=80)
    assert [s(e) for e in (0, 40, 80, 500)] == [0.7, 0.7, 0.7, 0.7]


@pytest.mark.parametrize("decay", ["to_minimum", "rate", "constant"])
def test_schedules_are_monotone_non_increasing_and_floored(decay):
    s = TemperatureSchedule(decay=decay, total_epochs=80)
    values = [s(e / 2) for e in range(0, 300)]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))
    assert min(values) >= s.minimum - 1e-12
    assert values[0] == pytest.approx(s.initial)


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"initial": 0.0}, "initial", 0.0),
        ({"initial": -1.0}, "initial", -1.0),
        ({"minimum": 0.0}, "minimum", 0.0),
        ({"minimum": -0.2}, "minimum", -0.2),
        ({"initial": 0.5, "minimum": 0.8}, "minimum", 0.8),
        ({"decay": "linear"}, "decay", "linear"),
        ({"rate": -0.1}, "rate", -0.1),
        ({"total_epochs": 0}, "total_epochs", 0),
    ],
)
def test_schedule_invalid_values_raise(kwargs, field, value):
    with pytest.raises(ValueError) as info:
        TemperatureSchedule(**kwargs)
    message = str(info.value)
    assert field in message
    assert repr(value) in message


def test_schedule_negative_epoch_raises():
    with pytest.raises(ValueError, match="epoch") as info:
        TemperatureSchedule()(-1)
    assert "-1" in str(info.value)


def test_schedule_nan_rate_raises():
    with pytest.raises(ValueError, match="rate"):
        TemperatureSchedule(decay="rate", rate=float("nan"))
