"""Ink, graphite, chalk and ruling colours, as reflectance per RGB channel in [0, 1]."""

from __future__ import annotations

DARK_INKS = (  # reflectance per channel: black/blue/grey ballpoint, pencil, dark red, dark green, violet
    (0.08, 0.08, 0.09),
    (0.12, 0.14, 0.40),
    (0.05, 0.07, 0.25),
    (0.25, 0.25, 0.27),
    (0.38, 0.38, 0.40),
    (0.45, 0.08, 0.10),
    (0.10, 0.32, 0.15),
    (0.30, 0.12, 0.40),
)
MARKER_INKS = (  # saturated felt-tip colours; yellow-ish ones are dark only in the blue channel
    (0.05, 0.05, 0.05),
    (0.10, 0.25, 0.75),
    (0.85, 0.12, 0.12),
    (0.10, 0.60, 0.20),
    (0.55, 0.15, 0.65),
    (0.95, 0.50, 0.05),
    (0.00, 0.55, 0.65),
    (0.90, 0.20, 0.60),
    (0.30, 0.20, 0.10),
)
PEN_INKS = (  # blue ballpoint (two shades), black ballpoint, black fineliner, royal-blue fineliner
    (0.16, 0.22, 0.62),
    (0.10, 0.14, 0.48),
    (0.12, 0.12, 0.14),
    (0.04, 0.04, 0.05),
    (0.08, 0.16, 0.70),
)
RULING_COLOURS = (  # printed lines of exercise books and graph paper: light blue, cyan, grey, pale green
    (0.55, 0.70, 0.92),
    (0.45, 0.72, 0.88),
    (0.62, 0.63, 0.66),
    (0.60, 0.78, 0.70),
)
MARGIN_RED = (0.92, 0.45, 0.48)
BOARDS = (  # dark surfaces: green chalkboard, black slate, dark grey board, black paper
    (0.13, 0.22, 0.17),
    (0.10, 0.11, 0.12),
    (0.20, 0.21, 0.22),
    (0.06, 0.06, 0.07),
)
LIGHT_INKS = (  # chalk and paint-marker colours that show on a dark surface: white, yellow, pink, light blue
    (0.93, 0.93, 0.90),
    (0.95, 0.90, 0.55),
    (0.95, 0.70, 0.78),
    (0.65, 0.82, 0.95),
    (0.98, 0.98, 0.98),
)
SCREEN_BACKGROUNDS = (  # dark-mode drawing apps
    (0.07, 0.07, 0.07),
    (0.12, 0.12, 0.14),
    (0.0, 0.0, 0.0),
    (0.11, 0.13, 0.18),
)
