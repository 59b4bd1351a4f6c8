"""training.reports: history, plots and model card written next to the checkpoint."""

import json

import pytest
import torch

from mnist_model import ModelMetadata
from mnist_model.calibration import reliability
from training import reports
from training.calibrate import FinalEvaluation, SplitReport
from training.loop import stats_from_log_probs

HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 0.5 / e, "val_accuracy": 0.9 + e / 100, "images_per_second": 1000.0}
    for e in (1, 2, 3)
]


def split_report(seed: int) -> SplitReport:
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(4 * torch.randn(200, 10, generator=generator), dim=1)
    labels = torch.randint(0, 10, (200,), generator=generator)
    return SplitReport(
        stats=stats_from_log_probs(log_probs, labels),
        before=reliability(log_probs.exp(), labels),
        after=reliability(torch.softmax(log_probs / 3, dim=1), labels),
    )


def test_report_paths_sit_next_to_the_checkpoint(tmp_path):
    paths = reports.report_paths(tmp_path / "mnist_cnn.safetensors")
    assert paths["history"] == tmp_path / "mnist_cnn.history.json"
    assert paths["card"] == tmp_path / "README.md"


def test_history_and_plots_are_written(tmp_path):
    reports.write_history(tmp_path / "h.json", HISTORY)
    assert json.loads((tmp_path / "h.json").read_text()) == HISTORY
    reports.plot_curves(tmp_path / "c.png", HISTORY)
    confusion = torch.eye(10, dtype=torch.long) * 100
    confusion[4, 9] = 3
    reports.plot_confusion(tmp_path / "m.png", confusion)
    reports.plot_reliability(tmp_path / "r.png", FinalEvaluation(3.0, test=split_report(0), validation=split_report(1)))
    reports.plot_curves(tmp_path / "no-validation.png", [{"epoch": 1, "train_loss": 0.3}])
    for name in ("c.png", "m.png", "r.png", "no-validation.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_model_card_lists_accuracy_per_class_and_command(tmp_path):
    metadata = ModelMetadata(
        epochs=3,
        test_accuracy=0.9954,
        test_loss=0.0151,
        per_class_accuracy=[0.99 + d / 1000 for d in range(10)],
        command="python -m training.run --seed 1",
        seed=1,
        hyperparameters={"lr": 0.003, "device": "cpu"},
        temperature=1.234,
        validation={"count": 5000, "total": 60000, "seed": 0, "indices_sha256": "c0ffee", "accuracy": 0.9962},
        calibration={
            "method": "temperature scaling",
            "bins": 15,
            "validation": {"ece_before": 0.0123, "ece_after": 0.0045},
            "test": {"ece_before": 0.0111, "ece_after": 0.0067},
        },
    )
    card = tmp_path / "README.md"
    confusion = torch.eye(10, dtype=torch.long) * 100
    confusion[9, 4], confusion[3, 5] = 6, 2
    reports.write_model_card(card, tmp_path / "m.safetensors", metadata, HISTORY, confusion)
    text = card.read_text()
    assert "99.54 %" in text and "python -m training.run --seed 1" in text
    assert "| 9 | 99.90 % |" in text and "| `lr` | `0.003` |" in text
    assert "m.curves.png" in text and "mistakes (true→predicted): 9→4 (6), 3→5 (2)" in text
    assert "**T = 1.234**" in text and "m.reliability.png" in text
    assert "| validation | 1.23 % | 0.45 % |" in text and "| test | 1.11 % | 0.67 % |" in text
    assert "5,000 of the 60,000 training images" in text and "`c0ffee`" in text and "99.62 %" in text
    reports.write_model_card(card, tmp_path / "m.safetensors", metadata, HISTORY, confusion)  # own card: rewritten


def test_model_card_never_overwrites_another_readme(tmp_path):
    (tmp_path / "README.md").write_text("# My project\n")
    with pytest.raises(FileExistsError, match="not a model card"):
        reports.write_model_card(
            tmp_path / "README.md",
            tmp_path / "m.safetensors",
            ModelMetadata(),
            HISTORY,
            torch.eye(10, dtype=torch.long),
        )
    assert (tmp_path / "README.md").read_text() == "# My project\n"
