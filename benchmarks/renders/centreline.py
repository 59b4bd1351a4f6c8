"""The centre lines of a source drawing as smooth polylines, so thin pens can redraw its shape one line wide.

The source is upscaled to `FINE` pixels per frame unit, thresholded, loops that a fat pen filled in are
opened again, the ink is skeletonised (scikit-image), and the
1-pixel skeleton is traced into paths between its end points and junctions (closed loops too). Short spurs,
which skeletons grow at blunt stroke ends and corners, are dropped, and each path is smoothed (Chaikin), so a
redrawn "3" has two clean arcs rather than a staircase of pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy.ndimage import distance_transform_edt
from skimage.morphology import remove_small_holes, remove_small_objects, skeletonize

from benchmarks.renders.strokes import FRAME_UNITS

FINE = 4
"""Pixels per frame unit at which the skeleton is taken (a 28×28 digit becomes 112×112)."""
SPUR_UNITS = 2.5
"""Skeleton branches shorter than this (frame units) that end freely are artefacts of thick strokes."""
PINHOLE_UNITS2 = 2.25
"""Holes in the ink smaller than this (square units) are gaps between blurred pixels, not loops."""
FILLED_LOOP = 2.2
"""Ink deeper than this many typical half-widths inside a stroke is a loop the pen filled in (a fat 8 or 9)."""
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

Polyline = np.ndarray
"""N×2 float array of (x, y) points in frame units (y from 0 at the top to 28 at the bottom)."""


class Sketch(np.ndarray):
    """A source drawing that knows the centre lines it was drawn along (`lines`, any units), so thin pens redraw
    those instead of re-tracing the pixels (hatching lines merged by a fat stroke would trace as a tree)."""

    lines: list[Polyline] | None = None

    def __array_finalize__(self, obj: object) -> None:
        self.lines = getattr(obj, "lines", None)


def sketch(pixels: np.ndarray, lines: list[Polyline]) -> Sketch:
    """`pixels` as a Sketch drawn along `lines`."""
    out = pixels.view(Sketch)
    out.lines = [np.asarray(line, np.float64) for line in lines]
    return out


def centrelines(source: np.ndarray, spur_units: float = SPUR_UNITS) -> list[Polyline]:
    """Smooth centre lines of the strokes of a white-on-black source whose height is the 28-unit frame.

    `spur_units`: free branches shorter than this are dropped (raise it to drop a font's serifs too). A `Sketch`
    returns the lines it was drawn along.
    """
    if isinstance(source, Sketch) and source.lines is not None:
        return source.lines
    source = np.asarray(source)
    height, width = source.shape
    fine_h = FRAME_UNITS * FINE
    fine_w = max(1, round(width * fine_h / height))
    image = Image.fromarray(source).resize((fine_w, fine_h), Image.Resampling.BICUBIC)
    values = np.asarray(image.filter(ImageFilter.GaussianBlur(FINE * 0.2)), dtype=np.float32)
    ink = values > 0.55 * max(float(values.max()), 1.0)  # high enough to keep small loops open
    ink = remove_small_holes(ink, max_size=PINHOLE_UNITS2 * FINE * FINE)  # would become tiny loops
    ink = remove_small_objects(ink, max_size=2 * FINE * FINE)
    paths = trace(skeletonize(open_filled_loops(ink)))
    paths = prune_spurs(paths, spur_units * FINE)
    return [smooth(resample(path / FINE, 0.5), closed=is_closed(path)) for path in paths if len(path) >= 2]


def open_filled_loops(ink: np.ndarray) -> np.ndarray:
    """Punch a hole where the ink is much deeper than a stroke is wide: a loop that a fat pen closed up (the top of
    many MNIST 8s) would otherwise skeletonise into a line, and a thin pen would draw a 7 over an o."""
    depth = distance_transform_edt(ink)
    typical = float(np.median(depth[skeletonize(ink)])) if ink.any() else 0.0
    core = depth > FILLED_LOOP * max(typical, 1.0)
    return ink & ~core


def trace(skeleton: np.ndarray) -> list[np.ndarray]:
    """The paths (N×2 arrays of (x, y) pixel centres) of a 1-pixel skeleton, split at end points and junctions.

    Diagonal steps that cut the corner of an orthogonal L are ignored, so a staircase is a chain, not a row of
    triangles; whatever is left after walking from every end point and junction is a closed loop.
    """
    pixels = set(zip(*np.nonzero(skeleton), strict=True))
    graph: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for y, x in pixels:
        links = []
        for dy, dx in NEIGHBOURS:
            other = (y + dy, x + dx)
            if other not in pixels:
                continue
            if dy and dx and ((y + dy, x) in pixels or (y, x + dx) in pixels):
                continue  # the orthogonal neighbours already link these two
            links.append(other)
        graph[(y, x)] = links
    visited: set[frozenset[tuple[int, int]]] = set()
    paths = []
    nodes = [p for p, links in graph.items() if len(links) != 2]
    for start in sorted(nodes):
        for step in graph[start]:
            if frozenset((start, step)) not in visited:
                paths.append(walk(graph, start, step, visited))
    for start in sorted(graph):
        for step in graph[start]:
            if frozenset((start, step)) not in visited:  # a loop with no junction: walk round back to start
                paths.append(walk(graph, start, step, visited))
    return [np.array([(x, y) for y, x in path], np.float32) for path in paths]


def walk(
    graph: dict[tuple[int, int], list[tuple[int, int]]],
    start: tuple[int, int],
    step: tuple[int, int],
    visited: set[frozenset[tuple[int, int]]],
) -> list[tuple[int, int]]:
    """Follow links from `start` through `step` until an end point, a junction or an already walked link."""
    path = [start]
    previous, current = start, step
    visited.add(frozenset((previous, current)))
    while True:
        path.append(current)
        links = graph[current]
        if len(links) != 2:
            return path
        following = links[0] if links[1] == previous else links[1]
        if frozenset((current, following)) in visited:
            if following == path[0]:
                path.append(following)  # closed the loop
            return path
        visited.add(frozenset((current, following)))
        previous, current = current, following


def prune_spurs(paths: list[np.ndarray], shortest: float) -> list[np.ndarray]:
    """Drop short paths that end freely on one side and at a junction on the other (keeps isolated strokes)."""
    if len(paths) <= 1:
        return paths
    ends: dict[tuple[int, int], int] = {}
    for path in paths:
        for point in (path[0], path[-1]):
            key = (int(point[0]), int(point[1]))
            ends[key] = ends.get(key, 0) + 1
    kept = []
    for path in paths:
        head, tail = ((int(p[0]), int(p[1])) for p in (path[0], path[-1]))
        free = ends[head] == 1 or ends[tail] == 1
        joined = ends[head] > 1 or ends[tail] > 1
        if free and joined and arc_length(path) < shortest:
            continue
        kept.append(path)
    return kept


def arc_length(path: np.ndarray) -> float:
    """Length of a polyline."""
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())


def is_closed(path: np.ndarray) -> bool:
    """Whether a path ends where it starts (a traced loop)."""
    return len(path) > 2 and bool(np.allclose(path[0], path[-1]))


def resample(path: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` along the path (end points kept), by linear interpolation of the arc length."""
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] <= spacing:
        return path[[0, -1]].astype(np.float32)
    targets = np.linspace(0, along[-1], max(2, int(round(along[-1] / spacing)) + 1))
    return np.stack([np.interp(targets, along, path[:, 0]), np.interp(targets, along, path[:, 1])], 1)


