"""In-memory training batches: tokenised student inputs joined with the cached teacher knowledge."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

STUDENT_COLUMNS = ("input_ids_a", "attention_mask_a", "input_ids_b", "attention_mask_b")


@dataclass
class Batch:
    input_ids_a: torch.Tensor
    attention_mask_a: torch.Tensor
    input_ids_b: torch.Tensor
    attention_mask_b: torch.Tensor
    labels: torch.Tensor
    teacher_probe_logits: torch.Tensor
    teacher_logits: torch.Tensor

    def student_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.input_ids_a, self.attention_mask_a, self.input_ids_b, self.attention_mask_b


def distillation_tensors(
    columns: dict[str, torch.Tensor], probe_logits: torch.Tensor, logits: torch.Tensor
) -> TensorDataset:
    """Rows aligned by position: knowledge row i belongs to example i of the tokenised split."""
    n = len(columns["labels"])
    if len(probe_logits) != n or len(logits) != n:
        raise ValueError(
            f"teacher knowledge has {len(probe_logits)} rows but the data has {n}: stale cache?"
        )
    return TensorDataset(
        *(columns[name] for name in STUDENT_COLUMNS),
        columns["labels"],
        probe_logits.float(),
        logits.float(),
    )


def batch_loader(
    dataset: TensorDataset, *, batch_size: int, shuffle: bool, seed: int
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=lambda rows: Batch(*(torch.stack(col) for col in zip(*rows))),
    )


def trim_padding(batch: Batch) -> Batch:
    """Cut columns that are padding in every row (the ops are mask-aware: only saves time)."""
    # Both sentences keep one length: the first cell adds their node states position-wise.
    length = int(
        torch.maximum(batch.attention_mask_a.sum(dim=1), batch.attention_mask_b.sum(dim=1))
        .max()
        .clamp_min(1)
    )
    return Batch(
        batch.input_ids_a[:, :length],
        batch.attention_mask_a[:, :length],
        batch.input_ids_b[:, :length],
        batch.attention_mask_b[:, :length],
        batch.labels,
        batch.teacher_probe_logits,
        batch.teacher_logits,
    )
