"""Teacher knowledge, computed once and cached: fine-tuned teacher, probes, per-layer probe logits.

A cache entry is a folder keyed by teacher, task, data fingerprints, sequence length and every
setting that changes the result. It holds the fine-tuned teacher (an ordinary HF folder), the
probes and embedding tables (safetensors), and per split one Parquet file of teacher logits
and probe logits, row i belonging to example i of the tokenised split, and, when the task is
augmented, ``augmented.parquet``: the augmented texts with their teacher and probe logits (the
transfer set is the training set plus these rows). Entries are written under a temporary name and
renamed when complete, so a reader never sees half an entry.

The cache root may also be a URI (``s3://...``, ``gs://...``, ``file://...``): the cache shared by
every node of a cluster. Entries are then built or read in a local mirror
(``$ADABERT_LOCAL_CACHE``, default ``~/.cache/adabert/knowledge``) and uploaded with
``meta.json`` last, so a node that finds ``meta.json`` under the URI finds the whole entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file, save_file

from orchestrator import storage
from orchestrator.config import TeacherSection
from orchestrator.progress import EpochCallback, EpochReport, progress_bar
from orchestrator.tasks.augment import Augmenter, AugmentSettings, vocabulary_words
from orchestrator.tasks.registry import TaskSpec
from orchestrator.teacher.model import (
    TEACHER_COLUMNS,
    FineTuneSettings,
    check_teacher_fits,
    count_teacher_forwards,
    embedding_tables,
    fine_tune,
    load_teacher,
    teacher_forward,
    trim_padding,
)
from orchestrator.teacher.neighbours import embedding_neighbours, tokenizer_lowercases
from orchestrator.teacher.probes import pool_layer_features, probe_logits, train_probes

# 2: length-sorted teacher batches (fine-tuning batches differ from format 1's), augmentation.
CACHE_FORMAT = 2
TEXT_COLUMNS = ("text_a", "text_b", "label", "source")
__all__ = ["count_teacher_forwards", "prepare_teacher_knowledge", "TeacherKnowledge"]


@dataclass
class SplitKnowledge:
    logits: torch.Tensor  # (N, C): the fine-tuned teacher's outputs
    probe_logits: torch.Tensor  # (N, M + 1, C): column 0 = embedding-layer probe


@dataclass
class AugmentedKnowledge:
    texts: dict[str, list]  # text_a (text_b), label, source: the row each copy came from
    knowledge: SplitKnowledge


@dataclass
class TeacherKnowledge:
    entry: Path
    teacher_dir: str  # an HF folder holding the fine-tuned teacher and its tokenizer
    train: SplitKnowledge
    dev: SplitKnowledge
    num_parameters: int
    word_embeddings: torch.Tensor
    position_embeddings: torch.Tensor | None
    cache_hit: bool
    meta: dict = field(default_factory=dict)
    augmented: AugmentedKnowledge | None = None
    # The teacher folder as every node can reach it: a URI when the cache is shared that way,
    # else ``teacher_dir``.
    teacher_location: str = ""


@dataclass(frozen=True)
class Augmentation:
    """How to grow the transfer set: the settings, the training texts (``text_a``, ``text_b``
    for pairs, ``label``) and how to tokenise augmented texts into the split's columns."""

    settings: AugmentSettings
    train_texts: dict[str, list]
    tokenize: Callable[[dict[str, list]], dict[str, torch.Tensor]]

    def augment(self, model, tokenizer) -> dict[str, list]:
        texts = self.train_texts
        lowercase = tokenizer_lowercases(tokenizer)
        words = vocabulary_words([*texts["text_a"], *texts.get("text_b", [])], lowercase=lowercase)
        table = model.get_input_embeddings().weight.detach()
        neighbours = embedding_neighbours(
            table, tokenizer.get_vocab(), words, k=self.settings.neighbours
        )
        augmenter = Augmenter(
            self.settings,
            neighbours,
            mask_token=tokenizer.mask_token or tokenizer.unk_token,
            lowercase=lowercase,
        )
        return augmenter.augment(texts["text_a"], texts.get("text_b"), texts["label"])


# The files of a local teacher folder that decide what it computes (weights, config,
# tokenizer); their content, not their path or mtime, identifies the teacher.
IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


