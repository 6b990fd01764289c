"""Store URLs with secrets in them: written as ``${NAME}`` in sweep files and ``--set``,
expanded from the environment only where a connection is opened. So ``sweep.json``,
``summary.json``, MLflow params, Ray's runtime environment and job entrypoints hold the
reference, never the password."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from orchestrator.errors import UserInputError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(url: str) -> str:
    """``url`` with every ``${NAME}`` replaced by the environment variable NAME."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise UserInputError(
                f"environment variable {name} (referenced by a store URL) is not set here"
            )
        return os.environ[name]

    return _REFERENCE.sub(value, url)


def references(url: str) -> list[str]:
    return _REFERENCE.findall(url)


def check_no_plain_password(url: str, key: str) -> None:
    """A password written into a URL would be recorded with the sweep: refuse it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password and not _REFERENCE.fullmatch(password):
        raise UserInputError(
            f"{key} holds a password in plain text: write it as ${{NAME}} (e.g. "
            f"postgresql://user:${{OPTUNA_DB_PASSWORD}}@host/db) and export NAME, so it never "
            "lands in sweep.json, summary.json or MLflow"
        )
