"""Nearest neighbours of words in the teacher's input-embedding space: the substitution
candidates of the augmenter (the GloVe path of TinyBERT's recipe, with the teacher's own table
standing in for GloVe, method notes 5.2b)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def _is_whole_word(token: str) -> bool:
    """Alphabetic vocabulary entries of two letters or more: no pieces (##), no [unused] or
    special tokens, no punctuation, so a substitute never leaves the vocabulary's words."""
    return len(token) >= 2 and token.isalpha()


def tokenizer_lowercases(tokenizer) -> bool:
    return tokenizer.tokenize("Word") == tokenizer.tokenize("word")


def embedding_neighbours(
    table: torch.Tensor,
    vocab: dict[str, int],
    words: Iterable[str],
    *,
    k: int,
    chunk: int = 1024,
) -> dict[str, list[str]]:
    """The ``k`` whole-word vocabulary entries closest (cosine) to each of ``words`` that is
    itself a whole word of the vocabulary, most similar first, the word itself excluded."""
    candidates = sorted((i, t) for t, i in vocab.items() if _is_whole_word(t) and i < len(table))
    if not candidates:
        return {}
    ids = torch.tensor([i for i, _ in candidates])
    names = [t for _, t in candidates]
    position = {t: n for n, t in enumerate(names)}
    unit = torch.nn.functional.normalize(table.float()[ids], dim=1)
    queries = sorted(w for w in set(words) if w in position)
    neighbours: dict[str, list[str]] = {}
    for start in range(0, len(queries), chunk):
        batch = queries[start : start + chunk]
        rows = torch.tensor([position[w] for w in batch])
        sims = unit[rows] @ unit.T
        sims[torch.arange(len(batch)), rows] = -2.0  # never the word itself
        top = sims.topk(min(k, len(names) - 1), dim=1).indices.tolist()
        for word, row in zip(batch, top):
            neighbours[word] = [names[j] for j in row]
    return neighbours