def _teacher_identity(reference: str) -> dict:
    """A hub name identifies itself; a local folder by the content of its model and tokenizer
    files: the same teacher installed in two virtualenvs or copied elsewhere is one cache
    entry, and retraining it in place invalidates the cache."""
    path = Path(reference)
    if not path.is_dir():
        return {"hub": reference}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in IDENTITY_SUFFIXES)
    return {"files": [(p.name, _sha256(p)) for p in files]}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(
    reference: str,
    *,
    task: TaskSpec,
    fingerprints: dict[str, str],
    max_seq_length: int,
    settings: TeacherSection,
    seed: int,
    augment: AugmentSettings | None = None,
) -> str:
    identity = {
        "format": CACHE_FORMAT,
        "teacher": _teacher_identity(reference),
        "task": [task.name, list(task.label_names or []), task.is_regression, task.is_pair],
        "data": fingerprints,
        "max_seq_length": max_seq_length,
        "settings": dataclasses.asdict(settings),
        "seed": seed,
        "augment": dataclasses.asdict(augment) if augment and augment.copies else None,
    }
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@torch.no_grad()
def teacher_outputs(
    model, columns: dict[str, torch.Tensor], *, batch_size: int = 64, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher pass over a split: logits (N, C) and pooled layer features (N, M + 1, H).

    Batches hold examples of similar length (sorted by length, cut to the longest of each
    batch), so short examples pay for no padding; rows come back in the split's order."""
    model.eval()
    logits, features = [], []
    order = columns["attention_mask"].sum(dim=1).argsort(stable=True)
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, desc="teacher pass", total=len(starts), enabled=progress):
        index = order[start : start + batch_size]
        batch = trim_padding({k: columns[k][index] for k in TEACHER_COLUMNS})
        output = teacher_forward(model, batch, output_hidden_states=True)
        logits.append(output.logits.float())
        features.append(pool_layer_features(output.hidden_states, batch["attention_mask"]))
    restore = order.argsort()
    return torch.cat(logits)[restore], torch.cat(features)[restore]


def _write_split(
    path: Path, knowledge: SplitKnowledge, key: str, texts: dict[str, list] | None = None
) -> None:
    n, layers, labels = knowledge.probe_logits.shape
    table = pa.table(
        {
            **(texts or {}),
            "logits": pa.FixedSizeListArray.from_arrays(
                pa.array(knowledge.logits.numpy().reshape(-1)), labels
            ),
            "probe_logits": pa.FixedSizeListArray.from_arrays(
                pa.array(knowledge.probe_logits.numpy().reshape(-1)), layers * labels
            ),
        },
        metadata={"adabert": json.dumps({"key": key, "rows": n, "layers": layers})},
    )
    pq.write_table(table, path)


def _read_split(path: Path) -> SplitKnowledge:
    return _split_from_table(pq.read_table(path))


def _read_augmented(path: Path) -> AugmentedKnowledge | None:
    if not path.is_file():
        return None
    table = pq.read_table(path)
    texts = {
        name: table.column(name).to_pylist() for name in TEXT_COLUMNS if name in table.schema.names
    }
    return AugmentedKnowledge(texts, _split_from_table(table))


def _split_from_table(table: pa.Table) -> SplitKnowledge:
    meta = json.loads(table.schema.metadata[b"adabert"])
    n, layers = meta["rows"], meta["layers"]

    def column(name: str) -> torch.Tensor:
        flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return torch.from_numpy(flat.copy())

    logits = column("logits").reshape(n, -1)
    return SplitKnowledge(logits, column("probe_logits").reshape(n, layers, logits.shape[1]))


def _read_entry(entry: Path, reference: str) -> TeacherKnowledge:
    """The cached knowledge of ``entry``. An already fine-tuned teacher is not copied into the
    entry: it is ``reference``, this run's path to it (the key is its content, so the path that
    wrote the entry may be another virtualenv's or another machine's)."""
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    tables = load_file(str(entry / "embeddings.safetensors"))
    teacher_dir = entry / "teacher" if meta["teacher_saved"] else Path(reference)
    return TeacherKnowledge(
        entry=entry,
        teacher_dir=str(teacher_dir),
        train=_read_split(entry / "train.parquet"),
        dev=_read_split(entry / "dev.parquet"),
        num_parameters=int(meta["num_parameters"]),
        word_embeddings=tables["word"],
        position_embeddings=tables.get("position"),
        cache_hit=True,
        meta=meta,
        augmented=_read_augmented(entry / "augmented.parquet"),
    )


