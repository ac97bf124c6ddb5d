"""Graph nodes of the collision-avoidance loop: the robot simulator and the controllers.

Closed loop (``configs/collision_sim.yaml``)::

    sim.scan -> controller -> sim.command   (the last edge is marked feedback: ``controller ~> sim.command``)

* ``robot_sim`` (:class:`RobotSim`): emits its first observation in ``start()`` and one observation
  per command received; when the episode ends it emits nothing more, so the graph goes quiet and
  stops. Output ``scan``: 543 channels per sample = 541 ranges (metres) + the 2 state values, at
  the world's control rate (20 Hz), stamped on the LSL clock as start time + simulated time.
* ``crnn_controller`` (:class:`CrnnController`): the float or quantised CRNN in numpy.
* ``bif_controller`` (:class:`BifController`): the spiking (BIF) controller in numpy, T steps per scan.
* ``gap_controller`` (:class:`GapController`): the classic follow-the-gap baseline.

Every controller takes the 543-channel ``scan`` stream on ``in`` and emits a 1-channel
``steering`` stream in [-1, 1] (+1 = turn left) on ``out``, one sample per scan, with the scan's
timestamp. A scan containing NaN or infinite values is not fed to the network: the controller
repeats its last command and counts it (``bad_scans``).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from nodes.control.kernels import N_BEAMS, N_STATE
from pipeline.clock import local_clock
from pipeline.errors import UserError
from pipeline.node import Node, Outputs, StreamMismatch, require
from pipeline.packet import Packet, StreamInfo

SCAN_CHANNELS = N_BEAMS + N_STATE
DEFAULT_WORLD = "configs/worlds/default.yaml"


def scan_info(rate_hz: float, name: str = "scan") -> StreamInfo:
    """Description of the 543-channel LiDAR + state stream."""
    labels = tuple(f"range_{i:03d}" for i in range(N_BEAMS)) + ("state_v", "state_w")
    units = ("m",) * N_BEAMS + ("normalised", "normalised")
    return StreamInfo(name, "LidarScan", SCAN_CHANNELS, rate_hz, "float32", labels, units,
                      metadata={"beams": N_BEAMS, "fov_deg": 270.0, "resolution_deg": 0.5,
                                "beam0": "right (-135 deg)", "state": "v / 1 m/s, -omega / omega_max"})


def steering_info(rate_hz: float) -> StreamInfo:
    return StreamInfo("steering", "Control", 1, rate_hz, "float64", ("steering",), ("normalised",),
                      metadata={"range": [-1, 1], "positive": "turn left"})


class RobotSim(Node):
    """The 2-D robot simulator as a closed-loop node (see :mod:`nodes.control.simulator`).

    Args:
        world: world description file (YAML), default ``configs/worlds/default.yaml``.
        seed: world seed (obstacles and start pose).
        episode_s: episode length in seconds (default: the world file's, 60 s).
        picture: write a PNG of the world and the trajectory here when the episode ends (optional).
        label: the controller's name for the picture's title (optional).
    """

    kind: ClassVar[str] = "robot_sim"
    inputs: ClassVar[tuple[str, ...]] = ("command",)
    outputs: ClassVar[tuple[str, ...]] = ("scan",)
    feedback_inputs: ClassVar[tuple[str, ...]] = ("command",)

    def __init__(self, world: str = DEFAULT_WORLD, seed: int = 0, episode_s: float | None = None,
                 picture: str | None = None, label: str | None = None) -> None:
        from nodes.control.simulator import RobotEnv

        self.env = RobotEnv.from_file(world, episode_s=episode_s)
        self.world_path, self.seed, self.picture, self.label = world, int(seed), picture, label
        self.rate = self.env.spec.rate_hz
        self._counts = {"commands": 0, "bad_commands": 0, "late_commands": 0}
        self._picture_written: str | None = None

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        return {"scan": scan_info(self.rate)}

    def open_feedback(self, port: str, info: StreamInfo) -> None:
        if info.channel_count != 1:
            raise StreamMismatch(port, "channel count", 1, info.channel_count, "a steering command")

    def _emit(self, obs, t_enter: float) -> Outputs:
        row = np.concatenate([obs.scan, obs.state]).astype(np.float32)[None, :]
        ts = np.array([self.t0 + self.env.t * self.env.dt])
        return {"scan": Packet(row, ts, t_enter)}

    def start(self) -> Outputs:
        self.t0 = local_clock()
        obs = self.env.reset(self.seed)
        return self._emit(obs, local_clock())

    def process(self, port: str, packet: Packet) -> Outputs:
        out: Outputs = {}
        for value in packet.data[:, 0]:
            if self.env.done:
                self._counts["late_commands"] += 1  # commands after the end of the episode
                continue
            self._counts["commands"] += 1
            if not np.isfinite(value):
                self._counts["bad_commands"] += 1
            obs = self.env.step(float(value))
            if self.env.done:
                self._finish()
                return {}
            out = self._emit(obs, packet.t_enter)
        return out

    def _finish(self) -> None:
        if self.picture and self._picture_written is None:
            title = ""
            if self.label:
                sm = self.env.summary()
                title = (f"{self.label} in a '{self.env.spec.name}' world (seed {self.seed}): {sm['collisions']} collisions, "
                         f"{sm['path_m']:.1f} m, {sm['cells_visited']} cells")
            self._picture_written = str(self.env.plot(self.picture, title=title))

    def counters(self) -> dict[str, int]:
        return dict(self._counts, collisions=getattr(self.env, "collisions", 0))

    def report(self) -> dict[str, Any]:
        if self.env.world is None:
            return {}
        s = self.env.summary()
        s.update(world=self.world_path, episode_done=self.env.done, picture=self._picture_written)
        return s

    def state(self) -> dict[str, Any]:
        return {"counts": dict(self._counts)}


class _Controller(Node):
    """Shared plumbing: check the 543-channel input, run ``decide`` per scan, count bad scans."""

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        info = require(inputs, "in", channel_count=SCAN_CHANNELS)
        self.rate = info.nominal_rate
        self._bad = 0
        self._decisions = 0
        self._last = 0.0
        return {"out": steering_info(info.nominal_rate)}

    def decide(self, scan: np.ndarray, state: np.ndarray) -> float:
        raise NotImplementedError

    def process(self, port: str, packet: Packet) -> Outputs:
        out = np.empty((packet.n_samples, 1))
        for i, row in enumerate(packet.data):
            if not np.all(np.isfinite(row)):
                self._bad += 1
            else:
                self._last = float(self.decide(row[:N_BEAMS], row[N_BEAMS:]))
                self._decisions += 1
            out[i, 0] = self._last
        return {"out": packet.derive(out)}

    def counters(self) -> dict[str, int]:
        return {"decisions": self._decisions, "bad_scans": self._bad}


def _load(model: str):
    from nodes.control.kernels import load_params

    if not model:
        raise UserError("a controller node needs params.model (a CRNN model file)")
    return load_params(model)


class CrnnController(_Controller):
    """Float or quantised CRNN controller (numpy).

    Args:
        model: CRNN model file (.npz, family ``controller``).
        mode: "float" (the float weights; a quantised file's float path) or "quant" (quantised twin).
    """

    kind: ClassVar[str] = "crnn_controller"

    def __init__(self, model: str, mode: Literal["float", "quant"] = "float") -> None:
        from nodes.control.kernels import CrnnKernel

        if mode not in ("float", "quant"):
            raise UserError(f"crnn_controller: mode must be 'float' or 'quant', got {mode!r}")
        params = _load(model)
        if mode == "quant" and params.levels is None:
            raise UserError(f"{model}: mode 'quant' needs a quantised model (train with --levels L)")
        self.kernel = CrnnKernel(params, batch=1, mode=mode)

    def decide(self, scan: np.ndarray, state: np.ndarray) -> float:
        return float(self.kernel.step(scan[None, :], state[None, :])[0])

    def state(self) -> dict[str, Any]:
        return {"h": self.kernel.h.copy()}

    def restore(self, state: dict[str, Any]) -> None:
        self.kernel.h = np.array(state["h"])


class BifController(_Controller):
    """Spiking (bipolar integrate-and-fire) controller converted from a quantised CRNN (numpy).

    Args:
        model: quantised CRNN model file (trained with ``--levels L``).
        timesteps: T, simulation steps per scan (default: the model file's ``timesteps``, the T at
            which its spiking output equals the quantised one; 16 if the file has none).
    """

    kind: ClassVar[str] = "bif_controller"

    def __init__(self, model: str, timesteps: int | None = None) -> None:
        from nodes.control.kernels import BifKernel

        params = _load(model)
        if params.levels is None:
            raise UserError(f"{model}: the spiking controller needs a quantised model (train with --levels L)")
        if timesteps is None:
            timesteps = int(params.meta.get("timesteps") or 16)
        self.kernel = BifKernel(params, timesteps=int(timesteps), batch=1)
        self._spikes = 0.0

    def decide(self, scan: np.ndarray, state: np.ndarray) -> float:
        u = float(self.kernel.step(scan[None, :], state[None, :])[0])
        self._spikes += float(self.kernel.last_spikes[0])
        return u

    def report(self) -> dict[str, Any]:
        n = max(self._decisions, 1)
        return {"timesteps": self.kernel.timesteps, "spikes_per_decision": self._spikes / n}

    def state(self) -> dict[str, Any]:
        return {"h": self.kernel.h.copy()}

    def restore(self, state: dict[str, Any]) -> None:
        self.kernel.h = np.array(state["h"])


class GapController(_Controller):
    """Follow-the-gap baseline (no model). Params as :class:`nodes.control.planners.FollowTheGap`."""

    kind: ClassVar[str] = "gap_controller"

    def __init__(self, robot_radius_m: float = 0.2, margin_m: float = 0.25, gap_range_m: float = 1.5) -> None:
        from nodes.control.planners import FollowTheGap

        self.planner = FollowTheGap(robot_radius_m=robot_radius_m, margin_m=margin_m, gap_range_m=gap_range_m)

    def decide(self, scan: np.ndarray, state: np.ndarray) -> float:
        return self.planner(scan, state)

