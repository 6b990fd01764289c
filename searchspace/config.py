"""SupernetConfig: the shape of the AdaBERT search space (method notes, section 7 defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from searchspace.primitives import PRIMITIVES

PAIR_ENCODINGS = ("siamese", "joint")


def _require(condition: bool, name: str, value: object, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class SupernetConfig:
    """Everything needed to build a supernet or a derived student, nothing about training.

    Defaults follow the paper ([P]: N = 3 inner nodes, K_max = 8) and all three code bases
    (width 128, 10 primitives).
    """

    vocab_size: int = 30522
    max_positions: int = 512
    hidden_size: int = 128
    max_cells: int = 8
    nodes_per_cell: int = 3
    num_labels: int = 2
    primitives: tuple[str, ...] = field(default=PRIMITIVES)
    dropout: float = 0.1
    # Width of the teacher embedding table used to initialise the student ([A-ET]: the
    # high-dimensional table is factorised by a learned projection). 0 means "no teacher
    # table": the student's low-dimensional table is initialised randomly.
    teacher_embedding_size: int = 0
    # "all" evaluates every primitive on every edge ([A-ET], [A-PT]); "sampled" evaluates only
    # the primitive the hard Gumbel sample picked ([PS], GDAS-style), about 10x cheaper.
    mixed_op_mode: str = "all"
    # Head across depths: one linear per depth ([A-PT]) or one shared linear ([A-ET]).
    head_per_depth: bool = True
    edges_per_node: int = 2
    # How a sentence pair meets the cells (single sentences always feed both input nodes).
    # "joint": the two sentences are the first cell's two input nodes ([A-ET], [A-PT]); nodes
    # add them position-wise, so parameter-free cells cannot compare them. "siamese" (ours,
    # InferSent / Sentence-BERT style): the cells encode each sentence alone with shared
    # weights and the head classifies [u, v, |u - v|, u * v]; the cells run twice per pair.
    # Packages saved before this field existed load as "joint" (searchspace.package).
    pair_encoding: str = "siamese"

    def __post_init__(self) -> None:
        _require(self.vocab_size >= 1, "vocab_size", self.vocab_size, ">= 1")
        _require(self.max_positions >= 1, "max_positions", self.max_positions, ">= 1")
        _require(self.hidden_size >= 1, "hidden_size", self.hidden_size, ">= 1")
        _require(self.max_cells >= 1, "max_cells", self.max_cells, ">= 1")
        _require(self.nodes_per_cell >= 1, "nodes_per_cell", self.nodes_per_cell, ">= 1")
        _require(self.num_labels >= 1, "num_labels", self.num_labels, ">= 1")
        _require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")
        _require(
            self.teacher_embedding_size >= 0,
            "teacher_embedding_size",
            self.teacher_embedding_size,
            ">= 0",
        )
        object.__setattr__(self, "primitives", tuple(self.primitives))
        _require(len(self.primitives) >= 1, "primitives", self.primitives, "non-empty")
        for name in self.primitives:
            _require(name in PRIMITIVES, "primitives", name, f"one of {list(PRIMITIVES)}")
        _require(
            len(set(self.primitives)) == len(self.primitives),
            "primitives",
            self.primitives,
            "free of duplicates",
        )
        _require(
            self.mixed_op_mode in ("all", "sampled"),
            "mixed_op_mode",
            self.mixed_op_mode,
            "'all' or 'sampled'",
        )
        _require(self.edges_per_node >= 1, "edges_per_node", self.edges_per_node, ">= 1")
        _require(
            self.pair_encoding in PAIR_ENCODINGS,
            "pair_encoding",
            self.pair_encoding,
            "'siamese' or 'joint'",
        )

    @property
    def siamese(self) -> bool:
        return self.pair_encoding == "siamese"

    @property
    def num_edges(self) -> int:
        """Edges of one cell: node j (0-based among inner nodes) has 2 + j incoming edges."""
        return sum(2 + j for j in range(self.nodes_per_cell))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["primitives"] = list(self.primitives)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SupernetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SupernetConfig keys: {unknown}")
        values = dict(data)
        if "primitives" in values:
            values["primitives"] = tuple(values["primitives"])
        return cls(**values)
