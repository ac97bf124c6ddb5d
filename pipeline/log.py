"""Logging for spikeloop: one ``spikeloop`` logger, one child per node, timestamps on every line.

Runner events (Ray starting, waiting for a stream, restarts, checkpoints failing, catch-up, why a
run stopped) are logged at INFO on ``spikeloop.runner``; nodes log on
``logging.getLogger(f"spikeloop.node.{name}")`` (:func:`node_logger`). Warnings go through logging,
never ``print``. ``spikeloop run --log-level``/``--quiet`` choose what reaches the terminal
(stderr); without :func:`setup_logging` (a notebook, a test) records propagate to the root logger
as usual.

Example::

    from pipeline.log import setup_logging, node_logger
    setup_logging("INFO")
    node_logger("decoder").info("model loaded")
    # 18:31:02.417 INFO  spikeloop.node.decoder: model loaded
"""
from __future__ import annotations

import logging
import sys
import time

ROOT = "spikeloop"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _Formatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL name: message`` (local time, milliseconds)."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = f"{t}.{int(record.msecs):03d} {record.levelname:<5} {record.name}: "
        return head + record.getMessage() + (("\n" + self.formatException(record.exc_info)) if record.exc_info else "")


_handler: logging.Handler | None = None


def setup_logging(level: str = "INFO", quiet: bool = False, stream=None) -> logging.Logger:
    """Send ``spikeloop.*`` records at ``level`` (WARNING if ``quiet``) to ``stream`` (stderr).

    Idempotent: a second call replaces the handler and level.
    """
    global _handler
    logger = logging.getLogger(ROOT)
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(_Formatter())
    logger.addHandler(_handler)
    logger.setLevel("WARNING" if quiet else level.upper())
    logger.propagate = False
    return logger


def runner_logger() -> logging.Logger:
    """The logger of runner events (``spikeloop.runner``)."""
    return logging.getLogger(f"{ROOT}.runner")


def node_logger(name: str) -> logging.Logger:
    """The logger of node ``name`` (``spikeloop.node.<name>``)."""
    return logging.getLogger(f"{ROOT}.node.{name}")
