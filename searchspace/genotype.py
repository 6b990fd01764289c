"""Genotype: the discrete architecture (one cell topology shared by every cell + number of cells).

Node numbering inside a cell: 0 and 1 are the two inputs (c_{k-2}, c_{k-1}); 2 .. N+1 are the
inner nodes. Edge order everywhere (supernet weights, cost tables, one-hot export) is
``edge_list(N)``: for each inner node j in order, its sources 0 .. j-1.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import torch

from searchspace.config import SupernetConfig
from searchspace.primitives import PARAMETER_FREE, PRIMITIVES

GENOTYPE_FORMAT = 1


def edge_list(nodes_per_cell: int) -> list[tuple[int, int]]:
    """(source, target) of every edge of a supernet cell, in canonical order."""
    return [(source, target) for target in range(2, 2 + nodes_per_cell) for source in range(target)]


def edge_key(source: int, target: int) -> str:
    return f"n{target}<-n{source}"


@dataclass(frozen=True, order=True)
class Edge:
    target: int
    source: int
    op: str


@dataclass(frozen=True)
class Genotype:
    """A derived architecture: kept edges of the shared cell and the number of cells K."""

    edges: tuple[Edge, ...]
    num_cells: int
    nodes_per_cell: int

    def __post_init__(self) -> None:
        if self.num_cells < 1:
            raise ValueError(f"num_cells must be >= 1, got {self.num_cells!r}")
        if self.nodes_per_cell < 1:
            raise ValueError(f"nodes_per_cell must be >= 1, got {self.nodes_per_cell!r}")
        object.__setattr__(self, "edges", tuple(sorted(self.edges)))
        valid = set(edge_list(self.nodes_per_cell))
        seen = set()
        for edge in self.edges:
            if (edge.source, edge.target) not in valid:
                raise ValueError(f"edge must connect an earlier node to an inner node, got {edge}")
            if edge.op not in PRIMITIVES:
                raise ValueError(f"edge op must be a known primitive, got {edge.op!r}")
            if (edge.source, edge.target) in seen:
                raise ValueError(f"edge appears twice: {edge}")
            seen.add((edge.source, edge.target))

    def to_dict(self) -> dict:
        return {
            "format": GENOTYPE_FORMAT,
            "num_cells": self.num_cells,
            "nodes_per_cell": self.nodes_per_cell,
            "edges": [{"target": e.target, "source": e.source, "op": e.op} for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Genotype:
        if not isinstance(data, dict) or data.get("format") != GENOTYPE_FORMAT:
            raise ValueError(f"genotype format must be {GENOTYPE_FORMAT}, got {data!r:.80}")
        try:
            edges = tuple(
                Edge(int(e["target"]), int(e["source"]), str(e["op"])) for e in data["edges"]
            )
            return cls(edges, int(data["num_cells"]), int(data["nodes_per_cell"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"genotype is missing a field: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(json.loads(text))

    @property
    def hash(self) -> str:
        """Stable 10-hex-digit id of the architecture (same genotype, same hash, any process)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def summary(self) -> str:
        """One line, e.g. ``K=3 | n2: std_conv_3(n0) + identity(n1) | n3: ...``."""
        parts = [f"K={self.num_cells}"]
        for target in range(2, 2 + self.nodes_per_cell):
            incoming = [f"{e.op}(n{e.source})" for e in self.edges if e.target == target]
            parts.append(f"n{target}: " + (" + ".join(incoming) or "none"))
        return " | ".join(parts)

    @classmethod
    def from_summary(cls, text: str) -> Genotype:
        """The inverse of ``summary`` (the line the bench and the sweep print), so a genotype
        read off a report can be rebuilt; a malformed line is a ValueError naming the part."""
        head, *nodes = (part.strip() for part in text.split("|"))
        match = re.fullmatch(r"K=(\d+)", head)
        if not match or not nodes:
            raise ValueError(f"a genotype summary starts 'K=<cells> | n2: ...', got {text!r:.80}")
        edges = []
        for expected, part in enumerate(nodes, start=2):
            target, _, incoming = part.partition(":")
            if target.strip() != f"n{expected}":
                raise ValueError(f"expected node n{expected} in the summary, got {part!r}")
            items = [i.strip() for i in incoming.split("+")]
            for item in (i for i in items if i and i != "none"):  # "none": no incoming edge
                found = re.fullmatch(r"(\w+)\(n(\d+)\)", item)
                if not found:
                    raise ValueError(f"an edge looks like op(nSOURCE), got {item!r}")
                edges.append(Edge(expected, int(found.group(2)), found.group(1)))
        return cls(tuple(edges), int(match.group(1)), len(nodes))

    def edge_ops(self) -> dict[tuple[int, int], str]:
        return {(e.source, e.target): e.op for e in self.edges}

    def to_arch_weights(self, config: SupernetConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot (edge_weights, depth_weights) selecting exactly this genotype in a supernet.

        Edges the genotype dropped select "zero", which is how a supernet expresses absence.
        """
        if self.nodes_per_cell != config.nodes_per_cell:
            raise ValueError(
                f"genotype has {self.nodes_per_cell} nodes per cell, config has "
                f"{config.nodes_per_cell}"
            )
        if self.num_cells > config.max_cells:
            raise ValueError(
                f"genotype has {self.num_cells} cells, config allows {config.max_cells}"
            )
        if "zero" not in config.primitives:
            raise ValueError("to_arch_weights needs 'zero' among the primitives")
        kept = self.edge_ops()
        edges = torch.zeros(config.num_edges, len(config.primitives))
        for row, pair in enumerate(edge_list(config.nodes_per_cell)):
            op = kept.get(pair, "zero")
            if op not in config.primitives:
                raise ValueError(f"genotype op {op!r} is not among the config's primitives")
            edges[row, config.primitives.index(op)] = 1.0
        depth = torch.zeros(config.max_cells)
        depth[self.num_cells - 1] = 1.0
        return edges, depth


def derive_genotype(
    edge_logits: torch.Tensor,
    depth_logits: torch.Tensor,
    config: SupernetConfig,
    *,
    exclude_zero: bool = True,
    max_param_free: int | None = None,
) -> Genotype:
    """Discretise architecture parameters (method notes 2.4).

    Each inner node keeps its ``config.edges_per_node`` strongest incoming edges; an edge's
    strength is its highest op probability and its op the argmax. ``exclude_zero`` follows
    DARTS and [A-PT]; [A-ET] ranks with "zero" included (then a node may keep a zero edge,
    which the genotype records as a dropped edge). K = argmax of the depth logits + 1.

    ``max_param_free`` caps the kept edges whose op is parameter-free (P-DARTS keeps at most
    M = 2 skips): the excess ones, those losing the least probability first, take their best
    parametrised op instead; the kept edges stay the same. None = no cap (the sources).
    """
    if max_param_free is not None and max_param_free < 0:
        raise ValueError(f"max_param_free must be >= 0 or None, got {max_param_free!r}")
    probs = torch.softmax(edge_logits.detach().float(), dim=-1)
    names = list(config.primitives)
    if exclude_zero and "zero" in names and len(names) > 1:
        probs = probs.clone()
        probs[:, names.index("zero")] = -1.0
    kept: list[tuple[int, str]] = []  # (row, op)
    pairs = edge_list(config.nodes_per_cell)
    for target in range(2, 2 + config.nodes_per_cell):
        rows = [row for row, (_, t) in enumerate(pairs) if t == target]
        strength = {row: float(probs[row].max()) for row in rows}
        # Ties break toward the earlier source so derivation is deterministic.
        ranked = sorted(rows, key=lambda row: (-strength[row], row))[: config.edges_per_node]
        for row in ranked:
            op = names[int(probs[row].argmax())]
            if op != "zero":
                kept.append((row, op))
    if max_param_free is not None:
        kept = _cap_param_free(kept, probs, names, max_param_free)
    edges = [Edge(pairs[row][1], pairs[row][0], op) for row, op in kept]
    num_cells = int(depth_logits.detach().argmax()) + 1
    return Genotype(tuple(edges), num_cells, config.nodes_per_cell)


def _cap_param_free(
    kept: list[tuple[int, str]], probs: torch.Tensor, names: list[str], cap: int
) -> list[tuple[int, str]]:
    """``kept`` with at most ``cap`` parameter-free ops (see ``derive_genotype``)."""
    param_cols = [col for col, name in enumerate(names) if name not in PARAMETER_FREE]
    free = [row for row, op in kept if op in PARAMETER_FREE]
    if not param_cols or len(free) <= cap:
        return kept

    def best_param(row: int) -> int:
        return max(param_cols, key=lambda col: (float(probs[row, col]), -col))

    def loss(row: int) -> float:
        return float(probs[row].max()) - float(probs[row, best_param(row)])

    # Ties break toward the earlier edge so derivation is deterministic.
    converted = set(sorted(free, key=lambda row: (loss(row), row))[: len(free) - cap])
    return [(row, names[best_param(row)] if row in converted else op) for row, op in kept]
