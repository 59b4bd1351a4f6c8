"""What a person reads after training: metrics history (JSON), curves, confusion matrix and reliability diagram
(PNG), model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mnist_model import ModelMetadata  # noqa: E402
from mnist_model.checkpoint import atomic_write  # noqa: E402
from training.calibrate import FinalEvaluation  # noqa: E402

CARD_MARKER = "<!-- mnist-serve model card: written by training/reports.py -->"


def report_paths(checkpoint: Path) -> dict[str, Path]:
    """Files written next to the checkpoint; the model card is the folder's README.md."""
    stem = checkpoint.with_suffix("")
    return {
        "history": stem.with_name(stem.name + ".history.json"),
        "curves": stem.with_name(stem.name + ".curves.png"),
        "confusion": stem.with_name(stem.name + ".confusion.png"),
        "reliability": stem.with_name(stem.name + ".reliability.png"),
        "card": checkpoint.parent / "README.md",
    }


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(history, indent=1) + "\n"))


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Training loss (augmented images, label smoothing included), validation loss and accuracy per epoch."""
    epochs = [row["epoch"] for row in history]
    validated = [row for row in history if "val_loss" in row]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train (augmented)")
    if validated:
        val_epochs = [row["epoch"] for row in validated]
        loss_ax.plot(val_epochs, [row["val_loss"] for row in validated], marker="o", label="validation")
        acc_ax.plot(val_epochs, [100 * row["val_accuracy"] for row in validated], marker="o", color="tab:green")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss", yscale="log")
    loss_ax.legend()
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy (held-out training images)")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def plot_confusion(path: Path, confusion: torch.Tensor) -> None:
    """10×10 counts, true digit on rows; the diagonal is dimmed so the mistakes stand out."""
    counts = confusion.numpy()
    errors = counts.copy()
    errors[range(10), range(10)] = 0
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(errors, cmap="Reds")
    for true in range(10):
        for predicted in range(10):
            value = counts[true, predicted]
            if value:
                ax.text(
                    predicted,
                    true,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="grey" if true == predicted else "black",
                )
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix ({int(counts.trace())}/{int(counts.sum())} correct)",
    )
    fig.colorbar(image, ax=ax, label="errors")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def plot_reliability(path: Path, final: FinalEvaluation) -> None:
    """Reliability diagram per split: accuracy against confidence in equal-width bins, before and after the
    temperature (a calibrated model sits on the diagonal), above how many answers fall in each bin (log scale)."""
    splits = [(name, report) for name, report in (("validation", final.validation), ("test", final.test)) if report]
    fig, axes = plt.subplots(
        2, len(splits), figsize=(5.2 * len(splits), 6.4), squeeze=False, gridspec_kw={"height_ratios": [3, 1]}
    )
    for column, (name, report) in enumerate(splits):
        curve_ax, count_ax = axes[0][column], axes[1][column]
        for bins, label, color, offset in (
            (report.before, "T = 1", "tab:grey", -0.25),
            (report.after, f"T = {final.temperature:.3f}", "tab:blue", 0.25),
        ):
            filled = bins.counts > 0
            confidence, accuracy = bins.confidence[filled].numpy(), bins.accuracy[filled].numpy()
            curve_ax.plot(confidence, accuracy, marker="o", color=color, label=label)
            width = 1 / len(bins.counts)
            centres = ((torch.arange(len(bins.counts)) + 0.5 + offset / 2) * width).numpy()
            count_ax.bar(centres, bins.counts.numpy(), width=width / 2, color=color, log=True)
        curve_ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--")
        title = (
            f"{name}: ECE {100 * report.before.expected_calibration_error:.2f} % → "
            f"{100 * report.after.expected_calibration_error:.2f} %"
        )
        curve_ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy", title=title)
        curve_ax.legend(loc="upper left", fontsize=8)
        count_ax.set(xlim=(0, 1), xlabel="confidence (top probability)", ylabel="images")
        for ax in (curve_ax, count_ax):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _validation_text(metadata: ModelMetadata) -> str:
    """Which training images were held out, and the model's score on them."""
    held = metadata.validation
    if not held.get("count"):
        return "No training images were held out for validation (`--val-samples 0`)."
    total = held.get("total", 60000)
    score = (
        f" The model scores {100 * float(cast(float, held['accuracy'])):.2f} % on them." if "accuracy" in held else ""
    )
    return (
        f"Validation: {held['count']:,} of the {total:,} training images were held out, never trained on "
        f"(`training.data.holdout_indices({total}, {held['count']}, seed={held.get('seed')})`; SHA-256 of the "
        f"indices `{held.get('indices_sha256')}`). Recipes and the calibration temperature were chosen on them, never "
        f"on the test set.{score}"
    )


