"""Sample sheets: a PNG grid of renders per digit style and per non-digit category, for reviewers' eyes.

    python -m benchmarks.renders.sheets --out docs/renders [--split test] [--per-row 8] [--thumb 104]

Writes `digit-styles.png` (one row per style) and `non-digits.png` (one row per category). Each cell is one
upload shrunk to fit (transparent canvas exports shown on white), so what a cell shows is what the service gets.
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from benchmarks.renders.glyphs import FONT_DIR
from benchmarks.renders.nondigits import CATEGORIES
from benchmarks.renders.sets import digit_renders, nondigit_renders
from benchmarks.renders.splits import SPLITS, digit_pool
from benchmarks.renders.styles import STYLES

log = logging.getLogger(__name__)
LABEL_WIDTH = 90
BACKGROUND = (236, 236, 236)
COLOURS = 64
"""Palette size (octree, which keeps the ink colours): the default sheets stay under 100 kB each."""


def thumbnail(data: bytes, side: int) -> Image.Image:
    """The upload decoded, composited on white if transparent, shrunk to fit a side×side cell."""
    image: Image.Image = Image.open(io.BytesIO(data))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image)
        image = white
    image = image.convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def grid(rows: list[tuple[str, list[bytes]]], side: int) -> Image.Image:
    """A labelled grid: one row per (label, uploads)."""
    columns = max(len(files) for _, files in rows)
    gap = 4
    sheet = Image.new("RGB", (LABEL_WIDTH + columns * (side + gap), len(rows) * (side + gap)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), 14)
    for r, (label, files) in enumerate(rows):
        top = r * (side + gap)
        draw.text((6, top + side // 2 - 8), label, fill=(0, 0, 0), font=font)
        for c, data in enumerate(files):
            cell = thumbnail(data, side)
            left = LABEL_WIDTH + c * (side + gap)
            sheet.paste(cell, (left + (side - cell.width) // 2, top + (side - cell.height) // 2))
    return sheet


def write_sheets(out: Path, split: str, per_row: int, side: int, seed: int, data_dir: str | Path) -> list[Path]:
    """Write both sheets into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    pool = digit_pool(split, data_dir)
    digits = [(style, [r.data for r in digit_renders(style, split, per_row, seed, pool=pool)]) for style in STYLES]
    others: dict[str, list[bytes]] = {category: [] for category in CATEGORIES}
    for item in nondigit_renders(split, per_row, seed, pool=pool):
        others[item.category].append(item.data)
    paths = []
    for name, rows in (("digit-styles.png", digits), ("non-digits.png", list(others.items()))):
        path = out / name
        grid(rows, side).quantize(COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            path, optimize=True
        )
        log.info("wrote %s (%d kB)", path, path.stat().st_size // 1000)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/renders"), metavar="DIR", help="(default: docs/renders)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="(default: test)")
    parser.add_argument("--per-row", type=int, default=8, metavar="N", help="renders per row (default: 8)")
    parser.add_argument("--thumb", type=int, default=104, metavar="PX", help="cell side in pixels (default: 104)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="(default: 0)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DIR", help="MNIST root (default: data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_sheets(args.out, args.split, args.per_row, args.thumb, args.seed, args.data_dir)


if __name__ == "__main__":
    main()
