"""In-memory training data: tokenised student inputs joined with the cached teacher knowledge,
held and batched by column name."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

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
    teacher_probe_logits: torch.Tensor  # (B, M + 1, C): column 0 = embedding-layer probe
    teacher_logits: torch.Tensor  # (B, C)

    def student_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.input_ids_a, self.attention_mask_a, self.input_ids_b, self.attention_mask_b


COLUMNS = tuple(f.name for f in fields(Batch))


class DistillationSet(TensorDataset):
    """One split's rows: every ``Batch`` column, reachable by name (``data.labels``).

    ``b_copies_a``: slot b holds a copy of slot a (a single-sentence task's student inputs), set
    where the rows are built, so every loader of the set batches it the same way (``collate``)."""

    def __init__(self, *, b_copies_a: bool = False, **columns: torch.Tensor) -> None:
        missing = [name for name in COLUMNS if name not in columns]
        if missing or len(columns) != len(COLUMNS):
            raise ValueError(f"a DistillationSet needs exactly {COLUMNS}, got {sorted(columns)}")
        super().__init__(*(columns[name] for name in COLUMNS))
        self.b_copies_a = b_copies_a

    def column(self, name: str) -> torch.Tensor:
        return self.tensors[COLUMNS.index(name)]

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in COLUMNS:
            return self.column(name)
        raise AttributeError(name)

    @classmethod
    def join(
        cls,
        columns: dict[str, torch.Tensor],
        probe_logits: torch.Tensor,
        logits: torch.Tensor,
        *,
        b_copies_a: bool,
    ) -> DistillationSet:
        """Rows aligned by position: knowledge row i belongs to example i of the tokenised
        split."""
        n = len(columns["labels"])
        if len(probe_logits) != n or len(logits) != n:
            raise ValueError(
                f"teacher knowledge has {len(probe_logits)} rows but the data has {n}: stale cache?"
            )
        return cls(
            b_copies_a=b_copies_a,
            **{name: columns[name] for name in STUDENT_COLUMNS},
            labels=columns["labels"],
            teacher_probe_logits=probe_logits.float(),
            teacher_logits=logits.float(),
        )


def collate(rows, *, b_copies_a: bool = False) -> Batch:
    """Stack dataset rows into a Batch. A single-sentence task stores sentence b as a copy of a
    (``b_copies_a``), and the batch then hands the student a's own tensors for b
    (``searchspace.pair_encoding.is_single``): the eval forward then embeds the sentence once
    (dev evaluation; the SST-2 student's batch-32 eval went from 11.6 to 7.5 ms). Training a
    single-sentence task (joint encoding) embeds both cell inputs either way, each with its own
    dropout, so its results do not change."""
    batch = Batch(*(torch.stack(column) for column in zip(*rows)))
    if b_copies_a:
        batch.input_ids_b, batch.attention_mask_b = batch.input_ids_a, batch.attention_mask_a
    return batch


def batch_loader(dataset, *, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches of ``dataset`` (a DistillationSet or a Subset of one), batched as its
    ``b_copies_a`` says (see ``collate``). The shuffling generator is the loader's own, so its
    state alone decides the order (checkpoints save it)."""
    b_copies_a = getattr(getattr(dataset, "dataset", dataset), "b_copies_a", False)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=functools.partial(collate, b_copies_a=b_copies_a),
    )


def trim_padding(batch: Batch) -> Batch:
    """Cut columns that are padding in every row (the ops are mask-aware: only saves time)."""
    # Both sentences keep one length: the first cell adds their node states position-wise.
    length = int(
        torch.maximum(batch.attention_mask_a.sum(dim=1), batch.attention_mask_b.sum(dim=1))
        .max()
        .clamp_min(1)
    )
    ids_a, mask_a = batch.input_ids_a[:, :length], batch.attention_mask_a[:, :length]
    if batch.input_ids_b is batch.input_ids_a and batch.attention_mask_b is batch.attention_mask_a:
        ids_b, mask_b = ids_a, mask_a  # one sentence stays one (collate)
    else:
        ids_b, mask_b = batch.input_ids_b[:, :length], batch.attention_mask_b[:, :length]
    return Batch(
        ids_a,
        mask_a,
        ids_b,
        mask_b,
        batch.labels,
        batch.teacher_probe_logits,
        batch.teacher_logits,
    )
