"""Task data: load train/dev splits (local files, GLUE TSV folders or the HF hub) and tokenise them.

Every loader returns the same canonical columns, ``text_a``, ``text_b`` (pair tasks only) and
``label`` (int64 class id, or float32 for regression), so nothing downstream knows where the
data came from. ``tokenize_for_distillation`` then adds the teacher's joint encoding and the
student's two separately encoded sentences. With teacher.py, the only module that imports
``datasets``/``transformers``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, Features, Value

from orchestrator.errors import UserInputError
from orchestrator.tasks.registry import GlueTsvLayout, TaskSpec

# Extension -> datasets packaged builder; ".tsv" is read as GLUE TSV when it has the task's
# GLUE layout, otherwise by the csv builder with a tab delimiter.
FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}
_DEV_STEMS = ("dev", "validation")
# What tokenize_for_distillation produces: teacher inputs, student inputs, labels.
TOKENISED_COLUMNS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "input_ids_a",
    "attention_mask_a",
    "input_ids_b",
    "attention_mask_b",
    "labels",
)


def load_task_data(
    task: TaskSpec,
    *,
    data_dir: str | Path | None = None,
    train_file: str | Path | None = None,
    dev_file: str | Path | None = None,
    text_a: str | None = None,
    text_b: str | None = None,
    label_column: str | None = None,
    max_train_samples: int | None = None,
    max_dev_samples: int | None = None,
    seed: int = 0,
) -> dict[str, Dataset]:
    """The task's train and dev splits in canonical columns.

    Sources, first match wins: explicit ``train_file`` + ``dev_file``; ``data_dir`` (a GLUE
    folder, the GLUE root holding it, or a folder with ``train.*`` and ``dev.*``/
    ``validation.*``); the HF hub (``task.hub_path``).

    Args:
        task: the task (columns, label set, GLUE layout, hub location).
        data_dir, train_file, dev_file: local sources, see above.
        text_a, text_b, label_column: column names in local CSV/JSON/Parquet files; default
            to the task's HF column names and "label". Ignored for GLUE TSV and the hub.
        max_train_samples, max_dev_samples: keep a random subset of this many rows.
        seed: seed of that subset (same seed, same rows).

    Returns:
        ``{"train": Dataset, "validation": Dataset}``.

    Raises:
        UserInputError: missing or unreadable files, missing columns, bad rows or labels, an
            unreachable hub; the message names the file and the problem on one line.
    """
    columns = (
        text_a or task.text_a,
        (text_b or task.text_b) if task.is_pair else None,
        label_column or task.label_column,
    )
    if train_file is not None or dev_file is not None:
        if train_file is None or dev_file is None:
            raise UserInputError(
                f"task '{task.name}' needs both train_file and dev_file, got "
                f"train_file={train_file} dev_file={dev_file}"
            )
        splits = {
            "train": _read_file(_existing(train_file, "train_file"), task, columns),
            "validation": _read_file(_existing(dev_file, "dev_file"), task, columns),
        }
    elif data_dir is not None:
        splits = _read_dir(Path(data_dir), task, columns)
    else:
        splits = _read_hub(task)
    return {
        "train": _subsample(splits["train"], max_train_samples, seed, "max_train_samples"),
        "validation": _subsample(splits["validation"], max_dev_samples, seed, "max_dev_samples"),
    }


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} {path} does not exist or is not a file")
    return path


def _subsample(dataset: Dataset, limit: int | None, seed: int, name: str) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise UserInputError(f"{name} must be >= 1, got {limit}")
    return dataset.shuffle(seed=seed).select(range(limit)).flatten_indices()


# --- sources -------------------------------------------------------------------------------


def _read_dir(data_dir: Path, task: TaskSpec, columns: tuple) -> dict[str, Dataset]:
    if not data_dir.is_dir():
        raise UserInputError(f"data_dir {data_dir} does not exist or is not a directory")
    layout = task.glue
    if layout is not None:
        # Accept both the task folder itself and the GLUE root that holds it.
        for folder in (data_dir, data_dir / layout.folder):
            train, dev = folder / layout.train_file, folder / layout.dev_file
            if train.is_file() and dev.is_file():
                return {
                    "train": _read_file(train, task, columns),
                    "validation": _read_file(dev, task, columns),
                }
    train, dev = _find_split(data_dir, ("train",)), _find_split(data_dir, _DEV_STEMS)
    if train is None or dev is None:
        glue = (
            "" if layout is None else f"{layout.folder}/{layout.train_file} + {layout.dev_file} or "
        )
        raise UserInputError(
            f"data_dir {data_dir} holds no train/dev files: expected {glue}train.* and "
            f"dev.* or validation.* with an extension in {', '.join(FILE_FORMATS)}"
        )
    return {"train": _read_file(train, task, columns), "validation": _read_file(dev, task, columns)}


def _find_split(folder: Path, stems: Sequence[str]) -> Path | None:
    found = [
        folder / f"{stem}{ext}"
        for stem in stems
        for ext in FILE_FORMATS
        if (folder / f"{stem}{ext}").is_file()
    ]
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise UserInputError(f"data_dir {folder} has several candidate files ({names}): keep one")
    return found[0] if found else None


def _read_hub(task: TaskSpec) -> dict[str, Dataset]:
    if task.hub_path is None:
        raise UserInputError(
            f"task '{task.name}' is not on the hub: pass train_file and dev_file, or data_dir"
        )
    where = f"{task.hub_path}:{task.hub_config}"
    try:
        loaded = datasets.load_dataset(task.hub_path, task.hub_config)
    except OSError as error:  # ConnectionError, and a dataset missing offline, are OSErrors
        raise UserInputError(
            f"the HF hub is unreachable for {where} ({type(error).__name__}); pass --data-dir "
            f"with the GLUE TSV files or --set task.train_file/dev_file"
        ) from error
    columns = (task.text_a, task.text_b, task.label_column)
    return {
        "train": _canonical(loaded["train"], task, columns, f"hub {where} train"),
        "validation": _canonical(
            loaded[task.validation_split], task, columns, f"hub {where} {task.validation_split}"
        ),
    }


def _read_file(path: Path, task: TaskSpec, columns: tuple) -> Dataset:
    if path.suffix.lower() == ".tsv" and path.stat().st_size and _has_glue_layout(path, task):
        return _read_glue_tsv(path, task, task.glue)
    return _canonical(_load_table(path), task, columns, str(path))


def _load_table(path: Path) -> Dataset:
    """A CSV/TSV/JSONL/Parquet file as a Dataset, every failure one ``UserInputError``."""
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise UserInputError(
            f"{path}: unsupported file type '{suffix}', use one of {', '.join(FILE_FORMATS)}"
        )
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is empty (no data rows)")
    # Tab-separated files carry stray quotes in their text: quoting off, as for GLUE.
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    try:
        return datasets.load_dataset(
            FILE_FORMATS[suffix], data_files=str(path), split="train", **options
        )
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as error:
        # A header-only CSV surfaces as ValueError('Instruction "train" corresponds to no data!').
        if "corresponds to no data" in str(error):
            raise UserInputError(f"{path} has no data rows") from error
        cause = error.__cause__ or error
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise UserInputError(f"cannot read {path}: {reason}") from error


def read_text_columns(path: str | Path, columns: Sequence[str]) -> dict[str, list[str]]:
    """The named text columns of a user's file (for prediction): every row, in file order."""
    path = _existing(path, "input file")
    with progress_bars(False):
        table = _load_table(path)
    if len(table) == 0:
        raise UserInputError(f"{path} has no data rows")
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise UserInputError(
            f"{path} has no column '{missing[0]}' (this student reads "
            f"{', '.join(columns)}); available columns: {', '.join(table.column_names)}"
        )
    return {
        name: _texts(list(table[name]), str(path), lambda i: f"row {i + 1}", name)
        for name in columns
    }


