"""The ``ray`` runner: every node, or fused group of nodes (``runtime.fuse``), in its own Ray actor.

Placement
    Each group (:func:`pipeline.runners.plan.plan_groups`) becomes one actor (:class:`GroupActor`)
    that steps a :class:`~pipeline.runners.stepper.Stepper` behind a mailbox: packets between
    nodes of one group are plain function calls; packets to another group travel as Ray actor
    calls. Nodes are constructed and opened inside their actor (the driver keeps the graph as
    data); a node's error comes back as one line naming the file and the node. An actor's Ray
    resources are the sum of its nodes' ``resources``; without any, an actor asks for no CPU.

Ray itself
    ``address`` (``--address`` or ``runtime.address``) joins an existing cluster. Otherwise the
    runner starts a local Ray bound to loopback (``127.0.0.1``), dashboard off unless
    ``runtime.dashboard: true``, ``runtime.num_cpus`` CPUs (default: this machine's), and shuts it
    down at the end. If Ray is already initialised in this process, the runner uses it.

Data flow
    Each actor loops: take the batches that arrived (numbered per sender, processed in that
    order, since Ray does not order calls into threaded actors), step (deliver, read sources once,
    tick on the graph clock), send one batch per receiving group. A full inbox makes senders
    wait (bounded memory at ``speed: max``). Batches carry the sender's graph clock, so ticking
    nodes tick on data time with replays at ``speed: max`` (identical to ``local``) and on the LSL
    clock live (idle live senders send a heartbeat every 10 ms).

End of data
    A group ends when its sources are exhausted (or the run stops), every forward upstream group
    has ended and, on a closed loop, the driver has seen the whole graph quiet; it flushes, sends
    an end mark downstream and returns its statistics.

Checkpoints and restarts (``runtime.checkpoint_s``, default 5 s, 0 = off; ``runtime.max_restarts``,
default 3)
    The driver asks every running group for a checkpoint (its nodes' ``state()`` plus sequence
    numbers, ticks, statistics and how far it has read each sender's batches) on that schedule and
    keeps the latest one per group; each sender then forgets the batches the checkpoint covers.
    Senders keep the batches sent since the receiver's last checkpoint (only while restarts are on:
    ``checkpoint_s`` and ``max_restarts`` both > 0; at most
    :data:`MAX_KEPT_BYTES` per receiver; beyond that the oldest are forgotten and counted as
    ``kept_overflow``). When an actor dies the driver notices (it polls every 0.1 s, never an
    unbounded wait), creates a new actor, opens its nodes, restores the checkpoint and has the
    senders re-send what they kept. The new actor is the *spare*, started with the run and
    prepared ahead at low CPU priority (:meth:`GroupActor.warm`: node modules, compiled kernels,
    liblsl, a GC freeze), and each node is shown its checkpointed state before it opens
    (:meth:`~pipeline.node.Node.reopen_from`: an LSL inlet reopens the stream it had by uid), so a
    restart takes a few hundred ms (``spikeloop bench restarts`` reports where they go). Packets a
    group had already processed come again with sequence numbers it has seen: they are dropped
    (``duplicates_dropped``), so a replay through a crash gives the outputs of an uninterrupted run.
    Live sources cannot rewind: what a dead inlet would have read is gone (the inlet's counters
    show the gap). A restarted group numbers its batches in
    a new epoch; its receivers drop the dead incarnation's leftovers. Past ``max_restarts`` the run
    stops, says which node failed, and still returns the summary of what ran (the dead group's
    statistics from its last checkpoint). Limitation: if a group and its direct upstream both die
    within one checkpoint interval, packets in between may be lost (counted as gaps).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

from pipeline.clock import local_clock
from pipeline.errors import ConfigError, UserError
from pipeline.graph import GraphSpec
from pipeline.log import runner_logger
from pipeline.packet import StreamInfo
from pipeline.runners.realtime import freeze_setup_objects, request_short_slice, standby_priority
from pipeline.runners.opening import (
    construct_node,
    error_from_line,
    error_line,
    open_all,
    open_feedback,
    open_node,
)
from pipeline.runners.plan import LIVE_SOURCE_KINDS, GroupPlan, plan_groups, unfused_live_warning  # noqa: F401
from pipeline.runners.restarts import CheckpointSchedule, CheckpointStats, RestartBudget, checkpoint_interval, restarts_enabled
from pipeline.runners.progress import ReplayProgress, merge_progress, sources_progress
from pipeline.runners.signals import StopRequest
from pipeline.runners.status import Snapshot, StatusLine
from pipeline.runners.stepper import Batch, Stepper
from pipeline.runners.summary import group_result, merge_summary

log = runner_logger()

HEARTBEAT_S = 0.01
"""Seconds after which an idle live sender tells its receivers the time anyway."""
MAX_INBOX = 64
"""Batches an actor queues before its senders wait."""
MAX_INFLIGHT = 8
"""Unacknowledged batches a sender keeps per receiver before it waits."""
MAX_KEPT_BYTES = 256 * 2**20
"""Bytes of sent batches a sender keeps per receiver for re-sending after the receiver restarts."""
WORKER_NICENESS = "0"
"""``RAY_worker_niceness`` for a local Ray this runner starts (Ray's default is 15; see :func:`ensure_ray`)."""
SWITCH_INTERVAL_S = 0.0002
"""``sys.setswitchinterval`` inside group actors (see :class:`GroupActor`); ``SPIKELOOP_SWITCH_INTERVAL_US``
in the environment overrides it (a diagnostic for ``bench latency --variant`` A/B runs)."""
POLL_S = 0.1
"""The driver's polling period (s): actor deaths are noticed within about this long."""
SPARE_WAIT_S = 30.0
"""Longest wait (s) for the spare actor to prepare before a live graph runs (see :meth:`Driver.start`)."""
CALL_TIMEOUT_S = 60.0
"""Longest wait for a control call to an actor (opening a node may resolve an LSL stream)."""
START_TIMEOUT_S = 300.0
"""Longest wait for new actors to start (a Ray worker process; minutes on an overloaded machine)."""


# --- Ray start-up ----------------------------------------------------------------------------------
def ensure_ray(runtime: dict[str, Any], address: str | None) -> bool:
    """Connect to Ray; return True if this call started it (and so must shut it down).

    A local Ray started here runs its workers (our group actors) at niceness 0, not Ray's default
    15 (``worker_niceness``: "so that the OS prioritizes CPU for other processes over workers"): at
    15 a live group actor gets about 3 % of a core's share against any normal process, so on a
    busy machine its samples wait tens of ms (the ``ray`` row at ``--load 2``: p50 67 ms while
    ``local`` had 3.8 ms, 21:27 UTC). ``RAY_worker_niceness`` in the environment still wins; a
    cluster joined with ``address`` keeps its own setting (start it with ``RAY_worker_niceness=0``).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or runtime.get("address")
    log.info("starting Ray%s…", f" (joining {address})" if address else " on loopback")
    try:
        if address:
            if address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
                # A cluster on this machine's loopback (``ray start --node-ip-address=127.0.0.1``):
                # keep Ray from swapping the loopback for the machine's network address.
                from ray._private import ray_constants

                os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
                ray_constants.ENABLE_RAY_CLUSTER = False
            ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
        else:
            # A local Ray for this run only: its services listen on loopback, not on the machine's
            # network address. Ray swaps an explicit 127.0.0.1 for the "reachable" address unless
            # multi-node clustering is off: the variable turns it off for the processes Ray starts,
            # the constant for this one (read at import, which may have happened already).
            from ray._private import ray_constants

            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray_constants.ENABLE_RAY_CLUSTER = False
            os.environ.setdefault("RAY_worker_niceness", WORKER_NICENESS)  # read by the raylet it starts
            dashboard = bool(runtime.get("dashboard"))
            ray.init(
                num_cpus=runtime.get("num_cpus") or os.cpu_count() or 1,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                _node_ip_address="127.0.0.1",
                log_to_driver=True,
                logging_level=logging.WARNING,
            )
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception when its node times out starting
        where = f"Ray cluster at {address!r}" if address else "a local Ray"
        raise UserError(f"could not start or join {where}: {' '.join(str(exc).split())}") from None
    log.info("Ray ready")
    return True


def actor_options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray actor options for summed node resources (CPU/GPU/memory or custom names)."""
    opts: dict[str, Any] = {"num_cpus": 0.0}
    custom: dict[str, float] = {}
    for key, value in resources.items():
        k = key.lower()
        if k in ("cpu", "num_cpus"):
            opts["num_cpus"] = value
        elif k in ("gpu", "num_gpus"):
            opts["num_gpus"] = value
        elif k == "memory":
            opts["memory"] = value
        else:
            custom[key] = value
    if custom:
        opts["resources"] = custom
    return opts


def check_resources(spec: GraphSpec, plans: list[GroupPlan], cluster: dict[str, float]) -> None:
    """Refuse a group that asks for more than the whole cluster has (Ray would wait forever)."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    for plan in plans:
        opts = actor_options(plan.resources)
        wanted = {names[k]: v for k, v in opts.items() if k in names and v}
        wanted.update(opts.get("resources", {}))
        for key, value in wanted.items():
            if cluster.get(key, 0.0) < value:
                have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:")
                                 and not k.startswith("accelerator_type"))
                raise ConfigError(
                    spec.file,
                    f"nodes {', '.join(plan.nodes)} ask for {key}={value:g} but the Ray cluster has "
                    f"{key}={cluster.get(key, 0.0):g} (cluster: {have})",
                    node=plan.nodes[0], key="resources",
                )


# --- the mailbox -----------------------------------------------------------------------------------
class Inbox:
    """Batches from other groups, handed out in each sender's numbering order (Ray-free).

    An envelope is ``(sender, epoch, number, Batch)``; ``epoch`` counts the sender's restarts. A
    newer epoch replaces the older one (numbering restarts at 0, the dead incarnation's leftovers
    are dropped and counted in ``stale``); an older epoch's envelope is stale.
    """

    def __init__(self, plan: GroupPlan) -> None:
        self.plan = plan
        self.cv = threading.Condition()
        self._queue: deque = deque()
        self._pending: dict[str, dict[int, Batch]] = {}
        self.position: dict[str, tuple[int, int]] = {}  # sender -> (epoch, next number)
        self.stale = 0
        self.stopping = False

    def push(self, envelope: tuple) -> None:
        """Queue an envelope (waits while the inbox is full, except for a loop's way back)."""
        forward = envelope[0] in self.plan.upstream
        with self.cv:
            while forward and len(self._queue) >= MAX_INBOX and not self.stopping:
                self.cv.wait(0.05)
            self._queue.append(envelope)
            self.cv.notify_all()

    def take_ready(self) -> list[Batch]:
        """The batches that are next in their sender's numbering, in order."""
        with self.cv:
            queued, self._queue = self._queue, deque()
            self.cv.notify_all()
        for sender, epoch, number, batch in queued:
            cur_epoch, _ = self.position.get(sender, (0, 0))
            if epoch < cur_epoch:
                self.stale += 1
                continue
            if epoch > cur_epoch:
                self.stale += len(self._pending.get(sender, {}))
                self._pending[sender] = {}
                self.position[sender] = (epoch, 0)
            self._pending.setdefault(sender, {})[number] = batch
        ready: list[Batch] = []
        for sender, pending in self._pending.items():
            epoch, n = self.position.get(sender, (0, 0))
            while n in pending:
                ready.append(pending.pop(n))
                n += 1
            self.position[sender] = (epoch, n)
        return ready

    def empty(self) -> bool:
        with self.cv:
            return not self._queue and not any(self._pending.values())

    def wait(self, timeout: float) -> None:
        with self.cv:
            if not self._queue:
                self.cv.wait(timeout)


class Outbox:
    """Numbered sends to other groups, with the batches kept for re-sending after a restart.

    Args:
        epoch: this incarnation of the sending group (0 first; +1 per restart).
        push: ``push(group, envelope) -> ref`` (a Ray actor call); the refs bound what is in flight.
        wait: ``wait(refs, timeout) -> ready`` (``ray.wait``).
    """

    def __init__(self, name: str, epoch: int, push: Callable, wait: Callable, keep: bool = True) -> None:
        self.name, self.epoch = name, epoch
        self.keep = keep  # False when restarts are off: nothing is ever re-sent
        self._push, self._wait = push, wait
        self.sent: dict[str, int] = {}
        self.kept: dict[str, deque] = {}
        self.kept_bytes: dict[str, int] = {}
        self.kept_overflow = 0
        self.inflight: dict[str, deque] = {}
        self.lock = threading.Lock()

    def send(self, group: str, batch: Batch, stopping: Callable[[], bool] = lambda: False) -> None:
        with self.lock:
            number = self.sent.get(group, 0)
            self.sent[group] = number + 1
            envelope = (self.name, self.epoch, number, batch)
            if self.keep:
                size = sum(p.data.nbytes + p.timestamps.nbytes for _, _, p in batch.deliveries) + 64
                kept = self.kept.setdefault(group, deque())
                kept.append((number, size, envelope))
                self.kept_bytes[group] = self.kept_bytes.get(group, 0) + size
                while self.kept_bytes[group] > MAX_KEPT_BYTES and len(kept) > 1:
                    _, old, _ = kept.popleft()
                    self.kept_bytes[group] -= old
                    self.kept_overflow += 1
            ref = self._push(group, envelope)
            inflight = self.inflight.setdefault(group, deque())
            inflight.append(ref)
        while len(inflight) > MAX_INFLIGHT:  # bounded: give up on a dead receiver when stopping
            if self._wait([inflight[0]], 0.2):
                inflight.popleft()
            elif stopping():
                break

    def trim(self, group: str, epoch: int, upto: int) -> None:
        """Forget batches the receiver's checkpoint covers (numbers < ``upto`` of ``epoch``)."""
        with self.lock:
            if epoch != self.epoch:
                return
            kept = self.kept.get(group, deque())
            while kept and kept[0][0] < upto:
                _, size, _ = kept.popleft()
                self.kept_bytes[group] -= size

    def resend(self, group: str, position: tuple[int, int] | None) -> int:
        """Push again the kept batches the restarted receiver has not covered; return how many."""
        with self.lock:
            start = position[1] if position is not None and position[0] == self.epoch else 0
            envelopes = [env for number, _, env in self.kept.get(group, ()) if number >= start]
            self.inflight[group] = deque(self._push(group, env) for env in envelopes)
        return len(envelopes)

    def drain(self, timeout: float) -> None:
        refs = [r for q in self.inflight.values() for r in q]
        if refs:
            self._wait(refs, timeout)


# --- the actor -------------------------------------------------------------------------------------
def _switch_interval_s() -> float:
    """The group actors' interpreter switch interval (s): :data:`SWITCH_INTERVAL_S` unless overridden."""
    try:
        return max(1e-6, float(os.environ["SPIKELOOP_SWITCH_INTERVAL_US"]) * 1e-6)
    except (KeyError, ValueError):
        return SWITCH_INTERVAL_S


class GroupActor:
    """Hosts one group of nodes inside a Ray actor: a stepper behind an inbox and an outbox.

    Ray runs helper threads in an actor process; when one wants the interpreter while the group's
    loop is busy (a spinning LSL inlet), Python's default 5 ms switch interval would stall the data
    path for that long, so the actor sets 0.2 ms. The actor is threaded: the loop, incoming
    batches and control calls (checkpoint, status) run side by side; a step and a checkpoint never
    overlap.
    """

    def __init__(self) -> None:
        sys.setswitchinterval(_switch_interval_s())
        self.nodes: dict[str, Any] = {}
        self.stepper: Stepper | None = None
        self.outbox: Outbox | None = None
        self.peers: dict[str, Any] = {}
        self._stop = threading.Event()
        self._quiet = threading.Event()
        self._step_lock = threading.Lock()
        self._last_send = 0.0
        self._t0 = time.perf_counter()

    def warm(self, kinds: list[str]) -> int:
        """Get ready to take over a dead group (a spare actor): import the node classes of
        ``kinds``, let each prepare this process (:meth:`~pipeline.node.Node.prepare_process`:
        compiled kernels, liblsl), then collect and freeze what is alive (so a restart's
        :meth:`setup` collects only what came since). Done at a low priority
        (:func:`~pipeline.runners.realtime.standby_priority`): a standby uses idle CPU, not the
        running graph's."""
        from pipeline.registry import node_class

        with standby_priority():
            for kind in kinds:
                node_class(kind).prepare_process()  # imports, compiled kernels, liblsl
            freeze_setup_objects()
        return os.getpid()

    # --- construction and opening (errors come back as text: one line, no Ray traceback) --------
    def configure(self, file: str, plan: GroupPlan, node_specs: dict[str, tuple[str, dict[str, Any]]],
                  routes: dict, sinks: set[str], group_of: dict[str, str], epoch: int = 0,
                  log_level: int = logging.INFO, keep: bool = True) -> tuple[str, str] | None:
        """Become ``plan``'s group (incarnation ``epoch``) and construct its nodes; an error as text.

        Log records of the nodes (``spikeloop.node.<name>``) go to this process's stderr, which
        Ray forwards to the driver's terminal, at the driver's level. ``keep``: keep sent batches
        for re-sending after a receiver's restart (off when restarts are off)."""
        from pipeline.log import setup_logging

        setup_logging(logging.getLevelName(log_level))
        self.file, self.plan, self.node_specs = file, plan, node_specs
        self.routes, self.sinks, self.group_of = routes, sinks, group_of
        self.epoch = epoch
        self.keep = keep
        self.inbox = Inbox(plan)
        self._t0 = time.perf_counter()
        try:
            for name, (kind, params) in self.node_specs.items():
                self.nodes[name] = construct_node(self.file, name, kind, params)
        except UserError as exc:
            return error_line(exc)
        return None

    def open_node(self, name: str, inputs: dict[str, dict], incoming: list,
                  previous: dict[str, Any] | None = None) -> tuple:
        try:
            out = open_node(self.file, name, self.nodes[name],
                            {p: StreamInfo.from_dict(d) for p, d in inputs.items()}, incoming, previous)
        except UserError as exc:
            return ("error", *error_line(exc))
        return ("ok", {port: info.to_dict() for port, info in out.items()})

    def open_feedback(self, name: str, port: str, info: dict, src: str) -> tuple:
        try:
            open_feedback(self.file, name, self.nodes[name], port, StreamInfo.from_dict(info), src)
        except UserError as exc:
            return ("error", *error_line(exc))
        return ("ok",)

    def info(self) -> dict[str, Any]:
        """pid, whether the group has sources, its ticking nodes."""
        return {"pid": os.getpid()}

    def setup(self, peers: dict[str, Any], state: dict[str, Any] | None = None) -> bool:
        """Receive the other groups' handles; build the stepper; resume from ``state`` if given."""
        import ray

        self.peers = dict(peers)
        self.stepper = Stepper(self.plan, self.nodes, self.routes, self.sinks, self.group_of)
        self.outbox = Outbox(self.plan.name, self.epoch,
                             lambda g, env: self.peers[g].push.remote(env),
                             lambda refs, t: ray.wait(refs, num_returns=len(refs), timeout=t)[0], self.keep)
        if state is not None:
            self.stepper.restore(state["stepper"])
            self.inbox.position = {k: tuple(v) for k, v in state["inbox"].items()}
        freeze_setup_objects()  # no full GC pass over Ray's and numpy's objects on the data path
        if any(self.node_specs[n][0] in LIVE_SOURCE_KINDS for n in self.plan.nodes):
            request_short_slice(all_threads=True)  # opt-in (SPIKELOOP_SCHED_SLICE_US)
        self._warn_niceness()
        return True

    def _warn_niceness(self) -> None:
        """A live group in a low-priority worker (Ray's default niceness 15) is starved on a busy
        machine: say so once, with the fix (see :func:`ensure_ray`)."""
        live = [n for n in self.plan.nodes if self.node_specs[n][0] in LIVE_SOURCE_KINDS]
        try:
            nice = os.getpriority(os.PRIO_PROCESS, 0)
        except (AttributeError, OSError):
            return
        if live and nice > 0:
            logging.getLogger("spikeloop.runner").warning(
                "group %r (live source %s) runs at niceness %d (Ray's worker_niceness): on a busy machine it "
                "gets a small share of the CPU and its latency suffers; start the Ray cluster with "
                "RAY_worker_niceness=0", self.plan.name, ", ".join(live), nice)

    # --- messages and control ----------------------------------------------------------------
    def push(self, envelope: tuple) -> bool:
        self.inbox.push(envelope)
        return True

    def stop(self) -> bool:
        """Stop reading sources; the group then finishes as at the end of data."""
        self._stop.set()
        self.inbox.stopping = True
        with self.inbox.cv:
            self.inbox.cv.notify_all()
        return True

    def quiet(self) -> bool:
        """The driver saw the whole graph quiet: a group on a closed loop may end."""
        self._quiet.set()
        return True

    def set_peer(self, group: str, handle: Any, resend: bool, position: tuple[int, int] | None) -> int:
        """A restarted group's new handle; if ``resend``, push again what was kept for it."""
        self.peers[group] = handle
        if resend and self.outbox is not None:
            return self.outbox.resend(group, position)
        return 0

    def trim(self, group: str, epoch: int, upto: int) -> bool:
        if self.outbox is not None:
            self.outbox.trim(group, epoch, upto)
        return True

    def checkpoint(self) -> dict[str, Any] | None:
        """The group's checkpoint, taken between two steps (None once the group has ended)."""
        with self._step_lock:
            st = self.stepper
            if st is None or st.done:
                return None
            t = time.perf_counter()
            state = {"stepper": st.checkpoint(), "inbox": dict(self.inbox.position), "epoch": self.epoch,
                     "t": time.time()}
            state["cost_s"] = time.perf_counter() - t
            return state

    def status(self) -> dict[str, Any]:
        """Counts for the driver: quiet detection and the live status line."""
        with self._step_lock:
            st = self.stepper
            ex = st.executor if st else None
            return {
                "idle": bool(st) and not st.active and self.inbox.empty(),
                "done": bool(st and st.done),
                "sent": {g: (self.epoch, n) for g, n in (self.outbox.sent.items() if self.outbox else ())},
                "read": dict(self.inbox.position),
                "source_samples": sum(ex.stats[n].samples_out for n in ex.sources) if ex else 0,
                "sink_samples": sum(ex.stats[n].samples_in for n in ex.sinks) if ex else 0,
                "in_graph_p50_ms": ex.latency.to_dict()["p50_ms"] if ex and ex.sinks else None,
                "e2e_p50_ms": ex.e2e.to_dict()["p50_ms"] if ex and ex.sinks else None,
                "counters": {f"{n}.{k}": int(v) for n, c in (ex.counters().items() if ex else ()) for k, v in c.items()
                             if v and not k.startswith("packets.")},
            }

    def progress(self) -> tuple[float, float] | None:
        return sources_progress(list(self.stepper.sources.values())) if self.stepper else None

    def ping(self) -> int:
        return os.getpid()

    # --- the loop ----------------------------------------------------------------------------
    def run_loop(self) -> dict[str, Any]:
        """Step until the group ends; return its statistics (see :func:`group_result`)."""
        st, outbox = self.stepper, self.outbox
        assert st is not None and outbox is not None, "setup() first"
        try:
            while not st.done:
                with self._step_lock:
                    inbound = self.inbox.take_ready()
                    had_sources = bool(st.active)
                    out = st.step(inbound, stop=self._stop.is_set(), quiet=self._quiet.is_set())
                    self._send(out, eos=st.done)
                if not inbound and not had_sources and not st.done:
                    self.inbox.wait(0.001 if st.executor.ticking else 0.02)
            outbox.drain(5.0)
        finally:
            counters, reports = st.executor.counters(), st.executor.reports()
            for name, extra in (("kept_overflow", outbox.kept_overflow), ("stale_batches", self.inbox.stale)):
                if extra:
                    counters.setdefault(self.plan.nodes[0], {})[name] = extra
            st.executor.close()
        return group_result(st, time.perf_counter() - self._t0, counters, reports)

    def _send(self, out: list, eos: bool) -> None:
        st, outbox = self.stepper, self.outbox
        assert st is not None and outbox is not None
        batches = st.batches(out, eos=eos)
        clock = st.clock()
        if not eos and clock is not None and not clock[1] and time.monotonic() - self._last_send > HEARTBEAT_S:
            for group in st.plan.clock_to:  # live and idle: tell ticking receivers the time
                batches.setdefault(group, Batch(st.plan.name, clock))
        for group in sorted(batches):
            outbox.send(group, batches[group], self._stop.is_set)
        if batches:
            self._last_send = time.monotonic()


# --- the driver --------------------------------------------------------------------------------------
class StartupStopped(Exception):
    """A stop (Ctrl-C, SIGTERM, SIGHUP) came while the actors were starting or opening.

    Attributes:
        during: what the driver was waiting for.
    """

    def __init__(self, during: str) -> None:
        super().__init__(during)
        self.during = during


def stopped_during_startup(spec: GraphSpec, runner: str, stop: StopRequest, during: str, t0: float) -> dict[str, Any]:
    """The summary of a run stopped before its graph ran (no node processed anything)."""
    log.info("stopped during start-up (%s) after %.2f s: %s", during, time.perf_counter() - t0, stop.reason)
    summary = merge_summary(spec, runner, [], time.perf_counter() - t0, f"{stop.reason} (during start-up)")
    summary["startup_s"] = round(time.perf_counter() - t0, 3)
    return summary


class Driver:
    """Creates, opens, watches, checkpoints and restarts one run's group actors."""

    def __init__(self, spec: GraphSpec, runner: str, worker: type = GroupActor, max_concurrency: int = 4 + MAX_INFLIGHT,
                 observer: Callable[[str, dict], None] | None = None, restarts: bool = True) -> None:
        import ray

        self.ray = ray
        self.spec, self.runner = spec, runner
        self.plans, self.group_of = plan_groups(spec)
        self.by_name = {p.name: p for p in self.plans}
        self.worker = ray.remote(worker)
        self.max_concurrency = max_concurrency
        self.observer = observer or (lambda event, info: None)
        self.actors: dict[str, Any] = {}
        self.epochs: dict[str, int] = {p.name: 0 for p in self.plans}
        self.infos: dict[tuple[str, str], StreamInfo] = {}
        self.checkpoints: dict[str, dict] = {}
        self.budget = RestartBudget(str(spec.file), spec.runtime)
        self.checkpoint_stats = CheckpointStats()
        self.restarts: dict[str, int] = self.budget.restarts
        self.pids: dict[str, int] = {}
        self.spare: Any = None
        self.downtime: dict[str, float] = self.budget.downtime
        self.spare_ready = False
        self.recreate_s: dict[str, float] = {}
        """Seconds the last :meth:`recreate` spent configuring the actor, opening and restoring."""
        self.parts_s: dict[str, float] = {}
        """Where the last restart's time went (s), for the ``"restarted"`` event (benchmarks)."""
        self.can_restart = restarts
        self.stopping: Callable[[], bool] = lambda: False
        """True when a stop was asked during start-up (see :meth:`get`); off once the graph runs."""
        check_resources(spec, self.plans, ray.cluster_resources())
        from pipeline.cluster.placement import check_placement

        check_placement(spec, self.plans, ray.nodes())  # per machine: a group no node can host would wait forever
        if (warning := unfused_live_warning(spec, self.group_of)):
            log.warning(warning)

    # --- calls ---------------------------------------------------------------------------------
    def get(self, ref: Any, what: str, timeout: float = CALL_TIMEOUT_S) -> Any:
        """A bounded ``ray.get``; a node's UserError comes back unwrapped.

        While :attr:`stopping` says so (a stop request during start-up), it waits in slices of
        :data:`POLL_S` and raises :class:`StartupStopped` as soon as a stop is asked."""
        ray = self.ray
        end = time.monotonic() + timeout
        while True:
            if self.stopping():
                raise StartupStopped(what)
            left = end - time.monotonic()
            ready, _ = ray.wait([ref], timeout=max(0.0, min(left, POLL_S)))
            if ready or left <= POLL_S:
                break
        if not ready:
            raise UserError(f"{self.spec.file}: {what} did not answer within {timeout:g} s")
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, UserError):
                raise cause from None
            raise

    def spawn(self, resources: dict[str, float]) -> Any:
        """A new (unconfigured) group actor."""
        return self.worker.options(max_concurrency=self.max_concurrency, **actor_options(resources)).remote()

    def configure(self, plan: GroupPlan, actor: Any) -> Any:
        spec = self.spec
        node_specs = {n: (spec.nodes[n].kind, spec.nodes[n].params) for n in plan.nodes}
        return actor.configure.remote(spec.file, plan, node_specs, spec.routes(), spec.sinks(), self.group_of,
                                      self.epochs[plan.name], logging.getLogger("spikeloop").getEffectiveLevel(),
                                      restarts_enabled(spec.runtime))

    def _spare(self) -> None:
        """Start a spare actor (no resources asked) with the node modules imported: a restart then
        skips starting a Ray worker process (seconds), the largest part of its time."""
        self.spare = self.spawn({})
        self.spare_ref = self.spare.warm.remote(sorted({n.kind for n in self.spec.nodes.values()}))
        self.spare_ready = False

    def check_spare(self) -> None:
        """Note (log, observer "spare_ready") when the spare actor has started."""
        if self.spare is not None and not self.spare_ready and self.ray.wait([self.spare_ref], timeout=0)[0]:
            self.spare_ready = True
            try:
                pid = self.ray.get(self.spare_ref, timeout=1.0)
            except Exception:  # noqa: BLE001 - a spare that died warming up: a restart makes a new actor
                pid = None
            log.debug("spare actor ready (pid %s)", pid)
            self.observer("spare_ready", {"pid": pid})

    def create(self, plan: GroupPlan) -> Any:
        """An actor for ``plan``: the spare if it fits (no resources asked), else a new one."""
        if self.spare is not None and not plan.resources:
            actor, self.spare = self.spare, None
        else:
            actor = self.spawn(plan.resources)
        error = self.get(self.configure(plan, actor), f"group {plan.name!r} (starting its actor)", START_TIMEOUT_S)
        if error:
            raise error_from_line(*error)
        self.actors[plan.name] = actor
        return actor

    def _open_one(self, name: str, inputs: dict[str, StreamInfo], incoming: list,
                  previous: dict[str, Any] | None = None) -> dict[str, StreamInfo]:
        actor = self.actors[self.group_of[name]]
        result = self.get(actor.open_node.remote(name, {p: i.to_dict() for p, i in inputs.items()}, incoming, previous),
                          f"node {name!r} (opening)")
        if result[0] == "error":
            raise error_from_line(result[1], result[2])
        return {p: StreamInfo.from_dict(d) for p, d in result[1].items()}

    def _feedback_one(self, e: Any, info: StreamInfo) -> None:
        result = self.get(self.actors[self.group_of[e.dst]].open_feedback.remote(e.dst, e.dst_port, info.to_dict(),
                                                                                 f"{e.src}.{e.src_port}"),
                          f"node {e.dst!r} (opening)")
        if result[0] == "error":
            raise error_from_line(result[1], result[2])

    def start(self) -> None:
        """Create every actor, open every node (in topological order), set up the peers.

        The spare actor's process starts beside the groups' (a Ray worker's start is ~1.5 CPU s at
        normal priority, then its preparation at standby priority); a live graph waits for it (at
        most :data:`SPARE_WAIT_S`) before it runs: on a small machine that work would otherwise
        fall in the session's first seconds and delay its samples' wake-ups (docs/RESULTS.md,
        "Cluster: concurrent live sessions")."""
        for plan in self.plans:  # start the actors' processes side by side, then configure them
            self.actors[plan.name] = self.spawn(plan.resources)
        spare = self.can_restart and restarts_enabled(self.spec.runtime)
        if spare:
            self._spare()
        log.info("starting %d actors…", len(self.plans))
        errors = [self.get(self.configure(p, self.actors[p.name]), f"group {p.name!r} (starting its actor)",
                           START_TIMEOUT_S) for p in self.plans]
        for error in errors:
            if error:
                raise error_from_line(*error)
        self.infos = open_all(self.spec, self._open_one, self._feedback_one)
        self.get_all([a.setup.remote(self.actors) for a in self.actors.values()], "setting up the groups")
        self.pids = dict(zip(self.actors, self.get_all([a.ping.remote() for a in self.actors.values()], "ping")))
        self.observer("started", {"pids": dict(self.pids), "actors": dict(self.actors)})
        if spare and any(n.kind in LIVE_SOURCE_KINDS for n in self.spec.nodes.values()):
            self._await_spare()

    def _await_spare(self) -> None:
        """Wait (bounded, stoppable) until the spare actor has prepared itself; never fatal."""
        t = time.monotonic()
        try:
            self.get(self.spare_ref, "the spare actor (preparing)", SPARE_WAIT_S)
        except StartupStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - a spare that is slow or failed: a restart makes a new actor
            log.warning("spare actor not ready after %.0f s (%s); the graph runs without waiting for it",
                        time.monotonic() - t, " ".join(str(exc).split())[:200])
            return
        self.check_spare()
        log.debug("waited %.1f s for the spare actor", time.monotonic() - t)

    def get_all(self, refs: list, what: str) -> list:
        return [self.get(r, what) for r in refs]

    # --- restarts ------------------------------------------------------------------------------
    def reopen(self, plan: GroupPlan, state: dict[str, Any] | None = None) -> None:
        """Open the nodes of a freshly created group actor with the graph's known descriptions;
        each node is first shown its state in the group's checkpoint ``state`` (if any), to reopen
        faster (:meth:`~pipeline.node.Node.reopen_from`)."""
        from pipeline.runners.opening import incoming_edges, log_wait

        incoming = incoming_edges(self.spec)
        nodes = state["stepper"]["nodes"] if state else {}
        for name in plan.nodes:
            inputs = {e.dst_port: self.infos[(e.src, e.src_port)] for e in incoming[name] if not e.feedback}
            log_wait(self.spec, name)
            t = time.perf_counter()
            self._open_one(name, inputs, incoming[name], nodes.get(name))
            log.debug("node %r reopened in %.0f ms", name, (time.perf_counter() - t) * 1e3)
        for e in self.spec.edges:
            if e.feedback and e.dst in plan.nodes:
                self._feedback_one(e, self.infos[(e.src, e.src_port)])

    def recreate(self, group: str) -> tuple[Any, dict[str, Any] | None]:
        """Replace ``group``'s (dead) actor by a new one (the warm spare if it fits), its nodes opened
        and restored from the group's last checkpoint; return ``(actor, checkpoint or None)``.

        Shared by both Ray runners; the caller then brings back what the group lost since that
        checkpoint (its own way) and calls :meth:`restarted`."""
        plan = self.by_name[group]
        try:
            self.ray.kill(self.actors[group])
        except Exception:  # noqa: BLE001 - already dead
            pass
        self.epochs[group] += 1
        t0 = time.perf_counter()
        actor = self.create(plan)
        t1 = time.perf_counter()
        state = self.checkpoints.get(group)
        self.reopen(plan, state)
        t2 = time.perf_counter()
        self.get(actor.setup.remote(self.actors, state), f"group {group!r} (restoring)")
        self.pids[group] = self.get(actor.ping.remote(), "ping")
        self.recreate_s = {"configure": t1 - t0, "open": t2 - t1, "restore": time.perf_counter() - t2}
        log.debug("group %r recreated: configure %.0f ms, open %.0f ms, restore %.0f ms", group,
                  *(1e3 * v for v in self.recreate_s.values()))
        return actor, state

    def restarted(self, group: str, actor: Any, state: dict[str, Any] | None, t0: float, how: str,
                  parts: dict[str, float] | None = None) -> None:
        """After a restart: start a new spare, log it, tell the observer (``"restarted"``, with
        ``parts``: where the time went, s, and ``noticed_at``, the ``time.monotonic()`` of noticing)."""
        plan = self.by_name[group]
        self.parts_s = dict(parts or {})
        if self.spare is None:
            self._spare()
        log.info("group %r restarted in %.0f ms from %s; %s", group, (time.perf_counter() - t0) * 1e3,
                 "its checkpoint of %s" % time.strftime("%H:%M:%S", time.localtime(state["t"])) if state else "the start",
                 how)
        restored = sum(state["stepper"]["executor"]["stats"][n].samples_in for n in plan.nodes
                       if n in self.spec.sinks()) if state else 0
        self.observer("restarted", {"group": group, "pid": self.pids[group], "actor": actor,
                                    "sink_samples_restored": restored, "parts_s": dict(self.parts_s)})

    def restart(self, group: str, noticed_at: float | None = None) -> Any:
        """Recreate ``group``'s actor from its last checkpoint; senders re-send what they kept.

        ``noticed_at``: ``time.monotonic()`` when the death was noticed (reported to the observer)."""
        t0 = time.perf_counter()
        actor, state = self.recreate(group)
        t1 = time.perf_counter()
        self.loop_ref = actor.run_loop.remote()  # running before the re-sent batches fill its inbox
        resent = 0
        for other, handle in self.actors.items():
            if other == group:
                continue
            senders = self.by_name[group].upstream | self.by_name[group].feedback_from
            position = state["inbox"].get(other) if state else None
            resent += self.get(handle.set_peer.remote(group, actor, other in senders, position),
                               f"group {other!r} (re-sending)")
        parts = dict(self.recreate_s, resend=time.perf_counter() - t1)
        if noticed_at is not None:
            parts["noticed_at"] = noticed_at
        self.restarted(group, actor, state, t0, f"{resent} batches re-sent", parts)
        return actor

    def failed_result(self, group: str) -> dict[str, Any] | None:
        """A dead group's statistics as of its last checkpoint (for the summary of what ran)."""
        state = self.checkpoints.get(group)
        if state is None:
            return None
        ex = state["stepper"]["executor"]
        return {"group": group, "stats": ex["stats"], "counters": {}, "reports": {}, "latency": ex["latency"],
                "e2e": ex["e2e"], "source_samples": 0, "duplicates": 0, "dropped_after_end": 0,
                "wall_s": 0.0, "pid": self.pids.get(group, -1), "torch_imported": False}


def _has_loop_between_groups(plans: list[GroupPlan]) -> bool:
    return any(p.feedback_from for p in plans)


# --- the runner --------------------------------------------------------------------------------------
def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None, observer: Callable[[str, dict], None] | None = None,
        session: str | None = None) -> dict[str, Any]:
    """Run ``spec`` with one Ray actor per group; return the summary (same keys as ``local``).

    With ``address`` (or ``session``) the run registers as a named session on the cluster
    (:mod:`pipeline.sessions`): ``spikeloop sessions`` lists it and can stop it.

    ``observer(event, info)`` is told ``"started"`` ({"pids": {group: pid}, "actors"}),
    ``"spare_ready"`` ({"pid"}), ``"checkpoint"``
    ({"group"}) and ``"restarted"`` ({"group", "pid"}) (tests and benchmarks use it).
    """
    status = StatusLine(progress)
    status.message("starting Ray…")
    t_start = time.perf_counter()
    with StopRequest() as stop:
        started = ensure_ray(spec.runtime, address)
        stop.install()  # over the SIGTERM handler ray.init installs
        import ray

        driver = handle = summary = None
        try:
            if stop:  # asked while Ray started
                summary = stopped_during_startup(spec, "ray", stop, "starting Ray", t_start)
                return summary
            if address or session:
                from pipeline.sessions import SessionHandle

                try:
                    handle = SessionHandle(session, str(spec.file), "ray")
                    log.info("session %r registered on the cluster (spikeloop sessions lists it)", handle.name)
                except Exception as exc:  # noqa: BLE001 - the run goes on, unlisted
                    log.warning("session not registered (spikeloop sessions will not list this run): %s",
                                " ".join(str(exc).split())[:200])
            driver = Driver(spec, "ray", observer=observer)
            status.message("opening nodes…")
            driver.stopping = lambda: bool(stop)
            try:
                driver.start()
            except StartupStopped as exc:
                summary = stopped_during_startup(spec, "ray", stop, exc.during, t_start)
                return summary
            driver.stopping = lambda: False
            status.close()
            summary = _drive(driver, spec, progress, duration_s, stop, handle)
            return summary
        finally:
            status.close()
            if handle is not None:
                handle.close((summary or {}).get("stopped_by") or "failed to start", summary)
            if driver is not None:
                for a in list(driver.actors.values()) + ([driver.spare] if driver.spare is not None else []):
                    ray.kill(a)
            if started:
                ray.shutdown()


