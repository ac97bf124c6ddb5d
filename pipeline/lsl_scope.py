"""Keep Lab Streaming Layer on this machine: ``SPIKELOOP_LSL_LOCAL=1``.

liblsl reads its settings from the file named by the ``LSLAPICFG`` environment variable (else
``lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``) when the first stream,
inlet or resolver is created. With ``SPIKELOOP_LSL_LOCAL=1`` (or ``true``/``yes``/``on``) in the
environment, :func:`apply_local_scope` writes :data:`LOCAL_CONFIG` to a file of this user
(``$XDG_RUNTIME_DIR/spikeloop/lsl_api.cfg``, else ``<tmp>/spikeloop-<uid>/lsl_api.cfg``) and points
``LSLAPICFG`` at it. It runs when :mod:`pipeline` is imported, so every spikeloop command, graph,
Ray worker (they inherit the environment) and test uses it. An ``LSLAPICFG`` the user set already
is kept (their file wins) and a warning says so.

What the settings do (liblsl 1.16–1.17 ``api_config.cpp``; checked with ``ss -lnup``/``ss -lntp``):

* ``[multicast] ResolveScope = machine``: discovery queries go to ``127.0.0.1`` only (the
  machine group), never to the link or site multicast groups; streams of other hosts are not
  found and this host's streams are not announced to them.
* ``[multicast] ListenAddress = 127.0.0.1``: each outlet's discovery responder (UDP 16571) is
  bound to loopback instead of every interface, so other hosts' queries get no answer.
* ``[ports] IPv6 = disable``: no IPv6 sockets at all.
* Not covered: liblsl has no setting for the address of an outlet's TCP data port (16572–16604)
  and UDP time-service port; they still bind to every interface, without authentication. On an
  untrusted network block those ports with a firewall, as liblsl's documentation advises.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

LOCAL_ENV = "SPIKELOOP_LSL_LOCAL"
"""Environment variable that turns the machine-local LSL configuration on."""

LOCAL_CONFIG = """\
; written by spikeloop (SPIKELOOP_LSL_LOCAL=1): keep LSL discovery on this machine
[ports]
IPv6 = disable

[multicast]
ResolveScope = machine
ListenAddress = 127.0.0.1
"""
"""The ``lsl_api.cfg`` written for machine-local LSL."""

_log = logging.getLogger("spikeloop.lsl")


def local_requested(environ: dict[str, str] | None = None) -> bool:
    """True when ``SPIKELOOP_LSL_LOCAL`` asks for machine-local LSL (1, true, yes, on)."""
    value = (environ if environ is not None else os.environ).get(LOCAL_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def config_path() -> Path:
    """Where the machine-local ``lsl_api.cfg`` is written (a directory only this user can write)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "spikeloop" if runtime and Path(runtime).is_dir() else \
        Path(tempfile.gettempdir()) / f"spikeloop-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return base / "lsl_api.cfg"


def apply_local_scope() -> Path | None:
    """Point ``LSLAPICFG`` at the machine-local config when ``SPIKELOOP_LSL_LOCAL`` asks for it.

    Returns the config file in use, or None when machine-local LSL is not requested. Call it
    before the first LSL stream, inlet or resolve of the process (liblsl reads its settings once).
    """
    if not local_requested():
        return None
    current = os.environ.get("LSLAPICFG")
    path = config_path()
    if current and Path(current) != path:
        _log.warning("%s=1 but LSLAPICFG=%s is set already; using that file", LOCAL_ENV, current)
        return Path(current)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != LOCAL_CONFIG:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(LOCAL_CONFIG)
            os.replace(tmp, path)  # atomic: another process never reads half a file
    except OSError as exc:
        _log.error("%s=1 but %s cannot be written (%s); LSL keeps its default network scope",
                   LOCAL_ENV, path, exc)
        return None
    os.environ["LSLAPICFG"] = str(path)
    return path