def write_table(path: str | Path, columns: dict[str, list]) -> None:
    """Write columns as CSV, TSV, JSON lines or Parquet, by the file's extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise UserInputError(
            f"{path}: unsupported output type '{suffix}', use one of {', '.join(FILE_FORMATS)}"
        )
    table = Dataset.from_dict(columns)
    with progress_bars(False):
        if suffix == ".parquet":
            table.to_parquet(str(path))
        elif suffix in (".jsonl", ".json"):
            table.to_json(str(path), lines=True, force_ascii=False)
        else:
            table.to_csv(str(path), index=False, sep="\t" if suffix == ".tsv" else ",")


def _canonical(table: Dataset, task: TaskSpec, columns: tuple, source: str) -> Dataset:
    if len(table) == 0:
        raise UserInputError(f"{source} has no data rows")
    missing = [name for name in columns if name is not None and name not in table.column_names]
    if missing:
        raise UserInputError(
            f"{source} has no column '{missing[0]}'; available columns: "
            f"{', '.join(table.column_names)}"
        )
    text_a, text_b, label = columns
    return _build(
        task,
        list(table[text_a]),
        None if text_b is None else list(table[text_b]),
        list(table[label]),
        source,
        lambda i: f"row {i + 1}",
        column_names=columns,
    )


# --- GLUE TSV ------------------------------------------------------------------------------


def _lines(path: Path, *, first_only: bool = False) -> list[str]:
    """The file's lines, cut at line feeds only; a trailing carriage return is left on."""
    try:
        # utf-8-sig drops MRPC's byte-order mark. newline="" plus split("\n") cut lines on
        # line feeds only: universal newlines or str.splitlines would also break on \r, \x1c,
        # \u2028 and friends, which can sit inside a sentence.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            text = handle.readline() if first_only else handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {path}: {error}") from error
    return text.split("\n")


