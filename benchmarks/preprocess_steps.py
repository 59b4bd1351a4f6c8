"""Where preprocessing spends its time: each step of `to_mnist_pixels`, timed on the same uploads as `preprocess_ab`.

    python -m benchmarks.preprocess_steps --styles --photos 50                 # the 1024×768 photo JPEGs
    python -m benchmarks.preprocess_steps --styles grid --photos 0 --side 1024 --inside background rulings

Why: issue 9's budgets (a photo in 3 ms, every style in 5) are spent over a dozen steps, none of them dominant, and
each session that looked for the next saving wrote its own timer around them. This one times every step the pipeline
calls, found from `to_mnist_pixels`'s own code (the functions of `app.preprocess` it names), so a step added there is
timed without a change here; `--inside MODULE` also times the functions that a module of `app/preprocess` calls by a
name of its own module (its own steps and the helpers it imports: `background`'s fill, its percentiles and filters),
each time including what it calls in turn. Every function is wrapped for the run and restored after it; a wrapper costs
~0.3 µs a call.

Rows are ms an upload, the mean over uploads and timed passes (the first pass is not timed), so the pipeline's steps
add up to nearly its mean (the rest is the glue between them), while a module's calls are part of the steps above them;
a step called more than once an upload (`crop_to_ink`) is summed. Pin it to one core (`taskset -c 0`);
on a VM whose speed drifts, compare shares within a run rather than milliseconds across runs, and changes with
`benchmarks.preprocess_ab`.
"""

# ruff: noqa: T201  (a benchmark's printed table is its output)
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import pkgutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

import app.preprocess as pipeline
from app.preprocess import ImageError
from benchmarks.preprocess_ab import add_upload_arguments, uploads_by_style
from mnist_model.malloc import keep_freed_memory

PACKAGE = "app.preprocess"
MODULES = sorted(module.name for module in pkgutil.iter_modules(pipeline.__path__))
"""The package's modules, which `--inside` may name."""

Timings = defaultdict[str, list[float]]
"""Seconds of each call, by the name the function was called by."""


@dataclass(frozen=True)
class StepProfile:
    """One set of uploads through the pipeline: by row name, ms an upload and calls an upload; the pipeline's median
    and mean ms an upload; uploads refused (an `ImageError`) and uploads in all."""

    steps: dict[str, tuple[float, float]]
    median: float
    mean: float
    refused: int
    n: int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_upload_arguments(parser)
    parser.add_argument(
        "--inside",
        nargs="*",
        default=[],
        choices=MODULES,
        metavar="MODULE",
        help=f"modules of {PACKAGE} whose own calls are timed too (of {' '.join(MODULES)})",
    )
    args = parser.parse_args(argv)
    if args.passes < 2:
        parser.error("--passes must be at least 2: the first is not timed")
    args.inside = list(dict.fromkeys(args.inside))  # a module named twice is timed once
    return args


def pipeline_steps(function: Callable[..., object]) -> list[str]:
    """The global names `function`'s code calls that are functions of `app.preprocess`'s modules, in the order the
    code first names them: the steps of a pipeline written as a sequence of calls."""
    module = inspect.getmodule(function)
    names = []
    for name in function.__code__.co_names:  # globals and attributes alike; only the module's functions count
        if package_function(getattr(module, name, None)) and name not in names:
            names.append(name)
    return names


def module_calls(module: ModuleType) -> list[str]:
    """The names in `module`'s namespace bound to functions of `app.preprocess`'s modules: its own functions and the
    ones it imports, which its code calls by those names."""
    return [name for name, value in vars(module).items() if package_function(value)]


def package_function(value: object) -> bool:
    """Whether `value` is a function defined in one of `app.preprocess`'s modules (a step or a helper of the steps)."""
    return inspect.isfunction(value) and value.__module__.startswith(PACKAGE)


@contextlib.contextmanager
def timed(module: ModuleType, names: Sequence[str], timings: Timings, prefix: str = "") -> Iterator[None]:
    """Within the block, every call through `module.<name>` adds its duration to `timings[prefix + name]`; the
    original functions are put back on the way out, whatever happens."""
    originals = {name: getattr(module, name) for name in names}

    def wrapper(name: str, function: Callable[..., object]) -> Callable[..., object]:
        label = prefix + name

        def call(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings[label].append(time.perf_counter() - start)

        return call

    try:
        for name, function in originals.items():
            setattr(module, name, wrapper(name, function))
        yield
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def profile(uploads: Sequence[bytes], passes: int, inside: Sequence[str]) -> StepProfile:
    """`to_mnist_pixels` on every upload `passes` times with each step timed (the first pass untimed): per step, ms
    an upload and calls an upload; the whole pipeline's median and mean ms; how many uploads were refused."""
    timings: Timings = defaultdict(list)
    totals: list[float] = []
    refused = 0
    order = pipeline_steps(pipeline.to_mnist_pixels)  # the rows: the steps in the pipeline's order, then each module's
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed(pipeline, order, timings))
        for name in inside:
            module = importlib.import_module(f"{PACKAGE}.{name}")
            calls = module_calls(module)
            stack.enter_context(timed(module, calls, timings, prefix=f"{name}."))
            order = order + [f"{name}.{call}" for call in calls]
        for turn in range(passes):
            if turn == 1:  # the first pass warmed the caches: start counting
                timings.clear()
                totals.clear()
            for data in uploads:
                start = time.perf_counter()
                try:
                    pipeline.to_mnist_pixels(data)
                except ImageError:
                    refused += turn == 0
                totals.append(time.perf_counter() - start)
    count = len(totals)
    called = [name for name in order if name in timings]  # a step no upload reached (refused before it) has no row
    return StepProfile(
        steps={name: (1000 * sum(timings[name]) / count, len(timings[name]) / count) for name in called},
        median=1000 * float(np.median(totals)),
        mean=1000 * float(np.mean(totals)),
        refused=refused,
        n=len(uploads),
    )


def report(label: str, row: StepProfile, passes: int) -> str:
    """One table: the pipeline's steps, then each `--inside` module's calls, each with ms and share of the mean."""
    width = max([len("step"), *(len(name) for name in row.steps)])
    lines = [
        f"{label}: {row.n} uploads ({row.refused} refused), {passes - 1} timed passes; "
        f"median {row.median:.2f} ms, mean {row.mean:.2f} ms an upload",
        f"  {'step':{width}} {'ms':>7} {'share':>6} {'calls':>6}",
    ]
    module = ""
    for name, (ms, calls) in row.steps.items():
        inside = name.partition(".")[0] if "." in name else ""
        if inside != module:  # an --inside module's calls: time within the steps above, not added to them
            module = inside
            lines.append(f"  (inside {module}, within the steps above)")
        lines.append(f"  {name:{width}} {ms:>7.3f} {ms / row.mean:>6.1%} {calls:>6.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    keep_freed_memory()  # as the service does: steps reuse freed buffers
    print(f"{args.split} split, seed {args.seed}; ms an upload, mean over the timed passes")
    for label, files in uploads_by_style(args).items():
        if files:  # --per-style 0: nothing to time
            print(report(label, profile(files, args.passes, args.inside), args.passes), flush=True)


if __name__ == "__main__":
    main()
