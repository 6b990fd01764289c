"""How the cell stack reads its input: "joint" ([A-ET]/[A-PT]) or "siamese" (ours).

"joint": the two embedded sentences are the first cell's two input nodes (method notes 1.4).
"siamese": each sentence runs through the cells alone (both input nodes = that sentence, as a
single sentence does), with shared weights; a and b are stacked along the batch so the cells
run once on 2B rows, and the head compares the two encodings (``AttentiveHead``). A single
sentence (the same tensors given as a and b) runs once in either encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from searchspace.embeddings import embed_pair, masked_mean

# A cell with its architecture weights bound: (s0, m0, s1, m1) -> (output, output mask).
CellFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def is_single(ids_a, mask_a, ids_b, mask_b) -> bool:
    """Callers (inference, ONNX export) pass one sentence as the same tensors twice."""
    return ids_b is ids_a and mask_b is mask_a


def stack_rows(ids_a, mask_a, ids_b, mask_b) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence a's rows, then b's: one batch for the shared cells. Both sentences are padded
    to one length (``trim_padding``, ``TextClassifier.batches``)."""
    if is_single(ids_a, mask_a, ids_b, mask_b):
        return ids_a, mask_a
    return torch.cat([ids_a, ids_b]), torch.cat([mask_a, mask_b])


def split_rows(stacked: torch.Tensor, single: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(a's rows, b's rows) of a stacked batch. A reshape, not a slice at a traced batch size,
    so an ONNX graph keeps its dynamic batch axis."""
    if single:
        return stacked, stacked
    a, b = stacked.unflatten(0, (2, -1)).unbind(0)
    return a, b


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[u, v, |u - v|, u * v] (InferSent): the difference and product make a comparison of
    the two sentences linear in the features, which a sum of their states cannot give."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


def encode(
    siamese: bool,
    embedding: nn.Module,
    cells: Sequence[CellFn],
    ids_a: torch.Tensor,
    mask_a: torch.Tensor,
    ids_b: torch.Tensor,
    mask_b: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Pooled states [embedding, cell 1, ...] of the training forward.

    Returns (pooled, None) for "joint" (one list for the pair) and (pooled_a, pooled_b) for
    "siamese" (the same list twice for a single sentence).
    """
    if not siamese:
        s0, m0, s1, m1, pooled_embedding = embed_pair(embedding, ids_a, mask_a, ids_b, mask_b)
        pooled = [pooled_embedding]
        for cell in cells:
            out, mask = cell(s0, m0, s1, m1)
            pooled.append(masked_mean(out, mask))
            s0, m0, s1, m1 = s1, m1, out, mask
        return pooled, None
    single = is_single(ids_a, mask_a, ids_b, mask_b)
    ids, mask = stack_rows(ids_a, mask_a, ids_b, mask_b)
    s0 = s1 = embedding(ids, mask)
    m0 = m1 = mask
    pooled = [masked_mean(s1, mask)]
    for cell in cells:
        out, out_mask = cell(s0, m0, s1, m1)
        pooled.append(masked_mean(out, out_mask))
        s0, m0, s1, m1 = s1, m1, out, out_mask
    if single:
        return pooled, pooled
    halves = [split_rows(p, False) for p in pooled]
    return [a for a, _ in halves], [b for _, b in halves]