def smooth(path: np.ndarray, closed: bool, window: int = 5) -> np.ndarray:
    """A moving average over `window` points (ends of open paths fixed by odd reflection), then Chaikin."""
    if len(path) > window:
        half = window // 2
        if closed:
            ring = path[:-1]
            padded = np.concatenate([ring[-half:], ring, ring[:half]])
        else:
            padded = np.concatenate([2 * path[0] - path[half:0:-1], path, 2 * path[-1] - path[-2 : -half - 2 : -1]])
        kernel = np.ones(window) / window
        averaged = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(2)], 1)
        path = np.concatenate([averaged, averaged[:1]]) if closed else averaged
    return chaikin(path, closed)


def chaikin(path: np.ndarray, closed: bool, rounds: int = 2) -> np.ndarray:
    """Corner cutting: each round replaces every segment by its 1/4 and 3/4 points (end points of open paths
    stay), which rounds off the pixel staircase."""
    for _ in range(rounds):
        if len(path) < 3:
            return path
        pairs = np.concatenate([path, path[:1]]) if closed else path
        a, b = pairs[:-1], pairs[1:]
        cut = np.empty((2 * len(a), 2), np.float64)
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        path = np.concatenate([cut, cut[:1]]) if closed else np.concatenate([path[:1], cut, path[-1:]])
    return path