def _evaluator(model, dev_columns, task: TaskSpec):
    from orchestrator.tasks.evaluation import logits_to_predictions
    from orchestrator.tasks.metrics import compute_metrics

    def evaluate() -> dict[str, float]:
        logits, _ = teacher_outputs(model, dev_columns)
        predictions = logits_to_predictions(task, logits.numpy())
        metrics = compute_metrics(task, predictions, dev_columns["labels"].numpy())
        return {f"teacher/{name}": value for name, value in metrics.items()}

    return evaluate


def compute_knowledge(
    reference: str,
    tokenizer,
    *,
    task: TaskSpec,
    train_columns: dict[str, torch.Tensor],
    dev_columns: dict[str, torch.Tensor],
    max_seq_length: int,
    settings: TeacherSection,
    seed: int,
    staging: Path,
    augmentation: Augmentation | None = None,
    on_progress: EpochCallback | None = None,
    progress: bool = True,
) -> dict:
    """Cache miss: fine-tune (unless already fine-tuned), train probes, label the augmented
    copies of the training set, write the entry files."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = load_teacher(reference, task=task, fine_tuned=settings.fine_tuned)
    check_teacher_fits(model, tokenizer, reference=reference, max_seq_length=max_seq_length)
    if not settings.fine_tuned and settings.epochs > 0:
        fine_tune(
            model,
            {**{k: train_columns[k] for k in TEACHER_COLUMNS}, "labels": train_columns["labels"]},
            is_regression=task.is_regression,
            settings=FineTuneSettings(
                settings.epochs,
                settings.learning_rate,
                settings.batch_size,
                settings.warmup_ratio,
                settings.weight_decay,
                seed,
            ),
            evaluate=_evaluator(model, dev_columns, task),
            on_progress=on_progress,
            progress=progress,
        )
        model.save_pretrained(staging / "teacher")
        tokenizer.save_pretrained(staging / "teacher")
    fine_tuned_at = time.perf_counter()
    train_logits, train_features = teacher_outputs(model, train_columns, progress=progress)
    dev_logits, dev_features = teacher_outputs(model, dev_columns, progress=progress)
    probes = train_probes(
        train_features,
        train_columns["labels"],
        num_labels=task.num_labels,
        is_regression=task.is_regression,
        epochs=settings.probe_epochs,
        learning_rate=settings.probe_learning_rate,
        seed=seed,
    )
    train = SplitKnowledge(train_logits, probe_logits(probes, train_features))
    dev = SplitKnowledge(dev_logits, probe_logits(probes, dev_features))
    if on_progress is not None:
        on_progress(EpochReport("probes", 1, 1, _probe_metrics(task, dev, dev_columns["labels"])))
    word, position = embedding_tables(model)
    tables = {"word": word} | ({"position": position} if position is not None else {})
    save_file(
        {k: v.contiguous() for k, v in tables.items()}, str(staging / "embeddings.safetensors")
    )
    save_file(
        {k: v.detach().contiguous() for k, v in probes.state_dict().items()},
        str(staging / "probes.safetensors"),
    )
    for name, split in (("train", train), ("dev", dev)):
        _write_split(staging / f"{name}.parquet", split, staging.name)
    knowledge_seconds = time.perf_counter() - fine_tuned_at
    augmented_rows, augment_seconds = 0, 0.0
    if augmentation is not None and augmentation.settings.copies:
        augment_started = time.perf_counter()
        texts = augmentation.augment(model, tokenizer)
        augmented_rows = len(texts["label"])
        if augmented_rows:
            columns = augmentation.tokenize(texts)
            logits, features = teacher_outputs(model, columns, progress=progress)
            _write_split(
                staging / "augmented.parquet",
                SplitKnowledge(logits, probe_logits(probes, features)),
                staging.name,
                texts,
            )
        augment_seconds = time.perf_counter() - augment_started
    return {
        "augmented_rows": augmented_rows,
        # The cache miss's phases, kept so a cache hit can still say what the entry cost.
        "phase_seconds": {
            "fine_tune": fine_tuned_at - started,
            "knowledge": knowledge_seconds,
            "augment": augment_seconds,
        },
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_layers": int(train.probe_logits.shape[1] - 1),
        "teacher_saved": (staging / "teacher").is_dir(),
        "probe_metrics": _probe_metrics(task, dev, dev_columns["labels"]),
    }


def _probe_metrics(task: TaskSpec, dev: SplitKnowledge, labels: torch.Tensor) -> dict[str, float]:
    """Dev score of every teacher layer's probe: shows which layers hold task knowledge."""
    from orchestrator.tasks.evaluation import logits_to_predictions
    from orchestrator.tasks.metrics import compute_metrics

    scores = {}
    for layer in range(dev.probe_logits.shape[1]):
        predictions = logits_to_predictions(task, dev.probe_logits[:, layer].numpy())
        value = compute_metrics(task, predictions, labels.numpy())[task.primary_metric]
        scores[f"probe/layer{layer}_{task.primary_metric}"] = float(value)
    return scores


