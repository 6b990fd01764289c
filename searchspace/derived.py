"""DerivedStudent: the discrete network a genotype describes, for retraining and inference."""

from __future__ import annotations

import torch
from torch import nn

from searchspace.cells import DerivedCell
from searchspace.config import SupernetConfig
from searchspace.costs import cell_passes, head_flops, op_cost
from searchspace.embeddings import StudentEmbedding
from searchspace.fast_forward import student_forward
from searchspace.genotype import Genotype, edge_key
from searchspace.head import AttentiveHead
from searchspace.pair_encoding import encode


def student_config(config: SupernetConfig) -> SupernetConfig:
    """The derived student stores low-dimensional tables, never the teacher-width ones."""
    data = config.to_dict()
    data["teacher_embedding_size"] = 0
    return SupernetConfig.from_dict(data)


class DerivedStudent(nn.Module):
    def __init__(self, config: SupernetConfig, genotype: Genotype) -> None:
        super().__init__()
        if genotype.nodes_per_cell != config.nodes_per_cell:
            raise ValueError(
                f"genotype nodes_per_cell {genotype.nodes_per_cell} does not match config "
                f"{config.nodes_per_cell}"
            )
        self.config = student_config(config)
        self.genotype = genotype
        self.embedding = StudentEmbedding(self.config)
        self.cells = nn.ModuleList(
            DerivedCell(self.config, genotype) for _ in range(genotype.num_cells)
        )
        self.head = AttentiveHead(self.config, [genotype.num_cells])

    def forward(
        self,
        input_ids_a: torch.Tensor,
        attention_mask_a: torch.Tensor,
        input_ids_b: torch.Tensor,
        attention_mask_b: torch.Tensor,
    ) -> torch.Tensor:
        if not self.training:
            # Same function, a fraction of the kernel launches (see searchspace.fast_forward).
            return student_forward(
                self, input_ids_a, attention_mask_a, input_ids_b, attention_mask_b
            )
        pooled, pooled_b = encode(
            self.config.siamese,
            self.embedding,
            list(self.cells),
            input_ids_a,
            attention_mask_a,
            input_ids_b,
            attention_mask_b,
        )
        return self.head(pooled, self.genotype.num_cells, pooled_b)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops(self, seq_len: int) -> int:
        """FLOPs per example under the conventions of ``searchspace.costs`` (a siamese config
        counts a pair: the cells run once per sentence)."""
        h = self.config.hidden_size
        per_cell = sum(op_cost(e.op, h, seq_len).flops for e in self.genotype.edges)
        cells = cell_passes(self.config) * self.genotype.num_cells * per_cell
        return cells + head_flops(self.config)

    @classmethod
    def from_supernet(cls, supernet: nn.Module, genotype: Genotype) -> DerivedStudent:
        """Build the student and inherit the operation weights trained during search.

        [P]: "derive the searched structure with its trained operation weights". Embeddings are
        exported at the cell width (the factorised product), as [A-ET] exports them.
        """
        student = cls(supernet.config, genotype)
        source = supernet.state_dict()
        target = student.state_dict()
        word, position = supernet.embedding.low_dim_tables()
        mapped = {
            "embedding.word_embeddings.weight": word,
            "embedding.position_embeddings.weight": position,
        }
        for name in target:
            if name in mapped:
                continue
            if name.startswith("cells.") and ".edges." in name:
                prefix, rest = name.split(".edges.", 1)
                key, param = rest.split(".", 1)
                op = next(e.op for e in genotype.edges if edge_key(e.source, e.target) == key)
                mapped[name] = source[f"{prefix}.edges.{key}.ops.{op}.{param}"]
            else:
                mapped[name] = source[name]
        student.load_state_dict(mapped)
        return student
