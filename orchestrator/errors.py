"""The one exception type for bad user input: the CLI prints it on one line and exits 2."""

from __future__ import annotations


class UserInputError(ValueError):
    """Malformed files, unknown task names, invalid config values, a mismatched teacher.

    The message must name the problem (the file, column, key or value) on a single line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
