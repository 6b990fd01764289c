"""Invalid searchspace settings raise ValueError naming the field and the offending value."""

from __future__ import annotations

import pytest

from searchspace import SupernetConfig, TemperatureSchedule
from searchspace.primitives import PRIMITIVES, build_op


def _assert_names(info, field: str, value: object) -> None:
    message = str(info.value)
    assert field in message, message
    assert repr(value) in message, message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_cells", 0),
        ("max_cells", -3),
        ("dropout", -0.1),
        ("dropout", 1.0),
        ("hidden_size", 0),
        ("vocab_size", 0),
        ("nodes_per_cell", 0),
        ("num_labels", 0),
        ("teacher_embedding_size", -1),
        ("mixed_op_mode", "some"),
        ("edges_per_node", 0),
    ],
)
def test_supernet_config_invalid_value(field, value):
    with pytest.raises(ValueError) as info:
        SupernetConfig(**{field: value})
    _assert_names(info, field, value)


def test_supernet_config_unknown_primitive():
    with pytest.raises(ValueError) as info:
        SupernetConfig(primitives=("std_conv_3", "conv9", "zero"))
    _assert_names(info, "primitives", "conv9")


def test_supernet_config_duplicate_or_empty_primitives():
    with pytest.raises(ValueError, match="primitives"):
        SupernetConfig(primitives=("identity", "identity"))
    with pytest.raises(ValueError, match="primitives"):
        SupernetConfig(primitives=())


def test_supernet_config_round_trip_and_unknown_key():
    config = SupernetConfig(hidden_size=16, primitives=("identity", "zero"))
    assert SupernetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="hiden_size"):
        SupernetConfig.from_dict({"hiden_size": 16})


def test_supernet_config_num_edges():
    assert SupernetConfig().num_edges == 9  # 2 + 3 + 4 (method notes 1.2)
    assert SupernetConfig(nodes_per_cell=2).num_edges == 5
    assert SupernetConfig(nodes_per_cell=1).num_edges == 2


def test_build_op_unknown_name():
    with pytest.raises(ValueError) as info:
        build_op("conv9", 8)
    _assert_names(info, "primitive", "conv9")


def test_primitives_are_the_ten_of_the_paper():
    assert len(PRIMITIVES) == 10
    assert len(set(PRIMITIVES)) == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [("initial", -1.0), ("initial", 0.0), ("minimum", -0.1), ("minimum", 0.0)],
)
def test_temperature_schedule_non_positive_temperatures(field, value):
    with pytest.raises(ValueError) as info:
        TemperatureSchedule(**{field: value})
    _assert_names(info, field, value)
