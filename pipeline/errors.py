"""Errors shown to users in one line, without a traceback.

Every error a user can cause is a :class:`UserError` (the CLI prints it as
``spikeloop COMMAND: error: MESSAGE`` and exits with status 2). Errors about a graph config are
:class:`ConfigError`, whose message has one shape::

    FILE: node 'X': param 'Y': expected T, got V
    FILE: node 'X': key 'kind': unknown node kind 'besel' (did you mean 'bessel'?)
    FILE: key 'edges': edges[2]: edge names a missing node 'decodr' (did you mean 'decoder'?)
    FILE: node 'X': <what the node said when it was constructed or opened>

Nodes raise :class:`UserError` (or ``ValueError``) with a message that makes sense on its own;
the graph loader and the runners add the file and node name in front.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, option, data): the CLI prints it in one line."""


class ConfigError(UserError):
    """A malformed graph config. The message names the file, the node and the param or key.

    Args:
        file: the config file (as given on the command line).
        message: what is wrong (one line).
        node: the node's name in the config, if the error is about one node.
        key: the config key at fault (``kind``, ``edges``, ``runtime.fuse`` ...), if any.
        param: the node param at fault, if any (shown as ``param 'Y'``).
    """

    def __init__(self, file: str, message: str, node: str | None = None, key: str | None = None,
                 param: str | None = None) -> None:
        self.file, self.node, self.key, self.param = file, node, key, param
        where = file
        if node is not None:
            where += f": node {node!r}"
        if param is not None:
            where += f": param {param!r}"
        elif key is not None:
            where += f": key {key!r}"
        super().__init__(f"{where}: {one_line(message)}")


class RecordingError(UserError):
    """A recording that is missing, truncated, corrupt or of an unexpected layout."""


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
