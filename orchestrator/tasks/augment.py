"""Data augmentation for the transfer set: word substitution, masking and n-gram sampling.

The paper's headline figures use TinyBERT's augmentation (method notes 5.2b: [A-PT]
``data_augment.py``, 20-30 copies per example, a word replaced with probability 0.4 for single
sentences and 0.3 for pairs). TinyBERT proposes replacements with BERT's masked-LM head and GloVe
neighbours; our teachers need not have a masked-LM head, so replacements are the nearest
neighbours of the word in the teacher's own input-embedding space (the GloVe path of the recipe,
see ``orchestrator.teacher.neighbours``). Tang et al. 2019 add masking (p 0.1) and n-gram sampling
(p 0.25, n in 1..5); n-gram sampling is applied to single sentences only, since cutting one side
of a pair destroys the relation the label describes.

An augmented row keeps its source row's label (the teacher labels it again, softly, in the
knowledge pass) and, for pairs, both of its texts come from the same source row. Pure standard
library; deterministic given the seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Words and single punctuation marks, as BERT's basic tokenizer splits them.
_PIECE = re.compile(r"\w+|[^\w\s]")

# TinyBERT's copies per example ([A-PT] data_augment.py); other tasks use the single/pair value.
RECIPE_COPIES = {
    "sst2": 20, "qnli": 20, "mrpc": 30, "cola": 30, "stsb": 30, "rte": 30,
    "mnli": 10, "qqp": 10,
}  # fmt: skip
SINGLE_COPIES, PAIR_COPIES = 20, 30
SINGLE_SUBSTITUTE_PROB, PAIR_SUBSTITUTE_PROB = 0.4, 0.3  # [A-PT]


@dataclass(frozen=True)
class AugmentSettings:
    """Resolved settings of one task's augmentation (see ``resolve``); part of the cache key."""

    copies: int
    substitute_prob: float
    mask_prob: float
    ngram_prob: float
    neighbours: int
    seed: int

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ValueError(f"augmentation copies must be >= 0, got {self.copies}")
        for name in ("substitute_prob", "mask_prob", "ngram_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {value}")
        if self.neighbours < 1:
            raise ValueError(f"augmentation neighbours must be >= 1, got {self.neighbours}")


def default_copies(task_name: str, is_pair: bool) -> int:
    return RECIPE_COPIES.get(task_name, PAIR_COPIES if is_pair else SINGLE_COPIES)


def default_substitute_prob(is_pair: bool) -> float:
    return PAIR_SUBSTITUTE_PROB if is_pair else SINGLE_SUBSTITUTE_PROB


def split_words(text: str) -> list[str]:
    return _PIECE.findall(text)


def vocabulary_words(texts: Iterable[str], *, lowercase: bool) -> set[str]:
    """Every alphabetic word of ``texts`` (the candidates for substitution)."""
    words = set()
    for text in texts:
        for piece in split_words(text):
            if piece.isalpha():
                words.add(piece.lower() if lowercase else piece)
    return words


def _normal(text: str) -> str:
    return " ".join(split_words(text))


class Augmenter:
    """Makes ``copies`` variants of each row; ``neighbours`` maps a word to its replacements."""

    def __init__(
        self,
        settings: AugmentSettings,
        neighbours: Mapping[str, Sequence[str]],
        *,
        mask_token: str,
        lowercase: bool,
    ) -> None:
        self.settings = settings
        self.neighbours = neighbours
        self.mask_token = mask_token
        self.lowercase = lowercase

    def _word(self, rng: random.Random, piece: str) -> str:
        s = self.settings
        key = piece.lower() if self.lowercase else piece
        draw = rng.random()
        if draw < s.mask_prob:
            return self.mask_token
        if draw < s.mask_prob + s.substitute_prob:
            candidates = self.neighbours.get(key)
            if candidates:
                return rng.choice(list(candidates[: s.neighbours]))
        return piece

    def _text(self, rng: random.Random, text: str, *, ngrams: bool) -> str:
        pieces = [self._word(rng, p) if p.isalpha() else p for p in split_words(text)]
        if ngrams and len(pieces) > 1 and rng.random() < self.settings.ngram_prob:
            n = rng.randint(1, min(5, len(pieces)))
            start = rng.randint(0, len(pieces) - n)
            pieces = pieces[start : start + n]
        return " ".join(pieces)

    def augment(
        self, text_a: Sequence[str], text_b: Sequence[str] | None, labels: Sequence
    ) -> dict[str, list]:
        """Columns ``text_a`` (``text_b``), ``label`` and ``source`` (the row each copy came
        from) of the augmented rows, copies of a row next to each other. A copy equal to its
        source row, or to an earlier copy of it, is left out: it adds no new example."""
        rng = random.Random(self.settings.seed)
        is_pair = text_b is not None
        out: dict[str, list] = {"text_a": [], "label": [], "source": []}
        if is_pair:
            out["text_b"] = []
        for row, label in enumerate(labels):
            seen = {(_normal(text_a[row]), _normal(text_b[row]) if is_pair else None)}
            for _ in range(self.settings.copies):
                a = self._text(rng, text_a[row], ngrams=not is_pair)
                b = self._text(rng, text_b[row], ngrams=False) if is_pair else None
                if (a, b) in seen or not a.strip() or (is_pair and not b.strip()):
                    continue
                seen.add((a, b))
                out["text_a"].append(a)
                if is_pair:
                    out["text_b"].append(b)
                out["label"].append(label)
                out["source"].append(row)
        return out
