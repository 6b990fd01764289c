"""LossConfig: defaults from the paper and invalid values naming the field and the value."""

from __future__ import annotations

import pytest

from losses import LossConfig


def test_defaults_are_the_paper_values():
    config = LossConfig()
    assert (config.kd_weight, config.efficiency_weight, config.kd_temperature) == (0.8, 4.0, 1.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kd_weight", -0.1),
        ("kd_weight", 1.5),
        ("efficiency_weight", -1),
        ("efficiency_weight", -0.001),
        ("kd_temperature", 0),
        ("kd_temperature", -2.0),
        ("final_kd_share", 1.1),
        ("layer_weighting", "learned"),
        ("layer_mapping", "round"),
        ("efficiency_normalizer", "mean"),
        ("edge_reduction", "max"),
    ],
)
def test_invalid_value_raises_naming_field_and_value(field, value):
    with pytest.raises(ValueError) as info:
        LossConfig(**{field: value})
    message = str(info.value)
    assert field in message, message
    assert repr(value) in message, message


def test_nan_efficiency_weight_raises():
    with pytest.raises(ValueError, match="efficiency_weight"):
        LossConfig(efficiency_weight=float("nan"))


def test_round_trip_and_unknown_key():
    config = LossConfig(kd_weight=0.5, layer_mapping="kmax")
    assert LossConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="kd_wieght"):
        LossConfig.from_dict({"kd_wieght": 0.5})
