"""Letters, symbols and words from the fonts matplotlib ships (DejaVu, STIX, Computer Modern) and Source Serif
Pro (PyPI `font-source-serif-pro`), split by font.

Each split draws from its own font families, so a detector tuned on `train` and `threshold` renders is tested
on typefaces it has never seen:

- train:     DejaVu Sans and DejaVu Sans Mono (4 weights/slants each), Computer Modern Sans and Typewriter, Source
             Serif Pro (4);
- threshold: DejaVu Serif (4), Computer Modern Roman and Text Italic;
- test:      STIX General (4), Computer Modern Bold and Math Italic.

Source Serif Pro is there because the other splits print in serif faces and the train split had none: the gate
fitted with it (and 3,000 more train letters and symbols, README "Is it a digit?") flagged 90.0 % of the
threshold split's letters and 93.3 % of its symbols, against 84.7 and 91.3 % before. Symbols come from the
Unicode fonts of the split only (Computer Modern maps ASCII punctuation to other glyphs). Words come from three
disjoint word lists.

Some glyphs are digits in disguise: a reader cannot tell them from a digit, so they are never rendered as
non-digits (`EXCLUDED`): O and o (0), I and l (1), q and g (a 9 with a straight or a curled tail), | and /
(a 1, upright or slanted). Letters that merely resemble a digit in some hands (S, Z, b, B, G) keep their
letter's structure and stay in.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

import font_source_serif_pro
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_DIRS = (FONT_DIR, Path(font_source_serif_pro.font_directory))
"""Where the fonts named below are looked up, in order: matplotlib's, then Source Serif Pro's package."""
LETTER_FONTS = {
    "train": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSans-BoldOblique.ttf",
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
        "cmss10.ttf",
        "cmtt10.ttf",
        "SourceSerifPro-Regular.ttf",
        "SourceSerifPro-Bold.ttf",
        "SourceSerifPro-It.ttf",
        "SourceSerifPro-BoldIt.ttf",
    ),
    "threshold": (
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSerif-BoldItalic.ttf",
        "cmr10.ttf",
        "cmti10.ttf",
    ),
    "test": (
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
        "STIXGeneralItalic.ttf",
        "STIXGeneralBolIta.ttf",
        "cmb10.ttf",
        "cmmi10.ttf",
    ),
}
SYMBOL_FONTS = {split: tuple(f for f in fonts if not f.startswith("cm")) for split, fonts in LETTER_FONTS.items()}
EXCLUDED = {
    "O": "reads as 0",
    "o": "reads as 0",
    "I": "reads as 1",
    "l": "reads as 1",
    "q": "reads as 9 (a loop with a straight tail)",
    "g": "reads as 9 (the single-storey g of most fonts and hands: a loop with a curled tail)",
    "|": "reads as 1",
    "/": "reads as a slanted 1",
}
"""Glyphs that are digits in disguise, with the digit a reader would see; never rendered as non-digits."""
LETTERS = "".join(c for c in string.ascii_letters if c not in EXCLUDED)
SYMBOLS = "".join(c for c in "+−×÷=?!#@%&*$<>~^€§" if c not in EXCLUDED)
WORDS = {
    "train": (
        "cat",
        "dog",
        "sun",
        "tree",
        "hello",
        "yes",
        "no",
        "ok",
        "hi",
        "mom",
        "car",
        "red",
        "blue",
        "book",
        "fish",
        "milk",
        "star",
        "home",
        "love",
        "note",
        "Tom",
        "Ana",
        "go",
        "up",
    ),
    "threshold": (
        "pen",
        "cup",
        "box",
        "map",
        "bird",
        "rain",
        "door",
        "ship",
        "cake",
        "frog",
        "hat",
        "jam",
        "kite",
        "lamp",
        "moon",
        "Max",
        "Eva",
        "me",
        "we",
    ),
    "test": (
        "apple",
        "zoo",
        "bus",
        "key",
        "egg",
        "fun",
        "sky",
        "owl",
        "wave",
        "tea",
        "ink",
        "dot",
        "pie",
        "van",
        "web",
        "Sam",
        "Lea",
        "yo",
        "be",
    ),
}
"""Short words people might upload by mistake or on purpose; disjoint across splits."""
RENDER_SIZE = 160
"""Font size (px) glyphs are rasterised at before being fitted to the 28-unit frame."""


@functools.cache
def font(name: str) -> ImageFont.FreeTypeFont:
    """A TrueType font from the first of FONT_DIRS that has it, at RENDER_SIZE."""
    path = next((folder / name for folder in FONT_DIRS if (folder / name).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"font {name} is in none of {[str(folder) for folder in FONT_DIRS]}")
    return ImageFont.truetype(str(path), RENDER_SIZE)


def typeset(text: str, font_name: str) -> np.ndarray:
    """`text` in a font as a tight white-on-black float32 coverage map (cropped to the ink)."""
    face = font(font_name)
    canvas = Image.new("L", (RENDER_SIZE * (len(text) + 2), RENDER_SIZE * 2), 0)
    ImageDraw.Draw(canvas).text((RENDER_SIZE // 2, RENDER_SIZE // 2), text, font=face, fill=255)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"{font_name} draws nothing for {text!r}")
    return np.asarray(canvas.crop(box), dtype=np.float32) / 255


def has_glyph(font_name: str, char: str) -> bool:
    """Whether the font draws `char` itself rather than its missing-glyph box."""
    face = font(font_name)
    mask = face.getmask(char)
    return mask.getbbox() is not None and bytes(mask) != bytes(face.getmask("\uffff"))
