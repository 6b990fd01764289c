"""Task registry: the GLUE tasks as HF ``run_glue`` sees them, plus user-defined tasks.

A ``TaskSpec`` is plain data: the column names of its text and labels, its label set, its
metrics, where the HF hub keeps it and how the original GLUE TSV files lay it out. Data loading
(``orchestrator.data``) and evaluation (``orchestrator.metrics``) read everything from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from orchestrator.errors import UserInputError

# Every metric name compute_metrics knows, in HF's GLUE metric spelling.
SUPPORTED_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearmanr")


@dataclass(frozen=True)
class GlueTsvLayout:
    """How one task sits in the GLUE download-script folder (``<folder>/train.tsv`` etc.).

    Columns are a header name (files with a header) or a 0-based index (CoLA has no header).
    ``raw_labels`` are the label strings as written in the TSV, in label-id order; None for
    regression, where the column holds a float.
    """

    folder: str
    has_header: bool
    text_a: str | int
    text_b: str | int | None
    label: str | int
    raw_labels: tuple[str, ...] | None
    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    # Headerless files carry no field count of their own: every row must have this many.
    num_fields: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task: columns, labels and metrics, following HF ``run_glue`` conventions.

    ``label_names`` is None for regression. ``metrics`` are reported in this order and the
    first is the one model selection maximises.
    """

    name: str
    text_a: str
    text_b: str | None
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    hub_path: str | None = None
    hub_config: str | None = None
    validation_split: str = "validation"
    label_column: str = "label"
    glue: GlueTsvLayout | None = None

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    @property
    def num_labels(self) -> int:
        # One output unit for regression, as HF's num_labels=1 convention.
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def _glue(
    name: str,
    text_a: str,
    text_b: str | None,
    label_names: tuple[str, ...] | None,
    metrics: tuple[str, ...],
    layout: GlueTsvLayout,
    validation_split: str = "validation",
) -> TaskSpec:
    return TaskSpec(
        name=name,
        text_a=text_a,
        text_b=text_b,
        label_names=label_names,
        metrics=metrics,
        hub_path="nyu-mll/glue",
        hub_config=name,
        validation_split=validation_split,
        glue=layout,
    )


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

# Label names are the ClassLabel names of the HF hub's nyu-mll/glue, in id order; the TSV raw
# labels map onto the same ids (RTE/QNLI spell them out, the others write 0/1).
GLUE_TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "cola": _glue(
            "cola",
            "sentence",
            None,
            ("unacceptable", "acceptable"),
            ("matthews_correlation",),
            GlueTsvLayout("CoLA", False, 3, None, 1, _BINARY, num_fields=4),
        ),
        "sst2": _glue(
            "sst2",
            "sentence",
            None,
            ("negative", "positive"),
            ("accuracy",),
            GlueTsvLayout("SST-2", True, "sentence", None, "label", _BINARY),
        ),
        "mrpc": _glue(
            "mrpc",
            "sentence1",
            "sentence2",
            ("not_equivalent", "equivalent"),
            ("f1", "accuracy"),
            GlueTsvLayout("MRPC", True, "#1 String", "#2 String", "Quality", _BINARY),
        ),
        "stsb": _glue(
            "stsb",
            "sentence1",
            "sentence2",
            None,
            ("pearson", "spearmanr"),
            GlueTsvLayout("STS-B", True, "sentence1", "sentence2", "score", None),
        ),
        "qqp": _glue(
            "qqp",
            "question1",
            "question2",
            ("not_duplicate", "duplicate"),
            ("f1", "accuracy"),
            GlueTsvLayout("QQP", True, "question1", "question2", "is_duplicate", _BINARY),
        ),
        "mnli": _glue(
            "mnli",
            "premise",
            "hypothesis",
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            GlueTsvLayout(
                "MNLI",
                True,
                "sentence1",
                "sentence2",
                "gold_label",
                ("entailment", "neutral", "contradiction"),
                dev_file="dev_matched.tsv",
            ),
            validation_split="validation_matched",
        ),
        "qnli": _glue(
            "qnli",
            "question",
            "sentence",
            _NLI2,
            ("accuracy",),
            GlueTsvLayout("QNLI", True, "question", "sentence", "label", _NLI2),
        ),
        "rte": _glue(
            "rte",
            "sentence1",
            "sentence2",
            _NLI2,
            ("accuracy",),
            GlueTsvLayout("RTE", True, "sentence1", "sentence2", "label", _NLI2),
        ),
        "wnli": _glue(
            "wnli",
            "sentence1",
            "sentence2",
            ("not_entailment", "entailment"),
            ("accuracy",),
            GlueTsvLayout("WNLI", True, "sentence1", "sentence2", "label", _BINARY),
        ),
    }
)


def _normalise(name: str) -> str:
    # "SST-2", "sts_b" and " MRPC " all name registry entries; GLUE folders use the dash.
    return name.strip().lower().replace("-", "").replace("_", "")


def get_task(name: str) -> TaskSpec:
    """The registered task ``name`` (case-insensitive; "SST-2", "sts-b" accepted).

    Raises:
        UserInputError: ``name`` is not a registered task.
    """
    task = GLUE_TASKS.get(_normalise(name))
    if task is None:
        raise UserInputError(f"unknown task '{name}'; known tasks: {', '.join(GLUE_TASKS)}")
    return task


def custom_task(
    name: str,
    *,
    text_a: str,
    text_b: str | None = None,
    labels: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> TaskSpec:
    """A user task read from local files (no hub, no GLUE layout).

    Args:
        name: free-form task name (used in run folder names and cache keys).
        text_a: column holding the first (or only) sentence.
        text_b: column holding the second sentence; None for single-sentence tasks.
        labels: the label values in id order (file labels may be these strings or ids);
            None makes the task a regression on a float label.
        metric: the primary metric. Classification accepts accuracy, f1 (reported with
            accuracy, as HF does for MRPC/QQP) and matthews_correlation; regression accepts
            pearson and spearmanr (both reported). Because "accuracy" is the config default, a
            regression task given "accuracy" falls back to pearson rather than failing; any
            other classification metric on a regression task is an error.

    Raises:
        UserInputError: an empty name/column, duplicate or too few labels, or a metric that
            does not fit the task.
    """
    if not name.strip() or not text_a.strip() or (text_b is not None and not text_b.strip()):
        raise UserInputError(f"custom task '{name}' needs a non-empty name and column names")
    if metric not in SUPPORTED_METRICS:
        raise UserInputError(
            f"unknown metric '{metric}' for task '{name}'; known: {', '.join(SUPPORTED_METRICS)}"
        )
    label_names = None if labels is None else tuple(str(label) for label in labels)
    if label_names is None:
        if metric == "accuracy":
            metric = "pearson"
        if metric not in REGRESSION_METRICS:
            raise UserInputError(
                f"metric '{metric}' needs class labels but task '{name}' is a regression "
                f"(no labels); use {' or '.join(REGRESSION_METRICS)}"
            )
        metrics = (metric, *(m for m in REGRESSION_METRICS if m != metric))
    else:
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise UserInputError(
                f"task '{name}' needs at least two distinct labels, got {list(label_names)}"
            )
        if metric not in CLASSIFICATION_METRICS:
            raise UserInputError(
                f"metric '{metric}' is for regression but task '{name}' has labels; "
                f"use one of {', '.join(CLASSIFICATION_METRICS)}"
            )
        metrics = ("f1", "accuracy") if metric == "f1" else (metric,)
    return TaskSpec(
        name=name,
        text_a=text_a,
        text_b=text_b,
        label_names=label_names,
        metrics=metrics,
    )
