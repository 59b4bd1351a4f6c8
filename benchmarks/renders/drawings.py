"""Hand-drawn non-digits as polylines: shapes, scribbles and hatching (units are arbitrary; sources rescale).

Shapes a reader would take for a digit are left out: a plain circle or ellipse (0) and a single straight line
(1). Every drawing gets a little hand wobble from `pen.wobble` when it becomes a source.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.renders.centreline import Polyline


def ring(count: int, radius: float = 10.0, phase: float = -math.pi / 2) -> np.ndarray:
    """`count` points evenly round a circle (first point at the top by default)."""
    angles = phase + np.arange(count) * 2 * math.pi / count
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def closed(points: np.ndarray) -> Polyline:
    """The polygon through `points`, back to the first."""
    return np.concatenate([points, points[:1]])


def arc(
    centre: tuple[float, float], radii: tuple[float, float], start: float, stop: float, count: int = 48
) -> np.ndarray:
    """Points along an elliptical arc from angle `start` to `stop` (radians)."""
    angles = np.linspace(start, stop, count)
    return np.stack([centre[0] + radii[0] * np.cos(angles), centre[1] + radii[1] * np.sin(angles)], 1)


def jitter(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Each point moved by up to `amount` (hand-placed corners)."""
    return points + rng.uniform(-amount, amount, points.shape)


def triangle(rng: np.random.Generator) -> list[Polyline]:
    """A triangle with hand-placed corners, one roughly at the top."""
    return [closed(jitter(ring(3, phase=-math.pi / 2 + rng.uniform(-0.3, 0.3)), rng, 1.5))]


def square(rng: np.random.Generator) -> list[Polyline]:
    """A square or an oblong (aspect 0.6–1.6)."""
    aspect = rng.uniform(0.6, 1.6)
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64) * (10 * aspect, 10)
    return [closed(jitter(corners, rng, 1.0))]


def diamond(rng: np.random.Generator) -> list[Polyline]:
    """A diamond (a square on its corner, often narrower than tall)."""
    return [closed(jitter(ring(4, phase=-math.pi / 2) * (rng.uniform(0.6, 1.0), 1), rng, 1.0))]


def star(rng: np.random.Generator) -> list[Polyline]:
    """A five-pointed star: the outline, or the pentagram drawn in one stroke as most people draw it."""
    outer = ring(5)
    if rng.random() < 0.5:
        return [closed(jitter(outer[[0, 2, 4, 1, 3]], rng, 1.0))]
    inner = ring(5, radius=rng.uniform(3.8, 5.0), phase=-math.pi / 2 + math.pi / 5)
    return [closed(jitter(np.stack([outer, inner], 1).reshape(-1, 2), rng, 0.6))]


def arrow(rng: np.random.Generator) -> list[Polyline]:
    """An arrow pointing in one of eight directions: shaft and a two-sided head."""
    angle = int(rng.integers(8)) * math.pi / 4 + rng.uniform(-0.15, 0.15)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    tip, tail = direction * 10, -direction * 10
    head = rng.uniform(4, 7)
    barbs = np.stack([tip - direction * head + normal * head * 0.7, tip, tip - direction * head - normal * head * 0.7])
    return [np.stack([tail, tip]), barbs]


def smiley(rng: np.random.Generator) -> list[Polyline]:
    """A face: outline, two eyes, and a smile (or now and then a frown)."""
    face = closed(ring(40) * (1 + rng.uniform(-0.1, 0.1), 1 + rng.uniform(-0.1, 0.1)))
    eyes = [ring(8, radius=rng.uniform(0.8, 1.4)) + (x, -3.5) for x in (-3.8, 3.8)]
    mouth = (
        arc((0, 1.0), (5.5, rng.uniform(2.5, 4.5)), 0.2, math.pi - 0.2)
        if rng.random() < 0.8
        else arc((0, 7.0), (5.0, 2.5), math.pi + 0.3, 2 * math.pi - 0.3)
    )
    return [face, *(closed(eye) for eye in eyes), mouth]


def heart(rng: np.random.Generator) -> list[Polyline]:
    """The classic parametric heart outline."""
    t = np.linspace(0, 2 * math.pi, 80)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([x, y * rng.uniform(0.85, 1.15)], 1)]


def house(rng: np.random.Generator) -> list[Polyline]:
    """A child's house: walls, a roof, a door."""
    walls = np.array([(-8, 0), (-8, 10), (8, 10), (8, 0)], np.float64)
    roof = np.array([(-10, 1), (0, -rng.uniform(7, 11)), (10, 1)], np.float64)
    door = np.array([(-2, 10), (-2, 4), (2, 4), (2, 10)], np.float64)
    return [closed(jitter(walls, rng, 0.6)), jitter(roof, rng, 0.6), door]


def cloud(rng: np.random.Generator) -> list[Polyline]:
    """A bumpy closed outline: round bumps along an ellipse."""
    bumps = int(rng.integers(5, 9))
    points = []
    for k in range(bumps):
        a0, a1 = 2 * math.pi * k / bumps, 2 * math.pi * (k + 1) / bumps
        middle = (a0 + a1) / 2
        centre = (11 * math.cos(middle), 7 * math.sin(middle))
        size = 2 * math.pi * 9 / bumps / 2
        points.append(arc(centre, (size, size), middle - math.pi / 2 - 0.4, middle + math.pi / 2 + 0.4, 12))
    return [closed(np.concatenate(points))]


