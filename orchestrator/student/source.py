"""Open a student from wherever it lives, as one ``TextClassifier``.

A reference is a student package or ``adabert run`` folder (eager PyTorch), a folder written by
``adabert export`` (onnxruntime), or an MLflow model URI (``models:/<name>@champion``,
``runs:/<id>/student``), fetched into a temporary folder that lives as long as the student.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import UserInputError
from orchestrator.method.run_folder import INCOMPLETE_SUFFIX
from orchestrator.student.onnx_export import ONNX_FILE
from searchspace.inference import TextClassifier
from searchspace.package import (
    TASK_FILE,
    TOKENIZER_DIR,
    PackageError,
    check_tokenizer,
    is_package,
    load_student,
    read_task_info,
)

MODEL_URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


@dataclass
class OpenedStudent:
    classifier: TextClassifier
    kind: str  # "pytorch" or "onnxruntime"
    folder: Path  # the package or export folder read
    _keep: object = field(default=None, repr=False)  # a downloaded model's temporary folder


def is_onnx_export(folder: Path) -> bool:
    return (folder / ONNX_FILE).is_file() and (folder / TASK_FILE).is_file()


def open_student(reference: str, *, tracking_uri: str | None = None) -> OpenedStudent:
    """Every problem with the reference or the files behind it is one ``UserInputError``."""
    if reference.startswith(MODEL_URI_SCHEMES):
        from orchestrator.sweep.tracking import download_student_package

        keep = tempfile.TemporaryDirectory(prefix="adabert-model-")
        folder = download_student_package(reference, Path(keep.name), tracking_uri=tracking_uri)
        opened = _open_folder(folder, reference)
        opened._keep = keep
        return opened
    folder = Path(reference).expanduser()
    if not folder.exists():
        raise UserInputError(
            f"{reference} is neither a folder nor an MLflow model URI "
            f"({', '.join(MODEL_URI_SCHEMES)}...)"
        )
    return _open_folder(folder, reference)


def _open_folder(folder: Path, reference: str) -> OpenedStudent:
    from orchestrator.teacher.model import load_package_tokenizer

    try:
        if folder.name.endswith(INCOMPLETE_SUFFIX):
            raise PackageError(f"{folder} is an incomplete run folder")
        if not folder.is_dir():
            raise PackageError(f"{reference} is a file, not a student package folder")
        info = read_task_info(folder)
        if not (folder / TOKENIZER_DIR).is_dir():
            raise PackageError(f"{folder} has no {TOKENIZER_DIR}/ folder (the student's tokenizer)")
        tokenizer = load_package_tokenizer(folder / TOKENIZER_DIR)
        if is_onnx_export(folder):
            from orchestrator.student.onnx_export import onnx_forward

            forward, vocabulary = onnx_forward(folder)
            if len(tokenizer) > vocabulary:
                raise PackageError(
                    f"{folder / TOKENIZER_DIR} has {len(tokenizer)} tokens but the model "
                    f"embeds {vocabulary}: it is not the tokenizer this student was trained with"
                )
            return OpenedStudent(TextClassifier(forward, tokenizer, info), "onnxruntime", folder)
        if not is_package(folder):
            raise PackageError(f"{folder} is not a student package (no student.safetensors)")
        student = load_student(folder)
        check_tokenizer(student, len(tokenizer), source=str(folder / TOKENIZER_DIR))
    except PackageError as error:
        raise UserInputError(str(error)) from error
    return OpenedStudent(TextClassifier(student, tokenizer, info), "pytorch", folder)
