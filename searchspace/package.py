"""The student package: one folder that classifies raw text with nothing else at hand.

Files: ``genotype.json``, ``student_config.json``, ``student.safetensors`` (the weights),
``task.json`` (task name, input columns, label names or null for regression, max sequence
length, scores) and ``tokenizer/`` (the teacher's tokenizer files). JSON and safetensors only:
loading a package never unpickles anything. A run folder of ``adabert run`` is a package with
more files beside these.

The tokenizer is read by the caller (this package stays free of frameworks); ``check_tokenizer``
says whether it fits the student.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from searchspace.config import SupernetConfig
from searchspace.derived import DerivedStudent
from searchspace.genotype import Genotype

PACKAGE_FORMAT = 1
GENOTYPE_FILE = "genotype.json"
CONFIG_FILE = "student_config.json"
WEIGHTS_FILE = "student.safetensors"
TASK_FILE = "task.json"
TOKENIZER_DIR = "tokenizer"
REQUIRED_FILES = (GENOTYPE_FILE, CONFIG_FILE, WEIGHTS_FILE, TASK_FILE)
# The encoding of a student_config.json without "pair_encoding" (the paper's, the only one then).
LEGACY_PAIR_ENCODING = "joint"


class PackageError(ValueError):
    """A folder that is not a usable student package; the message names the problem."""


@dataclass(frozen=True)
class TaskInfo:
    """What a student needs to know about its task to read raw text and name its answers."""

    task: str
    text_columns: tuple[str, ...]
    labels: tuple[str, ...] | None  # None: a regression task (one score per input)
    max_seq_length: int
    metric: str = ""
    score: float | None = None
    teacher_score: float | None = None
    format: int = PACKAGE_FORMAT

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["text_columns"] = list(self.text_columns)
        data["labels"] = None if self.labels is None else list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "task.json") -> TaskInfo:
        if not isinstance(data, dict):
            raise PackageError(f"{source} must hold a JSON object")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        for key in ("task", "text_columns", "labels", "max_seq_length"):
            if key not in values:
                raise PackageError(f"{source} has no '{key}'")
        columns = values["text_columns"]
        if not (
            isinstance(columns, list)
            and len(columns) in (1, 2)
            and all(isinstance(c, str) and c for c in columns)
        ):
            raise PackageError(f"{source}: text_columns must be 1 or 2 column names")
        labels = values["labels"]
        if labels is not None and not (
            isinstance(labels, list)
            and len(labels) >= 2
            and all(isinstance(n, str) for n in labels)
        ):
            raise PackageError(f"{source}: labels must be null or 2 or more label names")
        length = values["max_seq_length"]
        if not isinstance(length, int) or length < 4:
            raise PackageError(f"{source}: max_seq_length must be an integer >= 4")
        if values.get("format", PACKAGE_FORMAT) != PACKAGE_FORMAT:
            raise PackageError(
                f"{source}: package format {values.get('format')!r}, this version reads "
                f"{PACKAGE_FORMAT}"
            )
        values["text_columns"] = tuple(columns)
        values["labels"] = None if labels is None else tuple(labels)
        return cls(**values)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise PackageError(f"{path.parent} is not a student package: it has no {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"{path} is not valid JSON: {error}") from error


def write_student(folder: str | Path, *, student: DerivedStudent, genotype: Genotype) -> None:
    """genotype.json, student_config.json and student.safetensors: all ``load_student`` needs
    (no supernet, no teacher, no pickle)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / GENOTYPE_FILE).write_text(genotype.to_json() + "\n", encoding="utf-8")
    _write_json(folder / CONFIG_FILE, student.config.to_dict())
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))


def write_task_info(folder: str | Path, info: TaskInfo) -> None:
    _write_json(Path(folder) / TASK_FILE, info.to_dict())


def read_task_info(folder: str | Path) -> TaskInfo:
    path = Path(folder) / TASK_FILE
    return TaskInfo.from_dict(_read_json(path), source=str(path))


def load_student(folder: str | Path) -> DerivedStudent:
    """The retrained student of a package or run folder, in eval mode; every mismatch between
    genotype, config and weights is a ``PackageError`` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        genotype = Genotype.from_json(json.dumps(_read_json(folder / GENOTYPE_FILE)))
    except (ValueError, KeyError, TypeError) as error:
        if isinstance(error, PackageError):
            raise
        raise PackageError(f"{folder / GENOTYPE_FILE} is not a valid genotype: {error}") from error
    config_data = _read_json(folder / CONFIG_FILE)
    if isinstance(config_data, dict) and "pair_encoding" not in config_data:
        # Saved before pair encodings existed: those students were all trained "joint".
        config_data = {**config_data, "pair_encoding": LEGACY_PAIR_ENCODING}
    try:
        config = SupernetConfig.from_dict(config_data)
        student = DerivedStudent(config, genotype)
    except (ValueError, TypeError) as error:
        raise PackageError(f"{folder / CONFIG_FILE}: {error}") from error
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise PackageError(f"{folder} is not a student package: it has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise PackageError(f"{weights} cannot be read: {error}") from error
    expected = student.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PackageError(
            f"{weights} does not fit {GENOTYPE_FILE}: "
            + "; ".join(
                part
                for part in (
                    f"{len(missing)} missing tensor(s) (e.g. {missing[0]})" if missing else "",
                    f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                )
                if part
            )
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise PackageError(
                f"{weights} does not fit {CONFIG_FILE}: {name} is {tuple(tensor.shape)}, "
                f"the student needs {tuple(expected[name].shape)}"
            )
    student.load_state_dict(state)
    student.eval()
    return student


def check_tokenizer(student: DerivedStudent, vocabulary_size: int, *, source: str) -> None:
    """A tokenizer whose ids run past the student's embedding table would index out of it."""
    rows = student.config.vocab_size
    if vocabulary_size > rows:
        raise PackageError(
            f"{source} has {vocabulary_size} tokens but the student embeds {rows}: "
            "it is not the tokenizer this student was trained with"
        )


def is_package(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and all((folder / name).is_file() for name in REQUIRED_FILES)