def spiral(rng: np.random.Generator) -> list[Polyline]:
    """An open spiral of 1.6–2.4 turns, either way round (fewer turns than would fill in with a fat pen)."""
    turns = rng.uniform(1.6, 2.4)
    t = np.linspace(0, turns * 2 * math.pi, int(turns * 40))
    radius = 1 + 9 * t / t[-1]
    sign = 1 if rng.random() < 0.5 else -1
    return [np.stack([radius * np.cos(sign * t), radius * np.sin(sign * t)], 1)]


def check_mark(rng: np.random.Generator) -> list[Polyline]:
    """A tick."""
    return [jitter(np.array([(-8, 0), (-2, 7), (9, -10)], np.float64), rng, 1.0)]


def cross(rng: np.random.Generator) -> list[Polyline]:
    """An X (a cross-out mark), two strokes."""
    strokes = (np.array([(-9, -9), (9, 9)], np.float64), np.array([(9, -9), (-9, 9)], np.float64))
    return [jitter(stroke, rng, 1.5) for stroke in strokes]


SHAPES = {
    "triangle": triangle,
    "square": square,
    "diamond": diamond,
    "star": star,
    "arrow": arrow,
    "smiley": smiley,
    "heart": heart,
    "house": house,
    "cloud": cloud,
    "spiral": spiral,
    "check mark": check_mark,
    "cross": cross,
}


def scribble(rng: np.random.Generator) -> tuple[str, list[Polyline]]:
    """A random pen path: a tangle (circling round and round), a row of loops, or a back-and-forth zigzag."""
    kind = ("tangle", "loops", "zigzag")[int(rng.integers(3))]
    if kind == "tangle":  # a ball of wool: circlings at clearly different speeds added up, never a plain ring
        t = np.linspace(0, rng.uniform(2, 4) * 2 * math.pi, 400)
        speeds = (1.0, rng.uniform(2.0, 3.5) * rng.choice([-1, 1]), rng.uniform(1.5, 4.0) * rng.choice([-1, 1]))
        sizes = (rng.uniform(4, 6), rng.uniform(2.5, 5), rng.uniform(1.5, 4))
        points = np.zeros((len(t), 2))
        for speed, size in zip(speeds, sizes, strict=True):
            phase = rng.uniform(0, 2 * math.pi)
            points += size * np.stack([np.cos(speed * t + phase), np.sin(speed * t + phase) * rng.uniform(0.6, 1.4)], 1)
        return kind, [points]
    if kind == "loops":
        count = rng.uniform(3, 7)
        t = np.linspace(0, count * 2 * math.pi, int(count * 30))
        x = t * rng.uniform(0.6, 1.2) - rng.uniform(1.5, 3) * np.sin(t)
        y = rng.uniform(2.5, 5) * np.cos(t) + rng.uniform(-0.5, 0.5) * t
        return kind, [np.stack([x, y], 1)]
    count = int(rng.integers(7, 13))  # enough turns to be a zigzag, not a Z
    xs = np.where(np.arange(count) % 2 == 0, -10, 10) + rng.uniform(-2, 2, count)
    ys = np.linspace(-8, 8, count) + rng.uniform(-1, 1, count)
    return kind, [np.stack([xs, ys], 1)]


def hatching(rng: np.random.Generator) -> tuple[str, list[Polyline]]:
    """Parallel strokes (4–9) filling a patch, sometimes crossed by a second set (cross-hatching)."""
    kind = "cross-hatching" if rng.random() < 0.4 else "hatching"
    count = int(rng.integers(4, 10))
    width, height = rng.uniform(12, 22), rng.uniform(10, 22)
    lines = []
    for layer in range(2 if kind == "cross-hatching" else 1):
        angle = rng.uniform(0, math.pi) + layer * rng.uniform(math.pi / 3, math.pi / 2)
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        reach = math.hypot(width, height) / 2
        for k in range(count):
            offset = (k / (count - 1) - 0.5) * 2 * reach * 0.8
            ends = np.stack([normal * offset - direction * reach, normal * offset + direction * reach])
            clipped = clip_to_box(ends, width / 2, height / 2)
            if clipped is not None:
                lines.append(jitter(clipped, rng, 0.4))
    return kind, lines


def clip_to_box(segment: np.ndarray, half_w: float, half_h: float) -> np.ndarray | None:
    """The part of a segment inside the box |x| ≤ half_w, |y| ≤ half_h (Liang–Barsky), or None."""
    start, delta = segment[0], segment[1] - segment[0]
    low, high = 0.0, 1.0
    for p, q in (
        (-delta[0], start[0] + half_w),
        (delta[0], half_w - start[0]),
        (-delta[1], start[1] + half_h),
        (delta[1], half_h - start[1]),
    ):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            low = max(low, t)
        else:
            high = min(high, t)
    if high - low < 0.15:
        return None
    return np.stack([start + low * delta, start + high * delta])
