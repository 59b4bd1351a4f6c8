"""What a person reads after training: metrics history (JSON), curves and confusion matrix (PNG), model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mnist_model import ModelMetadata  # noqa: E402
from mnist_model.checkpoint import atomic_write  # noqa: E402

CARD_MARKER = "<!-- mnist-serve model card: written by training/reports.py -->"


def report_paths(checkpoint: Path) -> dict[str, Path]:
    """Files written next to the checkpoint; the model card is the folder's README.md."""
    stem = checkpoint.with_suffix("")
    return {
        "history": stem.with_name(stem.name + ".history.json"),
        "curves": stem.with_name(stem.name + ".curves.png"),
        "confusion": stem.with_name(stem.name + ".confusion.png"),
        "card": checkpoint.parent / "README.md",
    }


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(history, indent=1) + "\n"))


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Train/test loss and test accuracy per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    loss_ax.plot(epochs, [row["test_loss"] for row in history], marker="o", label="test")
    loss_ax.set(xlabel="epoch", ylabel="NLL loss", title="Loss", yscale="log")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * row["test_accuracy"] for row in history], marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Test accuracy")
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


def top_confusions(confusion: torch.Tensor, count: int = 4) -> str:
    """The most frequent mistakes, e.g. "9→4 (6), 9→8 (4)", read from the confusion matrix."""
    errors = confusion.clone()
    errors.fill_diagonal_(0)
    values, flat = errors.flatten().topk(count)
    return ", ".join(f"{i // 10}→{i % 10} ({v})" for v, i in zip(values.tolist(), flat.tolist(), strict=True) if v)


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

Metrics per epoch: [`{paths["history"].name}`]({paths["history"].name}).

## Limitations
- Trained only on MNIST: centred, size-normalised, white-on-black digits from US writers. Photos, scans and canvas
  drawings must be preprocessed the same way first (the service's `app/preprocess/` does this).
- One digit per image; it always answers one of 0–9, even for images of no digit. Low confidence is a hint, not a
  reliable out-of-distribution detector.
- Most frequent test-set mistakes (true→predicted): {top_confusions(confusion) or "none"}; see the confusion matrix.
"""
    atomic_write(path, lambda tmp: tmp.write_text(text))
