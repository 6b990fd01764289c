"""Names users choose (tasks, sweeps) become folder names, MLflow experiment and model names,
Optuna study names and parts of MLflow filter strings. They must be plain identifiers: no path
separators, no quotes, no spaces, nothing that climbs out of a folder."""

from __future__ import annotations

import re

from orchestrator.errors import UserInputError

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RULE = "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"


def is_identifier(value: object) -> bool:
    return (
        isinstance(value, str)
        and _IDENTIFIER.fullmatch(value) is not None
        and ".." not in value
        and not value.endswith(".")
    )


def check_identifier(value: object, what: str) -> str:
    """``value`` itself, or a UserInputError naming ``what`` and the rule."""
    if not is_identifier(value):
        raise UserInputError(f"{what} must be {RULE}, got {value!r}")
    return value  # type: ignore[return-value]