def prepare_teacher_knowledge(
    reference: str,
    tokenizer,
    *,
    task: TaskSpec,
    train_columns: dict[str, torch.Tensor],
    dev_columns: dict[str, torch.Tensor],
    fingerprints: dict[str, str],
    max_seq_length: int,
    settings: TeacherSection,
    cache_root: Path | str,
    seed: int,
    augmentation: Augmentation | None = None,
    on_progress: EpochCallback | None = None,
    progress: bool = True,
) -> TeacherKnowledge:
    """Read the cache entry for this key, or compute and write it first."""
    key = cache_key(
        reference,
        task=task,
        fingerprints=fingerprints,
        max_seq_length=max_seq_length,
        settings=settings,
        seed=seed,
        augment=augmentation.settings if augmentation else None,
    )
    name = f"{task.name}-{key}"
    shared = str(cache_root) if storage.is_uri(str(cache_root)) else ""
    local_root = local_mirror(shared) if shared else Path(cache_root).resolve()
    entry = local_root / name
    remote = storage.join(shared, name) if shared else ""
    if remote and not (entry / "meta.json").is_file():
        _fetch(remote, entry)
    if (entry / "meta.json").is_file():
        knowledge = _read_entry(entry, reference)
    else:

        def compute(staging: Path) -> None:
            started = time.perf_counter()
            meta = compute_knowledge(
                reference, tokenizer, task=task, train_columns=train_columns,
                dev_columns=dev_columns, max_seq_length=max_seq_length, settings=settings,
                seed=seed, staging=staging, augmentation=augmentation, on_progress=on_progress,
                progress=progress,
            )  # fmt: skip
            meta |= {
                "key": key,
                "teacher_reference": reference,
                "task": task.name,
                "fingerprints": fingerprints,
                "max_seq_length": max_seq_length,
                "seconds": time.perf_counter() - started,
            }
            text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
            (staging / "meta.json").write_text(text)

        _publish(entry, compute)
        knowledge = _read_entry(entry, reference)
        knowledge.cache_hit = False
    if remote:
        if not storage.exists(storage.join(remote, "meta.json")):
            storage.upload(entry, remote, last="meta.json")
        if knowledge.meta.get("teacher_saved"):
            knowledge.teacher_location = storage.join(remote, "teacher")
    knowledge.teacher_location = knowledge.teacher_location or knowledge.teacher_dir
    return knowledge


def local_mirror(shared: str) -> Path:
    """This machine's copy of a shared (URI) cache: one folder per URI."""
    base = os.environ.get("ADABERT_LOCAL_CACHE") or str(Path.home() / ".cache/adabert/knowledge")
    return Path(base).resolve() / hashlib.sha256(shared.encode()).hexdigest()[:16]


def _fetch(remote: str, entry: Path) -> None:
    """Download a complete shared entry (its ``meta.json`` is uploaded last) into the mirror."""
    if storage.exists(storage.join(remote, "meta.json")):
        _publish(entry, lambda staging: storage.download(remote, staging))


def _publish(entry: Path, fill: Callable[[Path], None]) -> None:
    """``fill`` a temporary folder, then rename it to ``entry``: a reader never sees half an
    entry, and a failure leaves nothing behind."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = entry.with_name(f"{entry.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    staging.mkdir()
    try:
        fill(staging)
        try:
            os.rename(staging, entry)
        except OSError:
            # Another process finished the same entry first; its copy is as good as ours.
            if not (entry / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
