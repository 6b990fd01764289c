"""AdaBERT's architecture search space in pure PyTorch: primitives, cells, supernet, genotypes."""

from searchspace.config import SupernetConfig
from searchspace.derived import DerivedStudent
from searchspace.genotype import Edge, Genotype, derive_genotype
from searchspace.gumbel import TemperatureSchedule, gumbel_softmax
from searchspace.primitives import PRIMITIVES
from searchspace.supernet import AdaBertSupernet, SupernetOutput

__all__ = [
    "PRIMITIVES",
    "AdaBertSupernet",
    "DerivedStudent",
    "Edge",
    "Genotype",
    "SupernetConfig",
    "SupernetOutput",
    "TemperatureSchedule",
    "derive_genotype",
    "gumbel_softmax",
]
