"""Raw text in, labels and probabilities out: the one way a packaged student reads text.

Used by ``adabert predict``, the MLflow model and the ONNX runner alike, so they cannot drift
apart. Each sentence is encoded on its own with the tokenizer's special tokens and truncated to
the task's ``max_seq_length``, as in training (``tokenize_for_distillation``). Inputs are
batched in order of length so a batch carries little padding; the ops are mask-aware, so
padding never changes a real token's result and the order of rows does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from searchspace.package import TaskInfo

# (input_ids_a, attention_mask_a, input_ids_b, attention_mask_b) -> logits (B, C)
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Predictions:
    """``labels`` and ``probabilities`` (N, C) for a classifier; ``scores`` (N,) for regression."""

    label_names: tuple[str, ...] | None
    logits: torch.Tensor

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits.float(), dim=-1)

    @property
    def labels(self) -> list[str]:
        if self.label_names is None:
            raise ValueError("a regression student gives scores, not labels")
        return [self.label_names[i] for i in self.logits.argmax(dim=-1).tolist()]

    @property
    def scores(self) -> torch.Tensor:
        return self.logits[:, 0].float()

    def columns(self) -> dict[str, list]:
        """Output columns: ``label`` and ``prob_<label>`` per class, or ``score``."""
        if self.label_names is None:
            return {"score": self.scores.tolist()}
        probabilities = self.probabilities
        columns: dict[str, list] = {"label": self.labels}
        for index, name in enumerate(self.label_names):
            columns[f"prob_{name}"] = probabilities[:, index].tolist()
        return columns


def pad(sequences: Sequence[Sequence[int]], length: int, pad_id: int) -> torch.Tensor:
    rows = [list(s) + [pad_id] * (length - len(s)) for s in sequences]
    return torch.tensor(rows, dtype=torch.long)


def mask(sequences: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    return torch.tensor([[1] * len(s) + [0] * (length - len(s)) for s in sequences])


class TextClassifier:
    """A student forward (eager PyTorch or onnxruntime) behind a tokenizer and a ``TaskInfo``.

    ``tokenizer`` is any callable with the Hugging Face tokenizer interface
    (``tokenizer(texts, truncation=True, max_length=n)["input_ids"]`` and ``pad_token_id``).
    """

    def __init__(self, forward: Forward, tokenizer, info: TaskInfo) -> None:
        self.forward = forward
        self.tokenizer = tokenizer
        self.info = info
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(
            [str(text) for text in texts], truncation=True, max_length=self.info.max_seq_length
        )
        return encoded["input_ids"]

    def batches(
        self, texts_a: Sequence[str], texts_b: Sequence[str] | None, batch_size: int
    ) -> list[tuple[list[int], tuple[torch.Tensor, ...]]]:
        """(row indices, student inputs) per batch; both sentences padded to one length: the
        first cell adds their states position-wise ("joint"), or they are stacked into one
        batch ("siamese")."""
        if self.info.is_pair and texts_b is None:
            raise ValueError(
                f"this student reads pairs ({', '.join(self.info.text_columns)}): give both texts"
            )
        if texts_b is not None and len(texts_b) != len(texts_a):
            raise ValueError(f"{len(texts_a)} first texts but {len(texts_b)} second texts")
        ids_a = self.encode(texts_a)
        ids_b = self.encode(texts_b) if self.info.is_pair else ids_a
        order = sorted(range(len(ids_a)), key=lambda i: max(len(ids_a[i]), len(ids_b[i])))
        batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            a, b = [ids_a[i] for i in rows], [ids_b[i] for i in rows]
            length = max(len(s) for s in a + b)
            inputs = (pad(a, length, self.pad_id), mask(a, length))
            # A single sentence is passed as the same tensors twice: the student (eager or
            # ONNX) then embeds it once.
            inputs += (
                (pad(b, length, self.pad_id), mask(b, length)) if self.info.is_pair else inputs
            )
            batches.append((rows, inputs))
        return batches

    @torch.inference_mode()
    def logits(
        self,
        texts_a: Sequence[str],
        texts_b: Sequence[str] | None = None,
        *,
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """(N, C) logits in the order of the inputs; ``on_batch(rows)`` after every batch."""
        if len(texts_a) == 0:
            raise ValueError("no input texts")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        result: torch.Tensor | None = None
        for rows, inputs in self.batches(texts_a, texts_b, batch_size):
            out = torch.as_tensor(self.forward(*inputs)).float()
            if result is None:
                result = torch.empty(len(texts_a), out.shape[1])
            result[rows] = out
            if on_batch is not None:
                on_batch(len(rows))
        return result

    def predict(
        self,
        texts_a: Sequence[str],
        texts_b: Sequence[str] | None = None,
        *,
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> Predictions:
        logits = self.logits(texts_a, texts_b, batch_size=batch_size, on_batch=on_batch)
        return Predictions(self.info.labels, logits)
