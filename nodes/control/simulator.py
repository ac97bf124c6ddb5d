"""A small 2-D robot simulator in numpy: differential-drive robot, 2-D LiDAR, obstacles, collisions.

Environment interface (also used directly by the closed-loop evaluation, for speed)::

    env = RobotEnv(WorldSpec(...))          # or RobotEnv.from_file("configs/worlds/default.yaml")
    obs = env.reset(seed)                   # a new random world (and start pose) for this seed
    while not env.done:
        obs = env.step(steering)            # steering in [-1, 1], +1 turns left
    env.summary()                           # collisions, path length, clearance, ...

``obs`` is an :class:`Observation`: ``scan`` (541,) float32 ranges in metres, beam i at angle
(-135 + 0.5 i) degrees from the heading (beam 0 on the right, 270 at the front, 540 on the left;
the layout of the real SICK scanner in the ICRA 2020 traces), a beam that hits nothing within
``max_range_m`` reads ``max_range_m``; ``state`` (2,) float32 = (v / 1 m/s, -omega / omega_max),
the two state-estimator values of the real traces (linear and angular velocity; the real angular
value correlates negatively with the steering, so its sign is kept that way), clipped to [-1, 1].

Geometry and units: metres, radians, seconds; the world is a rectangle with walls, circles and
line segments (boxes are 4 segments). The robot is a disc of ``radius_m`` moving at the constant
speed ``speed_m_s``; the command sets the turn rate omega = steering * ``max_turn_rad_s``; the pose
is integrated exactly along the arc over each control period (1 / ``rate_hz``).

Collisions: a step that would bring the robot's disc into an obstacle is refused (the robot keeps
its position but turns), and a *collision* is counted when such contact begins (a run of
consecutive blocked steps, and the slide that follows until the clearance exceeds 5 cm, is one
collision). Clearance is the exact distance from the robot's disc
to the nearest obstacle (metres), computed from the geometry, not from the LiDAR.

Sensor model (on by default, ``WorldSpec.range_noise_m`` / ``dropout_rate``): every range gets
Gaussian noise of ``range_noise_m`` (default 0.012 m, the statistical error of a SICK LMS1xx), and
each beam independently reads exactly 0 (an invalid return, as the real scanner reports it) with
probability ``dropout_rate`` (default 0.0127, measured on the real ICRA 2020 scans:
``nodes.control.dataset.ZERO_RETURN_RATE``). The noise is drawn from a generator seeded with the
world seed, so an episode is reproducible. Set both to 0 for the ideal sensor.

Progress (in every summary): ``path_m`` (distance covered), ``cells_visited`` (distinct
``CELL_M`` x ``CELL_M`` cells the robot's centre entered) -- a robot that circles near its start
covers path but few cells.

World families (``configs/worlds/*.yaml``): random circles and boxes; optional fixed
``segments``/``circles``; ``corridor_width_m`` (a rectangular corridor loop around a central
block whose width is drawn per seed); ``rooms`` [nx, ny] (interior walls split the arena into
rooms, each wall with one doorway of ``door_width_m``). Every start (random or fixed) is checked
against every obstacle, walls included; seeds are split into ``SEED_RANGES`` (train /
validation / test) so a controller is never tested in worlds it was trained or selected on.

Speed: ray casting is vectorised over beams x obstacles (541 x ~40 per step); a 60 s episode at
20 Hz (1200 steps) takes a fraction of a second.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from pipeline.errors import UserError

N_BEAMS = 541
CELL_M = 0.5
"""Side of the grid cells counted by ``cells_visited`` (metres)."""
SEED_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 100_000),
    "validation": (100_000, 200_000),
    "test": (1_000_000, 2_000_000),
}
"""World seeds per purpose, [start, stop): training episodes, model selection, evaluation."""
FOV_DEG = 270.0
BEAM_ANGLES = np.deg2rad(-FOV_DEG / 2 + 0.5 * np.arange(N_BEAMS))
"""Beam angles (541,) in radians relative to the heading, -135 deg ... +135 deg."""


@dataclass
class WorldSpec:
    """How worlds are generated (a ``configs/worlds/*.yaml`` file holds these keys).

    Attributes:
        name: world name.
        width_m, height_m: arena size, walls all around.
        circles_per_m2: density of random round obstacles (posts, bins, people).
        circle_radius_m: [min, max] radius of the round obstacles.
        boxes_per_m2: density of random axis-aligned boxes (furniture).
        box_size_m: [min, max] side length of the boxes.
        start_clearance_m: free radius kept around the start position.
        circles, segments: fixed obstacles, [[x, y, r], ...] and [[x1, y1, x2, y2], ...].
        start: fixed start pose [x, y, heading_rad], or None for a random free one.
        corridor_width_m: [min, max] width of a rectangular corridor loop around a central block
            (drawn per seed), or None.
        rooms: [nx, ny] rooms separated by interior walls with one doorway each, or None.
        door_width_m: [min, max] doorway width (metres).
        range_noise_m: standard deviation of the Gaussian range noise (metres; 0 = none).
        dropout_rate: probability that a beam reads 0 (invalid return; 0 = none).
        robot_radius_m, speed_m_s, max_turn_rad_s: the robot.
        max_range_m: LiDAR range.
        rate_hz: control rate.
        episode_s: episode length in seconds.
    """

    name: str = "default"
    width_m: float = 10.0
    height_m: float = 10.0
    circles_per_m2: float = 0.10
    circle_radius_m: tuple[float, float] = (0.1, 0.35)
    boxes_per_m2: float = 0.03
    box_size_m: tuple[float, float] = (0.3, 1.0)
    start_clearance_m: float = 1.0
    circles: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    start: list | None = None
    corridor_width_m: tuple[float, float] | None = None
    rooms: tuple[int, int] | None = None
    door_width_m: tuple[float, float] = (0.9, 1.4)
    range_noise_m: float = 0.012
    dropout_rate: float = 0.0127
    robot_radius_m: float = 0.2
    speed_m_s: float = 0.4
    max_turn_rad_s: float = 1.5
    max_range_m: float = 7.7
    rate_hz: float = 20.0
    episode_s: float = 60.0

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "world") -> "WorldSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"{source}: unknown world key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        spec = cls(**d)
        for key in ("width_m", "height_m", "robot_radius_m", "speed_m_s", "max_turn_rad_s", "max_range_m", "rate_hz", "episode_s"):
            if not float(getattr(spec, key)) > 0:
                raise UserError(f"{source}: {key} must be > 0, got {getattr(spec, key)!r}")
        if not 0 <= float(spec.dropout_rate) < 1 or float(spec.range_noise_m) < 0:
            raise UserError(f"{source}: dropout_rate must be in [0, 1) and range_noise_m >= 0")
        return spec

    @classmethod
    def from_file(cls, path: str | Path) -> "WorldSpec":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise UserError(f"world file not found: {path}")
        d = yaml.safe_load(path.read_text()) or {}
        if not isinstance(d, dict):
            raise UserError(f"{path}: a world file is a mapping of keys")
        return cls.from_dict(d, str(path))


@dataclass
class World:
    """One concrete world: circles (K, 3) [x, y, r], segments (M, 4) [x1, y1, x2, y2], start pose (3,)."""

    circles: np.ndarray
    segments: np.ndarray
    start: np.ndarray
    width_m: float
    height_m: float


def _box_segments(x0: float, y0: float, w: float, h: float) -> list[list[float]]:
    c = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    return [[*c[i], *c[(i + 1) % 4]] for i in range(4)]


def point_clearance(p: np.ndarray, circles: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distance (metres) from points p (N, 2) to the nearest obstacle surface -> (N,)."""
    d = np.full(p.shape[0], np.inf)
    if len(circles):
        d = np.minimum(d, (np.linalg.norm(p[:, None, :] - circles[None, :, :2], axis=2) - circles[None, :, 2]).min(axis=1))
    if len(segments):
        a, b = segments[:, :2], segments[:, 2:]
        ab = b - a
        t = np.clip(np.einsum("nmk,mk->nm", p[:, None, :] - a[None], ab) / np.maximum((ab ** 2).sum(1), 1e-12), 0, 1)
        closest = a[None] + t[..., None] * ab[None]
        d = np.minimum(d, np.linalg.norm(p[:, None, :] - closest, axis=2).min(axis=1))
    return d


def _structure(spec: WorldSpec, rng: np.random.Generator) -> list[list[float]]:
    """Fixed walls of the family drawn for one seed: corridor block, room walls with doorways."""
    w, h = spec.width_m, spec.height_m
    segs: list[list[float]] = []
    if spec.corridor_width_m is not None:
        cw = rng.uniform(*spec.corridor_width_m)
        if 2 * cw >= min(w, h) - 0.5:
            raise UserError(f"world {spec.name}: corridor_width_m {spec.corridor_width_m} leaves no central block "
                            f"in a {w} x {h} m arena")
        segs += _box_segments(cw, cw, w - 2 * cw, h - 2 * cw)
    if spec.rooms is not None:
        nx, ny = (int(v) for v in spec.rooms)
        lo, hi = spec.door_width_m
        for i in range(1, nx):  # vertical walls x = i w / nx, one doorway per room row
            x = i * w / nx
            for j in range(ny):
                y0, y1 = j * h / ny, (j + 1) * h / ny
                d = rng.uniform(lo, hi)
                c = rng.uniform(y0 + 0.3 + d / 2, y1 - 0.3 - d / 2)
                segs += [[x, y0, x, c - d / 2], [x, c + d / 2, x, y1]]
        for j in range(1, ny):  # horizontal walls, one doorway per room column
            y = j * h / ny
            for i in range(nx):
                x0, x1 = i * w / nx, (i + 1) * w / nx
                d = rng.uniform(lo, hi)
                c = rng.uniform(x0 + 0.3 + d / 2, x1 - 0.3 - d / 2)
                segs += [[x0, y, c - d / 2, y], [c + d / 2, y, x1, y]]
    return segs


def make_world(spec: WorldSpec, seed: int) -> World:
    """Draw a world from ``spec`` with ``seed`` (same seed, same world).

    The family's fixed structure (outer walls, ``segments``, ``circles``, corridor block, room
    walls) comes first; the start (fixed or random) must keep ``start_clearance_m`` from all of
    it (a random start is redrawn up to 2,000 times, a fixed one that does not raises
    :class:`UserError`); random obstacles then keep the same clearance from the start.
    """
    rng = np.random.default_rng(seed)
    w, h = spec.width_m, spec.height_m
    segs = _box_segments(0.0, 0.0, w, h) + [list(map(float, s)) for s in spec.segments] + _structure(spec, rng)
    circles = [list(map(float, c)) for c in spec.circles]
    keep = spec.start_clearance_m + spec.robot_radius_m
    fixed_c = np.array(circles, dtype=float).reshape(-1, 3)
    fixed_s = np.array(segs, dtype=float).reshape(-1, 4)
    if spec.start is not None:
        start = np.array(spec.start, dtype=float)
        clear = point_clearance(start[None, :2], fixed_c, fixed_s)[0] - spec.robot_radius_m
        if clear < 0:
            raise UserError(f"world {spec.name}: the fixed start {list(spec.start)} is inside an obstacle "
                            f"(clearance {clear:.2f} m)")
    else:
        margin = spec.robot_radius_m + 0.05
        for _attempt in range(2000):
            start = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin), rng.uniform(-np.pi, np.pi)])
            if point_clearance(start[None, :2], fixed_c, fixed_s)[0] >= keep:
                break
        else:
            raise UserError(f"world {spec.name} seed {seed}: no start position with {spec.start_clearance_m} m "
                            f"clearance from the walls (lower start_clearance_m)")
    for _ in range(int(round(spec.circles_per_m2 * w * h))):
        for _attempt in range(20):
            r = rng.uniform(*spec.circle_radius_m)
            c = rng.uniform([r, r], [w - r, h - r])
            if np.linalg.norm(c - start[:2]) - r > keep:
                circles.append([c[0], c[1], r])
                break
    for _ in range(int(round(spec.boxes_per_m2 * w * h))):
        for _attempt in range(20):
            bw, bh = rng.uniform(*spec.box_size_m, size=2)
            x0, y0 = rng.uniform([0, 0], [w - bw, h - bh])
            nearest = np.clip(start[:2], [x0, y0], [x0 + bw, y0 + bh])
            if np.linalg.norm(nearest - start[:2]) > keep:
                segs += _box_segments(x0, y0, bw, bh)
                break
    return World(np.array(circles, dtype=float).reshape(-1, 3), np.array(segs, dtype=float).reshape(-1, 4), start, w, h)


CONTACT_RELEASE_M = 0.05
"""A contact (one collision) ends once the clearance exceeds this (metres): a glancing slide along
an obstacle is one collision, not one per refused step."""

_BEAM_DIRS = np.stack([np.cos(BEAM_ANGLES), np.sin(BEAM_ANGLES)], axis=1)  # (541, 2) robot frame


def cast_rays(origin: np.ndarray, heading: float, world: World, max_range: float,
              angles: np.ndarray | None = None) -> np.ndarray:
    """Ranges (metres) along rays from ``origin`` (2,) -> (N,).

    Ray i points at ``heading + angles[i]`` (radians; default the 541 LiDAR beams). The obstacles
    are moved into the robot's frame (cheap: one per obstacle), so the beam directions are
    constants; the beams x obstacles loop is compiled (numba, :func:`_cast`): about 40x faster
    than the same arithmetic as (N x obstacles) numpy arrays, which made 200-world evaluations
    slow.
    """
    d = _BEAM_DIRS if angles is None else np.stack([np.cos(angles), np.sin(angles)], axis=1)
    c, s = np.cos(heading), np.sin(heading)
    rot = np.array([[c, -s], [s, c]])  # world->robot: p_robot = (p - origin) @ rot
    oc = (world.circles[:, :2] - origin) @ rot  # (K, 2) circle centres
    a = (world.segments[:, :2] - origin) @ rot  # (M, 2) segment starts
    e = (world.segments[:, 2:] - world.segments[:, :2]) @ rot  # (M, 2) segment directions
    return _cast(np.ascontiguousarray(d, dtype=np.float64), np.ascontiguousarray(oc), world.circles[:, 2].copy(),
                 np.ascontiguousarray(a), np.ascontiguousarray(e), float(max_range))


@njit(cache=True, error_model="numpy")
def _cast(d, oc, radius, a, e, max_range):  # pragma: no cover - compiled
    """The beams x obstacles loop of :func:`cast_rays` (robot frame): nearest positive hit per beam."""
    n = d.shape[0]
    best = np.full(n, max_range)
    for i in range(n):
        dx, dy = d[i, 0], d[i, 1]
        r = max_range
        for k in range(oc.shape[0]):
            b = dx * oc[k, 0] + dy * oc[k, 1]  # projection of the centre on the ray
            disc = b * b - (oc[k, 0] * oc[k, 0] + oc[k, 1] * oc[k, 1] - radius[k] * radius[k])
            if disc >= 0.0:
                t = b - np.sqrt(disc)
                if 0.0 < t < r:
                    r = t
        for m in range(a.shape[0]):
            denom = dx * e[m, 1] - dy * e[m, 0]  # cross(d, e)
            if denom == 0.0:
                continue
            u = (dy * a[m, 0] - dx * a[m, 1]) / denom  # position on the segment, 0..1
            t = (a[m, 0] * e[m, 1] - a[m, 1] * e[m, 0]) / denom  # distance along the ray
            if 0.0 <= u <= 1.0 and 0.0 < t < r:
                r = t
        best[i] = r
    return best


@dataclass
class Observation:
    """What the robot senses each step: scan (541,) float32 metres; state (2,) float32 in [-1, 1]."""

    scan: np.ndarray
    state: np.ndarray


class RobotEnv:
    """The environment: ``reset(seed)`` -> Observation, ``step(steering)`` -> Observation.

    Attributes after ``reset``: ``world``, ``pose`` (3,) [x, y, heading], ``trajectory`` list of
    poses, ``done`` (True once ``episode_s`` has elapsed), ``collisions``, ``path_m``,
    ``min_clearance_m``, ``clearances`` (per-step list, metres).
    """

    def __init__(self, spec: WorldSpec | None = None) -> None:
        self.spec = spec or WorldSpec()
        self.dt = 1.0 / self.spec.rate_hz
        self.n_steps = int(round(self.spec.episode_s * self.spec.rate_hz))
        self.world: World | None = None

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "RobotEnv":
        spec = WorldSpec.from_file(path)
        for k, v in overrides.items():
            if v is not None:
                setattr(spec, k, v)
        return cls(spec)

    def reset(self, seed: int = 0) -> Observation:
        """Build the world for ``seed``, place the robot, return the first observation."""
        self.seed = seed
        self.world = make_world(self.spec, seed)
        self.noise_rng = np.random.default_rng([seed, 7])  # sensor noise: reproducible per world
        self.cells: set[tuple[int, int]] = set()
        self.pose = self.world.start.astype(float).copy()
        self.omega = 0.0
        self.t = 0
        self.collisions = 0
        self.blocked_steps = 0
        self._in_contact = False
        self.path_m = 0.0
        self.trajectory = [self.pose.copy()]
        self.collision_points: list[np.ndarray] = []
        self.clearances = [self.clearance()]
        self._visit()
        return self.observe()

    def _visit(self) -> None:
        self.cells.add((int(self.pose[0] // CELL_M), int(self.pose[1] // CELL_M)))

    @property
    def done(self) -> bool:
        return self.t >= self.n_steps

    def clearance(self, xy: np.ndarray | None = None) -> float:
        """Distance (m) from the robot's disc to the nearest obstacle (negative = overlap)."""
        p = self.pose[:2] if xy is None else xy
        w = self.world
        return float(point_clearance(p[None, :], w.circles, w.segments)[0] - self.spec.robot_radius_m)

    def observe(self) -> Observation:
        """The current scan and state (see the module docstring)."""
        s = self.spec
        scan = cast_rays(self.pose[:2], self.pose[2], self.world, s.max_range_m)
        if s.range_noise_m > 0:
            scan = np.clip(scan + self.noise_rng.normal(0.0, s.range_noise_m, scan.shape), 0.01, s.max_range_m)
        if s.dropout_rate > 0:
            scan[self.noise_rng.random(scan.shape) < s.dropout_rate] = 0.0
        scan = scan.astype(np.float32)
        state = np.clip([s.speed_m_s / 1.0, -self.omega / s.max_turn_rad_s], -1, 1).astype(np.float32)
        return Observation(scan, state)

    def step(self, steering: float) -> Observation:
        """Apply ``steering`` (clipped to [-1, 1]; NaN counts as 0) for one control period."""
        if self.world is None:
            raise RuntimeError("call reset(seed) before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset(seed)")
        u = float(steering)
        if not np.isfinite(u):
            u = 0.0
        u = min(1.0, max(-1.0, u))
        s = self.spec
        self.omega = u * s.max_turn_rad_s
        x, y, th = self.pose
        v, w, dt = s.speed_m_s, self.omega, self.dt
        if abs(w) < 1e-9:
            nx, ny = x + v * dt * np.cos(th), y + v * dt * np.sin(th)
        else:
            nx = x + v / w * (np.sin(th + w * dt) - np.sin(th))
            ny = y - v / w * (np.cos(th + w * dt) - np.cos(th))
        nth = (th + w * dt + np.pi) % (2 * np.pi) - np.pi
        new_xy = np.array([nx, ny])
        clear = self.clearance(new_xy)
        if clear < 0:  # refused: contact
            if not self._in_contact:
                self.collisions += 1
                self.collision_points.append(new_xy)
            self._in_contact = True
            self.blocked_steps += 1
            self.pose = np.array([x, y, nth])
            clear = self.clearance()
        else:
            if clear > CONTACT_RELEASE_M:
                self._in_contact = False
            self.path_m += float(np.hypot(nx - x, ny - y))
            self.pose = np.array([nx, ny, nth])
            self._visit()
        self.clearances.append(clear)
        self.trajectory.append(self.pose.copy())
        self.t += 1
        return self.observe()

    def summary(self) -> dict[str, Any]:
        """Outcome of the episode so far (metres, seconds, counts)."""
        c = np.array(self.clearances)
        return {
            "seed": self.seed,
            "steps": self.t,
            "duration_s": self.t * self.dt,
            "collisions": self.collisions,
            "blocked_steps": self.blocked_steps,
            "path_m": self.path_m,
            "cells_visited": len(self.cells),
            "min_clearance_m": float(c.min()),
            "collision_free": self.collisions == 0,
        }

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Write a PNG of the world, the trajectory, the start (green) and collisions (red x)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Circle

        w = self.world
        fig, ax = plt.subplots(figsize=(7.6, 6 * w.height_m / w.width_m), layout="constrained")
        for cx, cy, r in w.circles:
            ax.add_patch(Circle((cx, cy), r, color="0.35"))
        for x1, y1, x2, y2 in w.segments:
            ax.plot([x1, x2], [y1, y2], color="0.2", lw=2)
        tr = np.array(self.trajectory)
        ax.plot(tr[:, 0], tr[:, 1], color="tab:blue", lw=1.2, label="trajectory")
        ax.plot(*tr[0, :2], "o", color="tab:green", label="start")
        ax.add_patch(Circle(tuple(tr[-1, :2]), self.spec.robot_radius_m, fill=False, color="tab:blue"))
        if self.collision_points:
            cp = np.array(self.collision_points)
            ax.plot(cp[:, 0], cp[:, 1], "x", color="red", ms=9, mew=2, label="collision")
        s = self.summary()
        ax.set_title(title or f"{self.spec.name} seed {self.seed}: {s['collisions']} collisions, "
                     f"{s['path_m']:.1f} m, min clearance {s['min_clearance_m']:.2f} m", fontsize=9)
        ax.set_xlim(-0.2, w.width_m + 0.2)
        ax.set_ylim(-0.2, w.height_m + 0.2)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_aspect("equal")
        # legend outside the arena so it never hides the trajectory
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


class LidarNavEnv:
    """A gymnasium-style wrapper of :class:`RobotEnv` (the ``gymnasium.Env`` API, duck-typed: no
    gymnasium dependency; ``observation_space``/``action_space`` are gymnasium ``Box`` objects when
    gymnasium is installed, else None).

    ``reset(seed=None, options=None) -> (obs, info)``; ``step(action) -> (obs, reward, terminated,
    truncated, info)``. ``obs`` (543,) float32 = 541 ranges (metres) + 2 state values; ``action``
    a steering command in [-1, 1] (a float or an array of shape (1,)). Reward per step: metres
    travelled + 1 per newly visited ``CELL_M`` cell - 10 per collision. ``terminated`` is True at
    the first collision when ``stop_on_collision`` (default), ``truncated`` when the episode time
    is over. ``info`` carries the episode summary (:meth:`RobotEnv.summary`).

    Args:
        spec: the world family (a :class:`WorldSpec`) or a world file path.
        stop_on_collision: end the episode at the first collision.
    """

    metadata = {"render_modes": []}

    def __init__(self, spec: WorldSpec | str | Path | None = None, stop_on_collision: bool = True) -> None:
        if isinstance(spec, (str, Path)):
            spec = WorldSpec.from_file(spec)
        self.env = RobotEnv(spec)
        self.stop_on_collision = stop_on_collision
        self.observation_space = self.action_space = None
        try:  # optional: real gymnasium spaces when gymnasium is installed
            from gymnasium import spaces

            hi = np.concatenate([np.full(N_BEAMS, self.env.spec.max_range_m), [1.0, 1.0]]).astype(np.float32)
            lo = np.concatenate([np.zeros(N_BEAMS), [-1.0, -1.0]]).astype(np.float32)
            self.observation_space = spaces.Box(lo, hi, dtype=np.float32)
            self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        except ImportError:
            pass
        self._next_seed = SEED_RANGES["train"][0]

    @staticmethod
    def _pack(obs: Observation) -> np.ndarray:
        return np.concatenate([obs.scan, obs.state]).astype(np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A new world: ``seed`` picks it (None: the next training seed)."""
        if seed is None:
            seed, self._next_seed = self._next_seed, self._next_seed + 1
        obs = self.env.reset(int(seed))
        return self._pack(obs), self.env.summary()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        before = (self.env.path_m, len(self.env.cells), self.env.collisions)
        obs = self.env.step(float(np.asarray(action, dtype=float).reshape(-1)[0]))
        hit = self.env.collisions - before[2]
        reward = (self.env.path_m - before[0]) + (len(self.env.cells) - before[1]) - 10.0 * hit
        terminated = bool(hit and self.stop_on_collision)
        return self._pack(obs), float(reward), terminated, bool(self.env.done and not terminated), self.env.summary()

    def close(self) -> None:
        """Nothing to release."""