def _drive(driver: Driver, spec: GraphSpec, progress: bool, duration_s: float | None, stop: StopRequest,
           session: Any = None) -> dict[str, Any]:
    ray = driver.ray
    schedule = CheckpointSchedule(checkpoint_interval(spec.runtime))
    bar = ReplayProgress(progress)
    sources = _source_kinds({n.kind for n in spec.nodes.values()})
    source_groups = [p.name for p in driver.plans if any(driver.spec.nodes[n].kind in sources for n in p.nodes)]
    live = not source_groups or any(spec.nodes[n].kind in LIVE_SOURCE_KINDS for n in spec.nodes)
    status = StatusLine(progress and live)
    loops = _has_loop_between_groups(driver.plans)
    t0 = time.perf_counter()
    deadline = None if duration_s is None else t0 + duration_s
    refs = {g: a.run_loop.remote() for g, a in driver.actors.items()}
    log.info("graph running (%d actors; checkpoints %s)", len(refs), schedule.describe())
    results: dict[str, dict] = {}
    pending_ckpt: dict[str, Any] = {}
    stopped_by, stopping, failure = "end of data", False, None
    quiet_seen: list = []
    try:
        while len(results) < len(refs):
            waiting = [r for g, r in refs.items() if g not in results]
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=POLL_S)
            for group, ref in list(refs.items()):
                if group in results or ref not in ready:
                    continue
                try:
                    results[group] = driver.get(ref, f"group {group!r}", timeout=1.0)
                except UserError as exc:  # a node raised (NodeFailure): no restart, stop with its line
                    failure = f"{spec.file}: {exc}"
                    log.error(failure)
                    raise _Failed(group) from None
                except ray.exceptions.RayActorError:
                    failure = driver.budget.death(group, driver.by_name[group].nodes)
                    if failure:
                        raise _Failed(group) from None
                    t_dead = time.monotonic()
                    actor = driver.restart(group, t_dead)
                    driver.budget.restarted(group, time.monotonic() - t_dead, driver.by_name[group].nodes,
                                            {n: s.kind for n, s in spec.nodes.items()})
                    pending_ckpt.pop(group, None)
                    refs[group] = driver.loop_ref
                    if stopping:
                        actor.stop.remote()
            driver.check_spare()
            # checkpoints: ask on schedule, collect without waiting
            if not stopping and schedule.due():
                for group, actor in driver.actors.items():
                    if group not in results and group not in pending_ckpt:
                        pending_ckpt[group] = actor.checkpoint.remote()
            if pending_ckpt:
                done_ckpt, _ = ray.wait(list(pending_ckpt.values()), num_returns=len(pending_ckpt), timeout=0)
                for group, ref in list(pending_ckpt.items()):
                    if ref in done_ckpt:
                        del pending_ckpt[group]
                        try:
                            state = ray.get(ref)
                        except ray.exceptions.RayError:
                            continue  # the actor died: its run_loop ref reports it
                        if state is not None:
                            _keep_checkpoint(driver, group, state)
            if loops and not stopping:
                _check_quiet(driver, results, quiet_seen)
            if session is not None and not stopping:
                session.poll(stop, lambda: _status_snapshot(driver, results))
            if not stopping:
                if stop:
                    stopping, stopped_by = True, stop.reason or stopped_by
                elif deadline is not None and time.perf_counter() >= deadline:
                    stopping, stopped_by = True, f"duration {duration_s:g} s"
                if stopping:
                    log.info("stopping: %s", stopped_by)
                    for a in driver.actors.values():
                        a.stop.remote()
            if bar.enabled and source_groups:
                bar.update(lambda: merge_progress(_bounded_all(ray, [driver.actors[g].progress.remote() for g in source_groups])))
            status.update(lambda: _status_snapshot(driver, results))
    except _Failed:
        stopped_by = "failure: " + (failure or "a node failed")
        for a in driver.actors.values():
            a.stop.remote()
        for group, ref in refs.items():
            if group in results or group == _Failed.group:
                continue
            try:
                results[group] = driver.get(ref, f"group {group!r}", timeout=5.0)
            except Exception:  # noqa: BLE001 - another dead actor: report what its checkpoint has
                pass
    except KeyboardInterrupt:
        stopped_by = "forced exit (second stop signal)"
    finally:
        bar.close()
        status.close()
    wall_s = time.perf_counter() - t0
    ordered = [results[p.name] for p in driver.plans if p.name in results]
    for p in driver.plans:
        if p.name not in results and (r := driver.failed_result(p.name)) is not None:
            ordered.append(r)
    log.info("run stopped: %s (%.2f s, restarts %s)", stopped_by, wall_s, driver.restarts or "none")
    summary = merge_summary(spec, driver.runner, ordered, wall_s, stopped_by, driver.restarts, failure)
    summary.update(driver.budget.summary_fields())  # restart_s: driver time spent restarting
    summary["checkpoints"] = driver.checkpoint_stats.summary(wall_s)
    return summary


