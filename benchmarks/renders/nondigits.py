"""Uploads that are not one handwritten digit, drawn and photographed in the digit styles (issue 11).

Categories (`CATEGORIES`): `letters` (printed in a font or handwritten along a font's centre lines, upper and
lower case, without the digit look-alikes in `glyphs.EXCLUDED`), `symbols`, `shapes` (`drawings.SHAPES`),
`scribbles`, `hatching`, `numbers` (2–4 MNIST digits of the split side by side) and `text` (short words).
Each render then goes through one of the digit styles (`styles.STYLES`, chosen at random unless given), so a
letter can arrive as a pencil photo on squared paper or as chalk on a board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.renders import drawings, glyphs
from benchmarks.renders.centreline import centrelines, sketch
from benchmarks.renders.classic import render_mnist
from benchmarks.renders.pen import wobble
from benchmarks.renders.sources import digits_side_by_side, frame_source, mnist_format, stroke_source
from benchmarks.renders.splits import DigitPool, check_split, nondigit_rng
from benchmarks.renders.styles import STYLES, check_style

CATEGORIES = ("letters", "symbols", "shapes", "scribbles", "hatching", "numbers", "text")
HANDWRITTEN = 0.5
"""Share of letters, symbols and words drawn by hand (along a font's centre lines, wobbled) rather than printed."""
SERIF_UNITS = 3.0
"""Free branches of a font's skeleton shorter than this (of a 20-unit glyph) are serifs, which hands skip."""


@dataclass(frozen=True)
class NonDigit:
    """One non-digit upload: the file's bytes and what it shows."""

    data: bytes
    category: str
    item: str
    """What was drawn: the letter, symbol, shape or word, the scribble's kind, the number's digits."""
    drawn: str
    """How: `font NAME`, `hand NAME` (after the font's shape) or `hand`."""
    style: str
    split: str
    seed: int


def render_nondigit(
    category: str, seed: int, split: str = "test", style: str | None = None, pool: DigitPool | None = None
) -> NonDigit:
    """One reproducible non-digit upload. `numbers` needs the split's `pool` (`digit_pool(split)`)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
    rng = nondigit_rng(seed, check_split(split), category)
    source, item, drawn = make_source(category, split, rng, pool)
    style = check_style(style) if style is not None else tuple(STYLES)[int(rng.integers(len(STYLES)))]
    data = render_mnist(mnist_format(source), rng) if style == "mnist" else STYLES[style](source, rng)
    return NonDigit(data, category, item, drawn, style, split, seed)


def make_source(
    category: str, split: str, rng: np.random.Generator, pool: DigitPool | None
) -> tuple[np.ndarray, str, str]:
    """The source drawing of one non-digit, what it is, and how it was drawn."""
    if category in ("letters", "symbols"):
        chars, fonts = (
            (glyphs.LETTERS, glyphs.LETTER_FONTS) if category == "letters" else (glyphs.SYMBOLS, glyphs.SYMBOL_FONTS)
        )
        char = chars[int(rng.integers(len(chars)))]
        return typed_or_handwritten(char, fonts[split], rng, wide=False)
    if category == "text":
        word = glyphs.WORDS[split][int(rng.integers(len(glyphs.WORDS[split])))]
        word = (str.lower, str.capitalize, str.upper)[int(rng.integers(3))](word)
        return typed_or_handwritten(word, glyphs.LETTER_FONTS[split], rng, wide=True)
    if category == "shapes":
        name = tuple(drawings.SHAPES)[int(rng.integers(len(drawings.SHAPES)))]
        return stroke_source(wobble(drawings.SHAPES[name](rng), rng, 0.5), rng), name, "hand"
    if category in ("scribbles", "hatching"):
        kind, lines = drawings.scribble(rng) if category == "scribbles" else drawings.hatching(rng)
        wide = kind == "loops"  # a row of loops is written like a word, as tall as one
        return stroke_source(wobble(lines, rng, 0.3), rng, wide, width=(1.3, 2.2)), kind, "hand"
    if pool is None or pool.split != split:
        raise ValueError(f"numbers are drawn from MNIST digits: pass pool=digit_pool({split!r})")
    picks = rng.integers(len(pool), size=int(rng.integers(2, 5)))
    number = "".join(str(int(pool.labels[i])) for i in picks)
    return digits_side_by_side([pool.images[i] for i in picks], rng), number, "mnist digits"


def typed_or_handwritten(
    text: str, fonts: tuple[str, ...], rng: np.random.Generator, wide: bool
) -> tuple[np.ndarray, str, str]:
    """`text` printed in one of `fonts`, or written by hand following that font's centre lines."""
    name = fonts[int(rng.integers(len(fonts)))]
    printed = frame_source(glyphs.typeset(text, name), wide)
    lines = centrelines(printed, SERIF_UNITS)  # what a thin pen copying the print would draw
    if rng.random() >= HANDWRITTEN:
        return sketch(printed, lines), text, f"font {name}"
    return stroke_source(wobble(lines, rng, rng.uniform(0.3, 0.9)), rng, wide), text, f"hand {name}"