def _calibration_text(metadata: ModelMetadata) -> str:
    """Temperature and expected calibration error before/after, per split."""
    calibration = metadata.calibration
    rows = [
        f"| {name} | {100 * float(values['ece_before']):.2f} % | {100 * float(values['ece_after']):.2f} % |"
        for name in ("validation", "test")
        if isinstance(values := calibration.get(name), dict)
    ]
    if not rows:
        return f"Temperature {metadata.temperature:g} (not calibrated)."
    return (
        f"The service divides the network's log-probabilities by the temperature **T = {metadata.temperature:.3f}** "
        f"before the softmax ({calibration.get('method')}). Expected calibration error over "
        f"{calibration.get('bins')} equal-width confidence bins:\n\n"
        "| split | ECE, T = 1 | ECE, calibrated |\n| --- | ---: | ---: |\n" + "\n".join(rows)
    )


def top_confusions(confusion: torch.Tensor, count: int = 4) -> str:
    """The most frequent mistakes, e.g. "9→4 (6), 9→8 (4)", read from the confusion matrix."""
    errors = confusion.clone()
    errors.fill_diagonal_(0)
    values, flat = errors.flatten().topk(count)
    return ", ".join(f"{i // 10}→{i % 10} ({v})" for v, i in zip(values.tolist(), flat.tolist(), strict=True) if v)


def training_data_limitation(rendered: object) -> str:
    """The card's first limitation: what the network has seen (MNIST alone, or with `--rendered` digits)."""
    seen = (
        "Trained only on MNIST: centred, size-normalised, white-on-black digits from US writers."
        if rendered is None
        else "Trained on MNIST (centred, size-normalised, white-on-black digits from US writers) and on MNIST\n"
        "  training digits rendered as uploads and preprocessed by the service (`--rendered`)."
    )
    return (
        f"{seen}\n  Photos, scans and canvas drawings must be preprocessed the same way first (the service's\n"
        "  `app/preprocess/` does this)."
    )


def write_model_card(
    path: Path, checkpoint: Path, metadata: ModelMetadata, history: list[dict[str, Any]], confusion: torch.Tensor
) -> None:
    """Markdown model card; refuses to overwrite a README.md that it did not write."""
    if path.exists() and CARD_MARKER not in path.read_text(errors="replace")[:500]:
        raise FileExistsError(f"{path} exists and is not a model card: choose another --output folder")
    paths = report_paths(checkpoint)
    last = history[-1] if history else {}
    per_class = "\n".join(f"| {digit} | {100 * acc:.2f} % |" for digit, acc in enumerate(metadata.per_class_accuracy))
    hyper = "\n".join(f"| `{key}` | `{value}` |" for key, value in sorted(metadata.hyperparameters.items()))
    accuracy = f"{100 * metadata.test_accuracy:.2f} %" if metadata.test_accuracy is not None else "n/a"
    test_loss = metadata.test_loss if metadata.test_loss is not None else float("nan")
    text = f"""{CARD_MARKER}
# Model card: `{checkpoint.name}`

**{metadata.architecture}**: the pytorch/examples MNIST CNN (conv 32 → conv 64 → max-pool → dropout → fc 128 →
dropout → fc 10, 1.2 M parameters), trained by `training.run`. Test accuracy **{accuracy}** on the 10,000 MNIST test
images (test loss {test_loss:.4f}) after {metadata.epochs} epochs.

## Reproduce
```
{metadata.command}
```
Seed {metadata.seed}; torch {metadata.torch_version}; written {metadata.created_at}.
Last epoch: {last.get("images_per_second", 0):.0f} training images/s on `{metadata.hyperparameters.get("device", "?")}`.

## Data
MNIST (LeCun, Cortes, Burges): 60,000 training and 10,000 test images of 28×28 white-on-black digits, read from the
canonical IDX files. SHA-256 of pixels + labels:
{chr(10).join(f"- {split}: `{digest}`" for split, digest in sorted(metadata.dataset_sha256.items()))}

Input normalisation: `(pixel / 255 - {metadata.mean}) / {metadata.std}`.

{_validation_text(metadata)}

## Calibration
{_calibration_text(metadata)}

## Hyperparameters
| setting | value |
| --- | --- |
{hyper}

## Per-class test accuracy
| digit | accuracy |
| --- | --- |
{per_class}

![training curves]({paths["curves"].name})
![confusion matrix]({paths["confusion"].name})
![reliability diagram]({paths["reliability"].name})

Metrics per epoch: [`{paths["history"].name}`]({paths["history"].name}).

## Limitations
- {training_data_limitation(metadata.hyperparameters.get("rendered"))}
- One digit per image; it always answers one of 0–9, even for images of no digit. Calibration makes confidence
  honest on digits like MNIST's; on things that are no digit at all, low confidence is a hint, not a reliable
  out-of-distribution detector.
- Most frequent test-set mistakes (true→predicted): {top_confusions(confusion) or "none"}; see the confusion matrix.
"""
    atomic_write(path, lambda tmp: tmp.write_text(text))
