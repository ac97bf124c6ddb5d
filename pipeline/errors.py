"""Errors shown to users without a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, option, data): the CLI prints it in one line."""


class ConfigError(UserError):
    """A malformed graph config. The message names the file, the node and the key."""

    def __init__(self, file: str, message: str, node: str | None = None, key: str | None = None) -> None:
        self.file, self.node, self.key = file, node, key
        where = file
        if node is not None:
            where += f": node {node!r}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")


class RecordingError(UserError):
    """A recording that is missing, truncated, corrupt or of an unexpected layout."""
