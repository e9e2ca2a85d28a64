"""An agent's plan for rviz, Foxglove and PlotJuggler: nav_msgs/Path of its predicted positions and a
visualization_msgs/MarkerArray (current position, safety radius, tube cross-sections, links to the neighbours it
listens to coloured by the age of their last plan, planar constraint boundaries, the collision half-planes its next
position keeps), in the fixed frame `map`.

Positions come from the family's PlanarLayout (models/layout.py); the conversion to messages is all that is here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..scenarios import PlanarLayout

FRAME = "map"
PALETTE = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))
FRESH, STALE = (0.1, 0.8, 0.1), (0.9, 0.1, 0.1)   # link colours: plan of this step … older than STALE_STEPS steps
STALE_STEPS = 3.0


@dataclass(frozen=True)
class Scene:
    """What one agent draws after a step: its predicted positions (N+1 × 2, map frame), and for each neighbour
    it listens to, its position and the age of its last plan [s]."""

    agent: int
    predicted: np.ndarray
    neighbours: dict[int, tuple[np.ndarray, float]]
    halfplanes: tuple[tuple[np.ndarray, float], ...] = ()   # rows a' p ≤ b its next position keeps (collisions)


def colour(agent: int, alpha: float = 1.0) -> ColorRGBA:
    r, g, b = PALETTE[agent % len(PALETTE)]
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


def age_colour(age: float, sample_time: float) -> ColorRGBA:
    """Green for a plan of this step, through yellow, to red at STALE_STEPS sample times and older."""
    s = float(np.clip(age / (STALE_STEPS * sample_time), 0.0, 1.0))
    r, g, b = (FRESH[c] + s * (STALE[c] - FRESH[c]) for c in range(3))
    return ColorRGBA(r=r, g=g, b=b, a=1.0)


def path_message(scene: Scene, stamp: Time, sample_time: float) -> Path:
    """The predicted positions as poses, heading along the path, stamped k·Δt ahead."""
    path = Path()
    path.header.frame_id, path.header.stamp = FRAME, stamp
    points = scene.predicted
    steps = np.diff(points, axis=0)
    heading = np.vstack([steps, steps[-1:]]) if len(steps) else np.zeros_like(points)
    start = stamp.sec + stamp.nanosec * 1e-9
    for k, (p, d) in enumerate(zip(points, heading)):
        pose = PoseStamped()
        pose.header.frame_id = FRAME
        t = start + k * sample_time
        pose.header.stamp = Time(sec=int(t), nanosec=int((t % 1.0) * 1e9))
        pose.pose.position.x, pose.pose.position.y = float(p[0]), float(p[1])
        yaw = float(np.arctan2(d[1], d[0])) if np.hypot(*d) > 1e-9 else 0.0
        pose.pose.orientation.z, pose.pose.orientation.w = float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
        path.poses.append(pose)
    return path


def _marker(scene: Scene, stamp: Time, namespace: str, kind: int, alpha: float = 1.0) -> Marker:
    marker = Marker(ns=namespace, id=scene.agent, type=kind, action=Marker.ADD, frame_locked=False)
    marker.header.frame_id, marker.header.stamp = FRAME, stamp
    marker.pose.orientation.w = 1.0
    marker.color = colour(scene.agent, alpha)
    marker.lifetime = Duration(sec=0)
    return marker


def _points(rows: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=0.0) for x, y in rows]


def marker_array(scene: Scene, layout: PlanarLayout, stamp: Time, sample_time: float,
                 outline: np.ndarray | None = None) -> MarkerArray:
    """The agent's markers; `outline` is its tube's planar cross-section (robust mode: layout.tube_outline of its
    RPI set, computed once)."""
    me, here = scene.agent, scene.predicted[0]
    markers = []
    position = _marker(scene, stamp, "position", Marker.SPHERE)
    position.pose.position.x, position.pose.position.y = float(here[0]), float(here[1])
    position.scale.x = position.scale.y = position.scale.z = 0.15
    markers.append(position)
    label = _marker(scene, stamp, "label", Marker.TEXT_VIEW_FACING)
    label.pose.position.x, label.pose.position.y, label.pose.position.z = float(here[0]), float(here[1]), 0.3
    label.scale.z, label.text = 0.2, f"agent {me}"
    markers.append(label)
    if layout.radius(me) > 0:
        safety = _marker(scene, stamp, "safety_radius", Marker.CYLINDER, alpha=0.25)
        safety.pose.position.x, safety.pose.position.y = float(here[0]), float(here[1])
        safety.scale.x = safety.scale.y = 2 * layout.radius(me)
        safety.scale.z = 0.02
        markers.append(safety)
    if outline is not None:
        tubes = _marker(scene, stamp, "tube", Marker.LINE_LIST, alpha=0.6)
        tubes.scale.x = 0.01
        for centre in scene.predicted:
            ring = np.vstack([outline, outline[:1]]) + centre   # closed
            tubes.points += _points(np.repeat(ring, 2, axis=0)[1:-1])
        markers.append(tubes)
    links = _marker(scene, stamp, "links", Marker.LINE_LIST)
    links.scale.x = 0.02
    for _, (there, age) in sorted(scene.neighbours.items()):
        links.points += _points(np.vstack([here, there]))
        links.colors += [age_colour(age, sample_time)] * 2
    markers.append(links)
    if scene.halfplanes:
        markers.append(_halfplane_marker(scene, stamp, max(4 * layout.radius(me), 1.0)))
    boundaries = layout.boundary(me)
    if boundaries:
        walls = _marker(scene, stamp, "constraints", Marker.LINE_LIST, alpha=0.8)
        walls.scale.x = 0.02
        for line in boundaries:
            walls.points += _points(np.repeat(line, 2, axis=0)[1:-1])
        markers.append(walls)
    return MarkerArray(markers=markers)


def _halfplane_marker(scene: Scene, stamp: Time, length: float) -> Marker:
    """Each half-plane's boundary a' p = b as a segment of `length` [m] centred at the foot of the agent's next
    predicted position."""
    lines = _marker(scene, stamp, "collision_halfplanes", Marker.LINE_LIST, alpha=0.8)
    lines.scale.x = 0.015
    here = scene.predicted[min(1, len(scene.predicted) - 1)]
    for a, b in scene.halfplanes:
        foot = here - (a @ here - b) / (a @ a) * a
        along = np.array([-a[1], a[0]]) / np.linalg.norm(a) * length / 2
        lines.points += _points(np.vstack([foot - along, foot + along]))
    return lines


def scene_of(me: int, plan, layout: PlanarLayout, measured, heard: dict, collision) -> Scene:
    """What agent `me` draws after a step from its final plan, moved into the plant's frame (a formation agent plans
    relative to its agreed centre: the measured state minus the plan's first state gives the shift); `heard`:
    neighbour → (monotonic time, states) of its last plan; the collision half-planes its next position keeps."""
    now = time.monotonic()
    shift = 0.0 if measured is None else layout.position(me, measured) - layout.position(me, plan.states[0])
    neighbours = {j: (layout.position(j, x[0]) + shift, now - seen) for j, (seen, x) in heard.items()}
    halfplanes = ()
    if collision is not None:
        columns = list(collision.position_columns)
        partners = {j: x[1, columns] for j, (_, x) in heard.items()}
        halfplanes = tuple((a, b + float(a @ shift)) for a, b in
                           collision.own_halfplanes(me, plan.states[1, columns], partners))
    return Scene(me, layout.position(me, plan.states) + shift, neighbours, halfplanes)
