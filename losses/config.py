"""LossConfig: weights and choices of the AdaBERT objective (method notes, section 3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class LossConfig:
    """L = (1 - kd_weight) * CE + kd_weight * KD + efficiency_weight * E.

    kd_weight is the paper's γ = 0.8, efficiency_weight its β = 4 and kd_temperature its T = 1
    ([P]).
    """

    kd_weight: float = 0.8
    efficiency_weight: float = 4.0
    kd_temperature: float = 1.0
    # Share of KD given to the teacher's final logits; the rest goes to the probes. [A-PT] splits
    # γ half/half (0.4 + 0.4); the paper's formula has probes only (share 0).
    final_kd_share: float = 0.5
    # "attentive": w_m = softmax_m(-CE of teacher probe j(m) on the gold labels) ([A-PT], [PS]);
    # "uniform": 1 / k ([A-ET]).
    layer_weighting: str = "attentive"
    # "ceil": student cell m of k <- teacher layer ceil(m * M / k) ([PS]; the last cell always
    # meets the last teacher layer); "floor": m * floor(M / (k + 1)) ([A-ET]); "kmax":
    # floor(M * m / K_max), independent of the sampled k ([A-PT]).
    layer_mapping: str = "ceil"
    # Per-op cost normalisation in E (see losses/efficiency.py): "max" ([R] formula as the notes
    # read it), "softmax" (a cost vector summing to 1, the form of [A-ET]'s), "pt" ([A-PT]).
    # Default "softmax": with "max" and the paper's β = 4 the efficiency term dominated the loss
    # and the SST-2 search ended at K = 1-2 on parameter-free edges (README, "collapse").
    efficiency_normalizer: str = "softmax"
    # "mean" over the edges keeps E in [0, 1] ([A-ET], [A-PT]); "sum" is the [R] formula's Σ.
    edge_reduction: str = "mean"

    def __post_init__(self) -> None:
        if not 0.0 <= self.kd_weight <= 1.0:
            raise ValueError(f"kd_weight must be in [0, 1], got {self.kd_weight!r}")
        # 'not >= 0' rejects NaN as well as negatives.
        if not self.efficiency_weight >= 0:
            raise ValueError(f"efficiency_weight must be >= 0, got {self.efficiency_weight!r}")
        if not self.kd_temperature > 0:
            raise ValueError(f"kd_temperature must be > 0, got {self.kd_temperature!r}")
        if not 0.0 <= self.final_kd_share <= 1.0:
            raise ValueError(f"final_kd_share must be in [0, 1], got {self.final_kd_share!r}")
        _one_of("layer_weighting", self.layer_weighting, ("attentive", "uniform"))
        _one_of("layer_mapping", self.layer_mapping, ("ceil", "floor", "kmax"))
        _one_of("efficiency_normalizer", self.efficiency_normalizer, ("max", "softmax", "pt"))
        _one_of("edge_reduction", self.edge_reduction, ("mean", "sum"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LossConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown LossConfig keys: {unknown}")
        return cls(**data)
