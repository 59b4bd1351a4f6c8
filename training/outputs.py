"""What a finished run writes (rank 0 only): the checkpoint with its metadata, then the history, plots and model card
next to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mnist_model import ModelMetadata, checkpoint_version, save_checkpoint
from mnist_model.checkpoint import read_metadata
from training import reports
from training.calibrate import FinalEvaluation
from training.config import RUN_SHAPING, launch_command, run_config
from training.recipe import ONE_CYCLE_WARMUP, OPTIMIZER

if TYPE_CHECKING:  # the run's state, as training.run builds it
    from training.run import Datasets, Training

log = logging.getLogger("training")


def write_outputs(
    args: argparse.Namespace,
    argv: list[str],
    training: Training,
    data: Datasets,
    final: FinalEvaluation,
    history: list[dict[str, Any]],
) -> None:
    """Write the checkpoint (the moving average, when on), then the history, plots and model card next to it
    (rank 0 only).

    The checkpoint's metadata is the one record of how it was made: serving and the model card read nothing else.
    """
    runtime = training.setup.runtime
    test = final.test.stats
    validation = {**data.holdout}
    if final.validation is not None:
        validation |= {"accuracy": final.validation.stats.accuracy, "loss": final.validation.stats.loss}
    metadata = ModelMetadata(
        mean=training.setup.mean,
        std=training.setup.std,
        epochs=args.epochs,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        per_class_accuracy=test.per_class_accuracy,
        dataset_sha256=data.checksums,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        command=launch_command(argv, runtime.distributed, runtime.world_size),
        seed=args.seed,
        hyperparameters=hyperparameters(args, training, data),
        temperature=final.temperature,
        validation=validation,
        calibration=final.calibration_metadata(),
    )
    save_checkpoint(args.output, training.setup.evaluated, metadata)
    write_reports(args.output, metadata, history, final)
    log.info("wrote %s (test accuracy %.2f%%)", args.output, 100 * test.accuracy)
    log.info(
        "record its int8 ranges and fit its not-a-digit gate before serving it (until then CPUs without bf16 run "
        "float32 and the service answers is_digit: null): `make int8 gate CHECKPOINT=%s` (README, 'Is it a digit?')",
        args.output,
    )


def hyperparameters(args: argparse.Namespace, training: Training, data: Datasets) -> dict[str, object]:
    """The recipe recorded in the checkpoint: the run-shaping flags as parsed, plus what was decided at run time."""
    config = run_config(args)
    setup = training.setup
    return {
        **{key: config.get(key) for key in RUN_SHAPING},
        "world_size": setup.runtime.world_size,
        "optimizer": OPTIMIZER.__name__,
        "schedule": (
            f"OneCycleLR(pct_start={ONE_CYCLE_WARMUP})"
            if isinstance(training.scheduler, torch.optim.lr_scheduler.OneCycleLR)
            else "constant"
        ),
        "amp": str(setup.amp_dtype),
        "device": setup.runtime.device.type,
        "train_samples": len(setup.data),
        "rendered": data.rendered,
        "init_from": checkpoint_record(args.init_from),
        "distill_from": checkpoint_record(args.distill_from),
        "saved_weights": "exponential moving average" if setup.ema is not None else "last step",
    }


def checkpoint_record(path: Path | None) -> dict[str, object] | None:
    """A checkpoint a run used (--init-from: where a fine-tuned run started; --distill-from: its teacher): its
    path, its version (the file's SHA-256 prefix, as the service reports it), its own test accuracy and the command
    that made it; None when the flag was not given."""
    if path is None:
        return None
    start = read_metadata(path)
    return {
        "path": str(path),
        "version": checkpoint_version(path),
        "test_accuracy": start.test_accuracy,
        "command": start.command,
    }


def write_reports(
    checkpoint: Path, metadata: ModelMetadata, history: list[dict[str, Any]], final: FinalEvaluation
) -> None:
    """History (JSON), curves, confusion matrix and reliability diagram (PNG) and the model card, next to the
    checkpoint."""
    paths = reports.report_paths(checkpoint)
    reports.write_history(paths["history"], history)
    reports.plot_curves(paths["curves"], history)
    reports.plot_confusion(paths["confusion"], final.test.stats.confusion)
    reports.plot_reliability(paths["reliability"], final)
    reports.write_model_card(paths["card"], checkpoint, metadata, history, final.test.stats.confusion)