class _Failed(Exception):
    group: str = ""

    def __init__(self, group: str) -> None:
        super().__init__(group)
        _Failed.group = group


def _source_kinds(kinds: set[str]) -> set[str]:
    """The source kinds among ``kinds`` (the graph's own: importing every registered node class
    would cost the driver about 1 s of CPU per run, scipy and numba included)."""
    from pipeline.node import Source
    from pipeline.registry import node_class

    return {k for k in kinds if issubclass(node_class(k), Source)}


def _keep_checkpoint(driver: Driver, group: str, state: dict) -> None:
    """Keep the checkpoint; tell the group's senders to forget the batches it covers."""
    driver.checkpoints[group] = state
    driver.checkpoint_stats.add(state)
    plan = driver.by_name[group]
    for sender in plan.upstream | plan.feedback_from:
        position = state["inbox"].get(sender)
        if position is not None:
            driver.actors[sender].trim.remote(group, position[0], position[1])
    driver.observer("checkpoint", {"group": group})


def _bounded_all(ray: Any, refs: list, timeout: float = 1.0) -> list:
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    return [ray.get(r) for r in refs if r in ready]


def _check_quiet(driver: Driver, results: dict, seen: list) -> None:
    """A closed loop between groups ends when nothing is in flight anywhere, twice in a row."""
    ray = driver.ray
    live = {g: a for g, a in driver.actors.items() if g not in results}
    statuses = dict(zip(live, _bounded_all(ray, [a.status.remote() for a in live.values()], 1.0)))
    if len(statuses) != len(live) or not all(s["idle"] or s["done"] for s in statuses.values()):
        seen.clear()
        return
    sent = {(g, d): v for g, s in statuses.items() for d, v in s["sent"].items()}
    read = {(src, g): v for g, s in statuses.items() for src, v in s["read"].items()}
    balanced = all(read.get(k) == v for k, v in sent.items() if k[1] in live)
    snapshot = (sent, read)
    if balanced and seen and seen[-1] == snapshot:
        for g, a in live.items():
            if driver.by_name[g].feedback_from:
                a.quiet.remote()
    seen[:] = [snapshot] if balanced else []


def _status_snapshot(driver: Driver, results: dict) -> Snapshot:
    live = {g: a for g, a in driver.actors.items() if g not in results}
    snap = Snapshot(counters={f"restarts.{g}": n for g, n in driver.restarts.items()})
    for s in _bounded_all(driver.ray, [a.status.remote() for a in live.values()], 0.5):
        snap.source_samples += s["source_samples"]
        snap.sink_samples += s["sink_samples"]
        snap.in_graph_p50_ms = s["in_graph_p50_ms"] if s["in_graph_p50_ms"] is not None else snap.in_graph_p50_ms
        snap.e2e_p50_ms = s["e2e_p50_ms"] if s["e2e_p50_ms"] is not None else snap.e2e_p50_ms
        snap.counters.update(s["counters"])
    return snap


_ = local_clock  # re-exported for older imports
