"""Seeded, realistic uploads for accuracy benchmarks, tests and training: digits in ten styles, and non-digits.

**Digit styles** (`STYLES`; each `render_<style>(source, rng) -> bytes` returns an encoded image file):

- `mnist`  the 28×28 digit itself as PNG;           `photo`  dark ink on shadowed, textured paper, JPEG;
- `canvas` strokes on a transparent RGBA PNG;       `sheet`  a big digit off-centre on a white sheet;
- `marker` thick, often coloured felt-tip strokes;  (these five: `classic`, strokes from the upscaled digit)
- `pen`    thin ballpoint/fineliner, blue or black, 1–3 % of the digit's height, small skips (`handwriting`);
- `pencil` grey, low-contrast, grainy graphite;     `grid`   squared or ruled paper lines crossing the digit;
- `tilted` small (160–480 px) phone shots at ±20° with perspective, blur, JPEG quality 35–60 (`phone`);
- `chalk`  light on dark: chalkboard, paint marker on black, dark-mode app screenshot.

Thin styles follow the digit's centre line (`centreline`: scikit-image skeleton, traced and smoothed), drawn by
`pen` at output resolution. **Non-digits** (`nondigits.CATEGORIES`: letters, symbols, shapes, scribbles,
hatching, numbers, text) are drawn into the same 28-unit frame and rendered by the same styles;
`glyphs.EXCLUDED` lists the glyphs left out because they are digits in disguise (O, o, I, l, q, g, |, /).

**Splits** (`splits`): every render belongs to `train`, `threshold` (validation: thresholds, calibration,
early stopping) or `test` (held out: report only, never tune on it), and the three never share

- source digits: `test` renders draw MNIST test digits; `train` MNIST training digits 0–49,999; `threshold`
  training digits 50,000–59,999 (`digit_pool(split)` loads exactly these);
- random streams: a render's generator is seeded by `SeedSequence(seed, spawn_key)` whose key holds the split
  (digit renders of `test` keep plain `default_rng(seed)`, the seeds of the first benchmark runs), so equal
  seeds in two splits still give unrelated renders;
- fonts and words (`glyphs`): each split has its own font families and word list; shapes, scribbles and
  hatching are split by stream only; `numbers` take their digits from the split's pool.

**API** (all reproducible for the same arguments):

    render(style, digit, seed, split="test") -> bytes
    digit_pool(split, data_dir="data") -> DigitPool(split, images, labels, mnist_indices, mnist_file)
    held_out_digits(pool, held_out) -> DigitPool: the pool's digits a model held out of its training
    digit_renders(style, split, count, seed=0, pool=None, data_dir="data") -> Iterator[DigitRender]
    render_nondigit(category, seed, split="test", style=None, pool=None) -> NonDigit
    nondigit_renders(split, count, seed=0, categories=CATEGORIES, pool=None, data_dir="data") -> Iterator[NonDigit]

`python -m benchmarks.renders.sheets --out DIR` writes sample sheets of every style and category.
"""

from __future__ import annotations

from benchmarks.renders.classic import render_canvas, render_marker, render_mnist, render_photo, render_sheet
from benchmarks.renders.glyphs import EXCLUDED
from benchmarks.renders.handwriting import render_grid, render_pen, render_pencil
from benchmarks.renders.nondigits import CATEGORIES, NonDigit, render_nondigit
from benchmarks.renders.phone import render_chalk, render_tilted
from benchmarks.renders.sets import DigitRender, digit_renders, nondigit_renders, pick_digits, render_seed
from benchmarks.renders.splits import SPLITS, DigitPool, digit_pool, held_out_digits
from benchmarks.renders.styles import CLASSIC_STYLES, NEW_STYLES, STYLES, Renderer, render

__all__ = [
    "CATEGORIES",
    "CLASSIC_STYLES",
    "EXCLUDED",
    "NEW_STYLES",
    "SPLITS",
    "STYLES",
    "DigitPool",
    "DigitRender",
    "NonDigit",
    "Renderer",
    "digit_pool",
    "digit_renders",
    "held_out_digits",
    "nondigit_renders",
    "pick_digits",
    "render",
    "render_canvas",
    "render_chalk",
    "render_grid",
    "render_marker",
    "render_mnist",
    "render_nondigit",
    "render_pen",
    "render_pencil",
    "render_photo",
    "render_seed",
    "render_sheet",
    "render_tilted",
]
