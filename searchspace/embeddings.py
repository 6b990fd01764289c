"""Student embeddings: teacher word + position tables, factorised down to the cell width.

[A-ET] loads the teacher's high-dimensional word and position tables as trainable weights and
learns a projection to 128; the low-dimensional product becomes the derived student's table.
The teacher tables arrive as tensors (not a teacher object) so this package stays framework-free.
Sentence B's positions restart at 0 because each sentence is embedded separately ([A-ET]).
"""

from __future__ import annotations

import torch
from torch import nn

from searchspace.config import SupernetConfig


def _principal_projection(table: torch.Tensor, width: int) -> torch.Tensor:
    """(width, D) projection onto the top principal directions: a better start than noise."""
    centred = table.float() - table.float().mean(dim=0, keepdim=True)
    _, _, v = torch.linalg.svd(centred[: min(len(centred), 8192)], full_matrices=False)
    return v[:width].clone()


class StudentEmbedding(nn.Module):
    """input_ids (B, T) -> (B, T, hidden_size), zero at padding positions."""

    def __init__(
        self,
        config: SupernetConfig,
        *,
        teacher_word_embeddings: torch.Tensor | None = None,
        teacher_position_embeddings: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        width = config.teacher_embedding_size or config.hidden_size
        self.factorised = config.teacher_embedding_size > 0
        self.word_embeddings = nn.Embedding(config.vocab_size, width)
        self.position_embeddings = nn.Embedding(config.max_positions, width)
        nn.init.normal_(self.word_embeddings.weight, std=0.02)
        nn.init.normal_(self.position_embeddings.weight, std=0.02)
        if teacher_word_embeddings is not None:
            self._copy_teacher_table(self.word_embeddings, teacher_word_embeddings, "word")
        if teacher_position_embeddings is not None:
            self._copy_teacher_table(
                self.position_embeddings, teacher_position_embeddings, "position"
            )
        if self.factorised:
            self.projection = nn.Linear(width, config.hidden_size, bias=False)
            if teacher_word_embeddings is not None and config.hidden_size <= width:
                with torch.no_grad():
                    self.projection.weight.copy_(
                        _principal_projection(teacher_word_embeddings, config.hidden_size)
                    )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    @staticmethod
    def _copy_teacher_table(target: nn.Embedding, table: torch.Tensor, kind: str) -> None:
        rows, width = target.weight.shape
        if table.dim() != 2 or table.shape[1] != width:
            raise ValueError(
                f"teacher {kind} embeddings must be (n, {width}) to match "
                f"teacher_embedding_size, got {tuple(table.shape)}"
            )
        if kind == "word" and table.shape[0] != rows:
            raise ValueError(
                f"teacher word embeddings have {table.shape[0]} rows, vocab_size is {rows}"
            )
        if table.shape[0] < rows:
            raise ValueError(f"teacher {kind} embeddings have {table.shape[0]} rows, need {rows}")
        with torch.no_grad():
            target.weight.copy_(table[:rows].to(target.weight.dtype))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        if self.factorised:
            h = self.projection(h)
        h = self.dropout(self.norm(h))
        return h * mask.unsqueeze(-1).to(h.dtype)

    def low_dim_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(word, position) tables at the cell width, as the derived student stores them."""
        word = self.word_embeddings.weight.detach()
        position = self.position_embeddings.weight.detach()
        if self.factorised:
            word = self.projection(word).detach()
            position = self.projection(position).detach()
        return word, position


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: (B, T, H), (B, T) -> (B, H)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def embed_pair(
    embedding: StudentEmbedding,
    input_ids_a: torch.Tensor,
    attention_mask_a: torch.Tensor,
    input_ids_b: torch.Tensor,
    attention_mask_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embed both sentences separately; returns (s_a, m_a, s_b, m_b, pooled embedding layer).

    The two embedded sentences are the first cell's two input nodes (method notes 1.4); for
    single-sentence tasks the caller passes the same sentence twice.
    """
    s_a = embedding(input_ids_a, attention_mask_a)
    s_b = embedding(input_ids_b, attention_mask_b)
    pooled = 0.5 * (masked_mean(s_a, attention_mask_a) + masked_mean(s_b, attention_mask_b))
    return s_a, attention_mask_a, s_b, attention_mask_b, pooled
