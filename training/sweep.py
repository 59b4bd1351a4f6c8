"""Compare training recipes across seeds: many `training.run` processes at once, one table chosen on validation.

    python -m training.sweep --seeds 1 2 3 4 --recipe shipped= --recipe "sam=--sam-rho 0.05" --parallel 8 \\
        -- --device cuda --epochs 62 --rendered data/renders-train-digits1.npz data/renders-train-digits3.npz

Why: at this network's accuracy the seeds of one recipe differ as much as recipes do (docs/training.md: 99.50-99.60 %
on the 5,000 validation images across three seeds of one recipe, one image being 0.02 points), so a recipe is judged
by the mean of its seeds, never by one lucky run, and never on the test set, whose figure each checkpoint records
and the table shows only to report it. Every earlier comparison was a set of hand-launched runs read off their
logs; this is that, repeatable: each recipe × seed is one `python -m training.run` with the flags after `--`, the
recipe's own, `--seed` and `--output DIR/RECIPE-seedS/mnist_cnn.safetensors`, its log (`train.log`) beside it, at
most `--parallel` at once (on one GPU, eight small runs at once did ~2.9× the work of one alone). A run whose
checkpoint already records exactly its command is not trained again, and one stopped after an epoch (`--stop-after`)
is resumed, so a sweep cut short is continued by running the same command (without the stop).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from mnist_model.checkpoint import CheckpointError, read_metadata
from training.config import DEFAULT_OUTPUT, launch_command
from training.config import parse_args as run_flags
from training.state import state_path_for

log = logging.getLogger("training.sweep")

RECIPE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""A recipe's name becomes part of file names: letters, digits, '_', '.', '-'."""
SWEEP_FLAGS = ("--seed", "--output", "--resume")
"""Flags the sweep gives each run itself, which neither a recipe nor the shared flags may set."""
EPOCH_LINE = re.compile(rb"epoch (\d+)/\d+ ")
"""The line `training.run` logs after each epoch."""
PROGRESS_SECONDS = 5.0
"""How often the sweep's progress bar reads the runs' logs."""
CHECKPOINT_NAME = DEFAULT_OUTPUT.name
"""Each run writes into a folder of its own, under the name `training.run` gives the shipped checkpoint: its plots,
history and state are named after the checkpoint, but its model card is always the folder's README.md."""


@dataclass(frozen=True)
class Run:
    """One recipe at one seed: the flags of its `training.run` and where its checkpoint and log go."""

    recipe: str
    seed: int
    argv: tuple[str, ...]
    output: Path

    @property
    def name(self) -> str:
        return f"{self.recipe}-seed{self.seed}"

    @property
    def log_path(self) -> Path:
        return self.output.parent / "train.log"

    @property
    def command(self) -> str:
        """What its checkpoint records as its command when trained (`training.config.launch_command`)."""
        return launch_command(list(self.argv), distributed=False, world_size=1)


@dataclass(frozen=True)
class Outcome:
    """A run's figures from its checkpoint (fractions) where it is `trained`; else `unfinished` (stopped after an
    epoch by `--stop-after`, its state kept to continue) or `failed` (its log says why)."""

    run: Run
    validation: float = 0.0
    test: float = 0.0
    status: Literal["trained", "unfinished", "failed"] = "trained"


def parse_recipe(text: str) -> tuple[str, list[str]]:
    """`NAME=FLAGS` (FLAGS split as a shell would, possibly empty) as (NAME, flags); ValueError with the reason."""
    name, equals, flags = text.partition("=")
    if not equals or not RECIPE_NAME.fullmatch(name):
        raise ValueError(f"--recipe {text!r}: write NAME=FLAGS, NAME of letters, digits, '_', '.' or '-'")
    try:
        argv = shlex.split(flags)
    except ValueError as exc:
        raise ValueError(f"--recipe {text!r}: {exc}") from exc
    return name, argv


def sets(argv: Sequence[str], flag: str) -> bool:
    """Whether `argv` sets `flag`: as `--flag value`, `--flag=value`, or abbreviated as argparse accepts (`--out`)."""
    names = (arg.split("=", 1)[0] for arg in argv if arg.startswith("--"))
    return any(len(name) > 2 and flag.startswith(name) for name in names)