def _has_glue_layout(path: Path, task: TaskSpec) -> bool:
    layout = task.glue
    if layout is None:
        return False
    first = _lines(path, first_only=True)[0].rstrip("\r").split("\t")
    if layout.has_header:
        wanted = (layout.text_a, layout.text_b, layout.label)
        return all(name in first for name in wanted if name is not None)
    # Headerless (CoLA): recognised by its field count and a known label in the label field.
    return len(first) == layout.num_fields and first[layout.label] in (layout.raw_labels or ())


def _read_glue_tsv(path: Path, task: TaskSpec, layout: GlueTsvLayout) -> Dataset:
    """One GLUE TSV file, split on tabs with no quoting (sentences hold stray ")."""
    rows = [
        (number, line.rstrip("\r").split("\t"))
        for number, line in enumerate(_lines(path), start=1)
        if line.strip("\r")
    ]
    if layout.has_header:
        header, rows = rows[0][1], rows[1:]
        width = len(header)
        wanted = (layout.text_a, layout.text_b, layout.label)
        index = [None if name is None else header.index(name) for name in wanted]
    else:
        width = layout.num_fields
        index = [layout.text_a, layout.text_b, layout.label]
    if not rows:
        raise UserInputError(f"{path} has no data rows")
    for number, fields in rows:
        if len(fields) != width:
            raise UserInputError(
                f"{path} line {number}: expected {width} tab-separated fields, found {len(fields)}"
            )
    ia, ib, il = index
    return _build(
        task,
        [fields[ia] for _, fields in rows],
        None if ib is None else [fields[ib] for _, fields in rows],
        [fields[il] for _, fields in rows],
        str(path),
        lambda i: f"line {rows[i][0]}",
        column_names=(str(layout.text_a), str(layout.text_b), str(layout.label)),
        raw_labels=layout.raw_labels,
    )


# --- canonical columns ---------------------------------------------------------------------


def _build(
    task: TaskSpec,
    texts_a: list,
    texts_b: list | None,
    labels: list,
    source: str,
    where: Callable[[int], str],
    *,
    column_names: tuple,
    raw_labels: tuple[str, ...] | None = None,
) -> Dataset:
    data: dict[str, list] = {"text_a": _texts(texts_a, source, where, column_names[0])}
    features = {"text_a": Value("string")}
    if texts_b is not None:  # every pair task reads a text_b column
        data["text_b"] = _texts(texts_b, source, where, column_names[1])
        features["text_b"] = Value("string")
    data["label"] = _labels(labels, task, source, where, raw_labels)
    features["label"] = Value("float32" if task.is_regression else "int64")
    return Dataset.from_dict(data, features=Features(features))


def _texts(values: list, source: str, where: Callable[[int], str], column: str) -> list[str]:
    texts = []
    for i, value in enumerate(values):
        text = "" if value is None else str(value)
        if not text.strip():
            raise UserInputError(f"{source} {where(i)}: empty text in column '{column}'")
        texts.append(text)
    return texts


def _labels(
    values: list,
    task: TaskSpec,
    source: str,
    where: Callable[[int], str],
    raw_labels: tuple[str, ...] | None,
) -> list:
    if task.label_names is None:
        return [_score(value, source, where(i)) for i, value in enumerate(values)]
    # GLUE TSV labels are exactly their raw strings; other sources may hold either the label
    # name or its integer id (the HF hub stores ids).
    names = {name: i for i, name in enumerate(raw_labels or task.label_names)}
    ids = []
    for i, value in enumerate(values):
        label = _class_id(value, names, allow_ids=raw_labels is None)
        if label is None:
            raise UserInputError(
                f"{source} {where(i)}: label {value!r} is not one of "
                f"{', '.join(names)} (task '{task.name}')"
            )
        ids.append(label)
    return ids


def _class_id(value: Any, names: dict[str, int], *, allow_ids: bool) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    # Names first: a task labelled "1".."5" means the strings, not ids 1..5.
    text = value.strip() if isinstance(value, str) else str(value)
    if text in names:
        return names[text]
    if not allow_ids:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and text.lstrip("-").isdigit():
        value = int(text)
    if isinstance(value, int) and 0 <= value < len(names):
        return value
    return None


def _score(value: Any, source: str, where: str) -> float:
    try:
        score = math.nan if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise UserInputError(f"{source} {where}: non-numeric regression label {value!r}")
    return score


# --- tokenisation and fingerprints ---------------------------------------------------------


