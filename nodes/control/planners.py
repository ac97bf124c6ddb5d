"""Classic reactive controllers that work from the LiDAR scan alone (numpy, no learning).

* :class:`FollowTheGap` — the baseline (Sezer & Gokasan 2012, in its common reactive form):
  clear a safety bubble around the nearest return, find the widest run of beams that see far
  enough ahead, steer towards the middle of that gap.
* :class:`ArcPlanner` — the *expert* that labels simulator data for fine-tuning: it rolls out
  constant-steering arcs of the robot (its real kinematics) for ``horizon_s`` against the scan's
  points and picks the arc with the longest collision-free run, then the widest clearance, with
  a small preference for going straight and for keeping the previous command. Being a function
  of the scan (and its own previous command, which the state values reflect), a network can learn
  it.

Both take ``(scan (541,) metres, state (2,))`` and return a steering command in [-1, 1]
(+1 turns left), like the learned controllers.
"""
from __future__ import annotations

import numpy as np

from nodes.control.simulator import BEAM_ANGLES


class FollowTheGap:
    """Follow-the-gap steering.

    Args:
        robot_radius_m: robot radius; the bubble around the nearest return is this plus ``margin_m``.
        margin_m: extra clearance (metres).
        gap_range_m: a beam belongs to a gap when it reads at least this far (metres).
        max_turn_rad_s: turn rate at steering 1 (to turn the heading error into a command).
        gain: steering per radian of heading error, in units of max_turn_rad_s per second.
        fov_deg: only beams within +-fov_deg/2 of the heading are considered.
        fill_invalid: replace 0 readings (invalid returns) by their smallest valid neighbour
            within 2 beams first (``nodes.control.kernels.fill_invalid``); without it a single
            zero return becomes the "nearest obstacle" and its bubble blanks the scan.
    """

    def __init__(self, robot_radius_m: float = 0.2, margin_m: float = 0.25, gap_range_m: float = 1.5,
                 max_turn_rad_s: float = 1.5, gain: float = 1.5, fov_deg: float = 200.0,
                 fill_invalid: bool = False) -> None:
        self.fill = fill_invalid
        self.bubble = robot_radius_m + margin_m
        self.gap_range = gap_range_m
        self.gain = gain / max_turn_rad_s
        self.use = np.abs(BEAM_ANGLES) <= np.deg2rad(fov_deg / 2)

    def reset(self) -> None:
        """No state."""

    def __call__(self, scan: np.ndarray, state: np.ndarray | None = None) -> float:
        if self.fill:
            from nodes.control.kernels import fill_invalid

            scan = fill_invalid(scan)
        r = np.where(self.use, np.asarray(scan, dtype=float), 0.0)
        r = np.where(r <= 0, 0.0, r)
        valid = np.flatnonzero(self.use)
        near = valid[np.argmin(r[valid])]
        # clear the bubble: beams whose angular distance from the nearest return is within the bubble
        half = np.arcsin(min(1.0, self.bubble / max(r[near], 1e-3)))
        r[np.abs(BEAM_ANGLES - BEAM_ANGLES[near]) <= half] = 0.0
        free = r >= min(self.gap_range, r.max())
        # widest run of free beams
        edges = np.diff(np.concatenate([[0], free.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if len(starts) == 0:
            return 1.0  # boxed in: turn on the spot (as far as the kinematics allow)
        widest = np.argmax(stops - starts)
        lo, hi = starts[widest], stops[widest]
        target = BEAM_ANGLES[(lo + hi - 1) // 2]
        return float(np.clip(self.gain * target, -1.0, 1.0))


class ArcPlanner:
    """Constant-steering arc roll-outs against the world's exact geometry (the simulator's expert).

    A privileged expert: it reads the obstacles from the simulator (``env.world``) instead of the
    scan, which makes it fast (21 arcs x 12 samples against ~40 obstacles per decision) and
    removes sensor artefacts from the labels. Everything it avoids within its horizon is in the
    LiDAR's view, so a scan-driven network can imitate it.

    Args:
        speed_m_s, max_turn_rad_s, robot_radius_m: the robot (as in the world spec).
        margin_m: wanted clearance beyond the radius (metres).
        horizon_s: roll-out length (seconds); ``points`` samples along each arc.
        candidates: number of steering values in [-1, 1].
        straight_weight, smooth_weight: preference for small and for unchanged commands.
    """

    def __init__(self, speed_m_s: float = 0.4, max_turn_rad_s: float = 1.5, robot_radius_m: float = 0.2,
                 margin_m: float = 0.25, horizon_s: float = 4.0, points: int = 12, candidates: int = 21,
                 straight_weight: float = 0.1, smooth_weight: float = 0.1) -> None:
        self.u = np.linspace(-1, 1, candidates)
        tau = np.linspace(horizon_s / points, horizon_s, points)
        w = self.u[:, None] * max_turn_rad_s
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(np.abs(w) > 1e-9, np.sin(w * tau) / w, tau) * speed_m_s
            y = np.where(np.abs(w) > 1e-9, (1 - np.cos(w * tau)) / w, 0.0) * speed_m_s
        self.arcs = np.stack([x, y], axis=-1)  # (C, P, 2) robot frame
        self.tau = tau
        self.radius, self.margin = robot_radius_m, margin_m
        self.horizon = horizon_s
        self.straight_weight, self.smooth_weight = straight_weight, smooth_weight
        self.prev = 0.0

    def reset(self) -> None:
        self.prev = 0.0

    @classmethod
    def for_env(cls, env, **kw) -> "ArcPlanner":
        s = env.spec
        return cls(speed_m_s=s.speed_m_s, max_turn_rad_s=s.max_turn_rad_s, robot_radius_m=s.robot_radius_m, **kw)

    def __call__(self, env) -> float:
        """Steering for the robot of ``env`` (a :class:`RobotEnv` after ``reset``)."""
        from nodes.control.simulator import point_clearance

        x, y, th = env.pose
        c, s = np.cos(th), np.sin(th)
        pts = self.arcs.reshape(-1, 2) @ np.array([[c, s], [-s, c]]) + np.array([x, y])
        clear = point_clearance(pts, env.world.circles, env.world.segments).reshape(self.arcs.shape[:2]) - self.radius
        hit = clear < 0.02
        first = np.where(hit.any(1), np.argmax(hit, axis=1), len(self.tau))
        free = np.where(first == len(self.tau), self.horizon, np.where(first > 0, self.tau[np.maximum(first - 1, 0)], 0.0))
        near = np.minimum(clear[:, :6].min(1), self.margin * 2) / self.margin  # clearance in the first 1.5 s
        score = free / self.horizon + 0.5 * near - self.straight_weight * np.abs(self.u) \
            - self.smooth_weight * np.abs(self.u - self.prev)
        u = float(self.u[np.argmax(score)])
        self.prev = u
        return u