def sweep_flags_in(argv: Sequence[str]) -> list[str]:
    """The SWEEP_FLAGS that `argv` sets (`sets`)."""
    return [flag for flag in SWEEP_FLAGS if sets(argv, flag)]


def plan(
    recipes: Sequence[tuple[str, list[str]]], seeds: Sequence[int], shared: Sequence[str], folder: Path, threads: int
) -> list[Run]:
    """Every recipe at every seed, in that order. `--num-threads threads` is added where no flag sets it, so that
    runs sharing a CPU do not each start a thread per core, and `--no-progress`: a run's bar would fill its log (the
    sweep shows one bar for all, `follow`)."""
    runs = []
    for name, flags in recipes:
        argv = [*shared, *flags]
        if not sets(argv, "--num-threads"):
            argv += ["--num-threads", str(threads)]
        if not sets(argv, "--no-progress"):
            argv.append("--no-progress")
        for seed in seeds:
            output = folder / f"{name}-seed{seed}" / CHECKPOINT_NAME
            runs.append(Run(name, seed, (*argv, "--seed", str(seed), "--output", str(output)), output))
    return runs


def recorded(run: Run) -> Outcome | None:
    """The run's outcome where its checkpoint exists and records exactly its command; else None."""
    try:
        metadata = read_metadata(run.output)
    except (CheckpointError, OSError, ValueError):  # absent, unreadable or not a checkpoint: train it
        return None
    accuracy = metadata.validation.get("accuracy")
    if metadata.command != run.command or not isinstance(accuracy, int | float) or metadata.test_accuracy is None:
        return None
    return Outcome(run, float(accuracy), metadata.test_accuracy)


def train(run: Run) -> Outcome:
    """Train `run` in its own process (or resume it, or read it back where it is trained), its output in its log."""
    done = recorded(run)
    if done is not None:
        log.info("%s: already trained (%s)", run.name, run.output)
        return done
    run.output.parent.mkdir(parents=True, exist_ok=True)
    # a run cut short left its state after its last finished epoch: continued, not started again (training.run
    # refuses a state saved with other run-shaping flags, so a stale one fails the run rather than mixing recipes)
    resuming = state_path_for(run.output).exists()
    log.info("%s: %s, log in %s", run.name, "resuming" if resuming else "training", run.log_path)
    with run.log_path.open("a" if resuming else "w") as out:
        command = [sys.executable, "-m", "training.run", *run.argv, *(["--resume"] if resuming else [])]
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    outcome = recorded(run) if code == 0 else None
    if outcome is None and code == 0 and state_path_for(run.output).exists():
        log.info("%s: stopped before its last epoch; run the sweep again to continue it", run.name)
        return Outcome(run, status="unfinished")
    if outcome is None:
        log.error("%s failed (exit status %d): see %s", run.name, code, run.log_path)
        return Outcome(run, status="failed")
    log.info("%s: validation %.2f %%", run.name, 100 * outcome.validation)
    return outcome


def epochs_done(run: Run) -> int:
    """The last epoch `run`'s log reports finished (`training.run` logs "epoch N/M ..." after each); 0 before any."""
    try:
        found = EPOCH_LINE.findall(run.log_path.read_bytes())
    except OSError:  # not started yet
        return 0
    return int(found[-1]) if found else 0


def follow(futures: Sequence[Future[Outcome]], runs: Sequence[Run], epochs: Sequence[int]) -> None:
    """Until every run has ended, a bar of the epochs the runs' logs report finished, of all they will train."""

    def done() -> int:
        return sum(map(min, map(epochs_done, runs), epochs))

    # runs already trained or stopped start the bar where they are, so its rate is this sweep's
    with tqdm(total=sum(epochs), initial=done(), unit="epoch", desc="sweep", disable=None) as bar:
        while wait(futures, timeout=PROGRESS_SECONDS).not_done:
            bar.update(done() - bar.n)
        bar.update(done() - bar.n)


def percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def report(outcomes: Sequence[Outcome]) -> str:
    """Markdown: each recipe's mean validation accuracy over its seeds (best first) with their range, then every
    run. Test figures are listed as recorded, never used to rank. A recipe with a run not trained is listed last,
    unranked: the mean of the seeds that did train would be a different comparison."""
    by_recipe: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_recipe.setdefault(outcome.run.recipe, []).append(outcome)
    ranked, unranked = [], []
    for name, runs in by_recipe.items():
        untrained = [outcome.status for outcome in runs if outcome.status != "trained"]
        if untrained:
            counts = ", ".join(f"{untrained.count(status)} {status}" for status in sorted(set(untrained)))
            unranked.append(f"| {name} | {len(runs)} | {counts} | – | – |")
            continue
        validation = [outcome.validation for outcome in runs]
        test = statistics.fmean(outcome.test for outcome in runs)
        ranked.append((statistics.fmean(validation), name, min(validation), max(validation), test, len(runs)))
    ranked.sort(key=lambda row: -row[0])
    return "\n".join(
        [
            "| recipe | seeds | mean validation (chooses) | validation range | mean test (reported only) |",
            "| --- | ---: | ---: | ---: | ---: |",
            *(
                f"| {name} | {n} | {percent(mean)} | {percent(low)} – {percent(high)} | {percent(test)} |"
                for mean, name, low, high, test, n in ranked
            ),
            *unranked,
            "",
            "| run | validation | test (reported only) | checkpoint |",
            "| --- | ---: | ---: | --- |",
            *(
                f"| {o.run.name} | "
                + (f"{percent(o.validation)} | {percent(o.test)} |" if o.status == "trained" else f"{o.status} | – |")
                + f" {o.run.output} |"
                for o in outcomes
            ),
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own flags, and the flags after `--` that every run shares."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="python -m training.sweep",
        description=__doc__.split("\n\n")[0] + " Flags after `--` go to every run (python -m training.run --help).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--recipe",
        action="append",
        metavar="NAME=FLAGS",
        help="a recipe: its name and its own training.run flags; repeat for more (None: one recipe, 'default', "
        "with the shared flags alone)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], metavar="S", help="seeds of every recipe")
    parser.add_argument("--parallel", type=int, default=1, metavar="N", help="runs training at once")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="--num-threads of each run where no flag sets it; 0 = the CPU cores divided among the --parallel runs",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/sweep"), metavar="DIR", help="checkpoints, logs")
    args = parser.parse_args(argv[:split])
    shared = argv[split + 1 :]
    try:
        args.recipes = [parse_recipe(text) for text in args.recipe or ["default="]]
    except ValueError as exc:
        parser.error(str(exc))
    if len({name for name, _ in args.recipes}) != len(args.recipes):
        parser.error("--recipe names must differ: each names its runs' files")
    for where, flags in [("the shared flags", shared), *((f"--recipe {n}", f) for n, f in args.recipes)]:
        if sweep_flags_in(flags):
            parser.error(f"{where} set {', '.join(sweep_flags_in(flags))}: the sweep sets those for each run")
    if args.parallel < 1 or args.threads < 0:
        parser.error("--parallel must be at least 1 and --threads at least 0")
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    return args, shared


def main(argv: Sequence[str] | None = None) -> int:
    """Train every run not yet trained, log and write the report (DIR/sweep.md); 1 unless every run is trained,
    2 for flags that no run could start with."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, shared = parse_args(argv)
    runs = plan(args.recipes, args.seeds, shared, args.output_dir, args.threads)
    epochs = []
    for run in runs:  # every run's flags checked before any starts: a typo in one recipe stops the sweep at once
        try:
            flags = run_flags(list(run.argv))
        except SystemExit:  # training.run's parser printed why
            log.error("%s: training.run refuses its flags (above): %s", run.name, shlex.join(run.argv))
            return 2
        if flags.val_samples == 0:
            log.error("%s holds no validation images out (--val-samples 0): the sweep chooses on them", run.recipe)
            return 2
        epochs.append(flags.epochs)
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(train, run) for run in runs]
        follow(futures, runs, epochs)
        outcomes = [future.result() for future in futures]
    table = report(outcomes)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "sweep.md").write_text(table + "\n")
    log.info("wrote %s:\n%s", args.output_dir / "sweep.md", table)
    return 0 if all(outcome.status == "trained" for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