def check_tokenizer(tokenizer: Any) -> None:
    """Raise UserInputError unless the tokenizer can pad and frame sentences as BERT does."""
    for attribute, role in (
        ("pad_token_id", "pad"),
        ("cls_token_id", "cls ([CLS]/<s>)"),
        ("sep_token_id", "sep ([SEP]/</s>)"),
    ):
        if getattr(tokenizer, attribute, None) is None:
            raise UserInputError(
                f"tokenizer {type(tokenizer).__name__} has no {role} token; the teacher and "
                f"the student need pad, cls and sep tokens"
            )


def tokenize_for_distillation(
    dataset: Dataset, tokenizer: Any, *, max_seq_length: int, is_pair: bool
) -> Dataset:
    """Teacher and student inputs for every row, padded to ``max_seq_length``.

    Teacher columns (``input_ids``, ``attention_mask``, ``token_type_ids``) encode the pair
    jointly as BERT does; student columns (``input_ids_a``/``attention_mask_a``,
    ``input_ids_b``/``attention_mask_b``) encode each sentence on its own, with the special
    tokens, because the student cell takes the two sentences as two input nodes. Single-sentence
    tasks feed the same sentence to both nodes (b is a copy of a). ``labels`` comes from
    ``label``; the text columns are dropped. Every sequence column is (N, max_seq_length).
    """
    check_tokenizer(tokenizer)
    if max_seq_length < 4:
        raise UserInputError(f"max_seq_length must be >= 4, got {max_seq_length}")
    needed = ["text_a", "label"] + (["text_b"] if is_pair else [])
    missing = [name for name in needed if name not in dataset.column_names]
    if missing:
        raise UserInputError(
            f"dataset has no column '{missing[0]}' to tokenise; available: "
            f"{', '.join(dataset.column_names)}"
        )
    options = {"truncation": True, "padding": "max_length", "max_length": max_seq_length}

    def encode(batch: dict[str, list]) -> dict[str, list]:
        second = batch["text_b"] if is_pair else None
        joint = tokenizer(batch["text_a"], second, **options)
        first = tokenizer(batch["text_a"], **options)
        other = tokenizer(second, **options) if is_pair else first
        token_types = joint.get("token_type_ids")
        if token_types is None:  # RoBERTa-style tokenizers: a single segment id
            token_types = [[0] * len(ids) for ids in joint["input_ids"]]
        return {
            "input_ids": joint["input_ids"],
            "attention_mask": joint["attention_mask"],
            "token_type_ids": token_types,
            "input_ids_a": first["input_ids"],
            "attention_mask_a": first["attention_mask"],
            "input_ids_b": other["input_ids"],
            "attention_mask_b": other["attention_mask"],
            "labels": batch["label"],
        }

    sequence = datasets.List(Value("int64"), length=max_seq_length)
    features = Features(
        dict.fromkeys(TOKENISED_COLUMNS[:-1], sequence) | {"labels": dataset.features["label"]}
    )
    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, features=features)


def text_columns(dataset: Dataset) -> dict[str, list]:
    """The canonical text and label columns as lists (the augmenter's input)."""
    names = [n for n in ("text_a", "text_b", "label") if n in dataset.column_names]
    return {name: dataset[name] for name in names}


def rows_like(columns: dict[str, list], like: Dataset) -> Dataset:
    """A dataset of ``columns`` with the canonical columns and features of ``like``."""
    names = [n for n in ("text_a", "text_b", "label") if n in like.column_names]
    return Dataset.from_dict(
        {name: columns[name] for name in names},
        features=Features({name: like.features[name] for name in names}),
    )


def with_rows(dataset: Dataset, columns: dict[str, list]) -> Dataset:
    """``dataset`` followed by the rows of ``columns`` (its canonical columns only)."""
    names = [n for n in ("text_a", "text_b", "label") if n in dataset.column_names]
    return datasets.concatenate_datasets(
        [dataset.select_columns(names), rows_like(columns, dataset)]
    )


def data_fingerprint(dataset: Dataset) -> str:
    """A content hash of the text and label columns: equal content, equal hash, in any process.

    ``Dataset._fingerprint`` is random for in-memory datasets, so it cannot key a disk cache.
    Returns the first 16 hex digits of a sha256 over the rows serialised as JSON.
    """
    names = [name for name in ("text_a", "text_b", "label") if name in dataset.column_names]
    digest = hashlib.sha256(json.dumps(names).encode("utf-8"))
    for batch in dataset.select_columns(names).iter(batch_size=4096):
        rows = zip(*(batch[name] for name in names))
        for row in rows:
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Turn datasets' own progress bars off (workers, CI logs, one-line CLI errors) or on."""
    was_enabled = datasets.is_progress_bar_enabled()
    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()
