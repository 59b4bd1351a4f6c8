"""training.run end to end on real MNIST: smoke run, determinism, resume, DDP, and clear errors."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mnist_model import checkpoint_version, load_checkpoint
from mnist_model.checkpoint import read_metadata
from tests.helpers import REPO, RUN_OUTPUTS, TutorialNet
from training.config import launch_command
from training.data import holdout_indices, indices_sha256, load_split
from training.distributed import Runtime
from training.loop import evaluate
from training.run import load_data, main, parse_args

pytestmark = pytest.mark.slow


def run_args(root: Path, output: Path, *extra: str, samples: int = 256) -> list[str]:
    return [
        "--data-dir",
        str(root),
        "--output",
        str(output),
        "--max-train-samples",
        str(samples),
        "--batch-size",
        "64",
        "--no-progress",
        "--device",
        "cpu",
        "--val-samples",
        "200",
        *extra,
    ]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def test_one_epoch_writes_checkpoint_reports_and_card(mnist_root, tmp_path):
    output = tmp_path / "run" / "m.safetensors"
    assert main(run_args(mnist_root, output, "--epochs", "1", samples=300)) == 0

    model, metadata = load_checkpoint(output)
    assert metadata.epochs == 1
    # The recorded accuracy is the written network's, measured again here in float32 on the whole test set.
    test = load_split(mnist_root, train=False)
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    stats = evaluate(model, test, runtime=runtime, mean=metadata.mean, std=metadata.std)
    assert metadata.test_accuracy == pytest.approx(stats.accuracy, abs=1.5e-4)
    assert len(metadata.per_class_accuracy) == 10
    assert set(metadata.dataset_sha256) == {"train", "test"} and len(metadata.dataset_sha256["test"]) == 64
    assert metadata.command.startswith("python -m training.run --data-dir")
    assert metadata.torch_version == torch.__version__ and metadata.created_at.startswith("20")
    assert metadata.hyperparameters["train_samples"] == 300 and metadata.hyperparameters["val_samples"] == 200
    assert metadata.hyperparameters["saved_weights"] == "exponential moving average"
    held_out = holdout_indices(60000, 200, seed=0)
    assert metadata.validation["count"] == 200 and metadata.validation["seed"] == 0
    assert metadata.validation["indices_sha256"] == indices_sha256(held_out)
    assert 0.15 < metadata.validation["accuracy"] <= 1.0
    assert metadata.temperature > 0 and metadata.temperature != 1.0  # fitted, not the default
    for split in ("validation", "test"):
        assert set(metadata.calibration[split]) == {"ece_before", "ece_after"}

    tutorial = TutorialNet().eval()
    tutorial.load_state_dict(weights(output))
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(tutorial(x), model(x))

    history = json.loads((output.parent / "m.history.json").read_text())
    assert [row["epoch"] for row in history] == [1]
    assert 0.15 < history[0]["val_accuracy"] <= 1.0 and "test_accuracy" not in history[0]  # test: measured once
    for png in ("m.curves.png", "m.confusion.png", "m.reliability.png"):
        assert (output.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (output.parent / "README.md").read_text()
    assert metadata.command in card and f"{100 * metadata.test_accuracy:.2f} %" in card
    assert f"T = {metadata.temperature:.3f}" in card and metadata.validation["indices_sha256"] in card
    assert (output.parent / "m.state.pt").is_file()


def test_same_seed_same_weights_and_resume_matches_uninterrupted(mnist_root, tmp_path):
    args = ("--epochs", "2")
    straight, again, resumed = (tmp_path / name / "m.safetensors" for name in ("straight", "again", "resumed"))
    assert main(run_args(mnist_root, straight, *args)) == 0
    assert main(run_args(mnist_root, again, *args)) == 0
    assert main(run_args(mnist_root, resumed, *args, "--stop-after", "1")) == 0
    assert not resumed.exists() and (resumed.parent / "m.state.pt").exists()  # interrupted: state only
    assert main(run_args(mnist_root, resumed, *args, "--resume")) == 0

    reference = weights(straight)
    for other in (again, resumed):
        assert all(torch.equal(reference[name], tensor) for name, tensor in weights(other).items())
    history = json.loads((resumed.parent / "m.history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    straight_history = json.loads((straight.parent / "m.history.json").read_text())
    assert [row["val_loss"] for row in history] == [row["val_loss"] for row in straight_history]
    straight_metadata, resumed_metadata = read_metadata(straight), read_metadata(resumed)
    assert resumed_metadata.temperature == straight_metadata.temperature
    assert resumed_metadata.command == straight_metadata.command.replace("straight", "resumed")  # no --resume


def test_rendered_digits_join_training_and_non_digits_are_exposed_repeatably(mnist_root, tmp_path):
    rng = np.random.default_rng(0)
    rendered = tmp_path / "renders.npz"
    labels = np.array([1, 7, -1, 4, -1, -1] * 10)
    held_out = holdout_indices(60_000, 200, 0).numpy()  # what --val-samples 200 holds out
    sources = np.setdiff1d(np.arange(60_000), held_out)[: len(labels)]
    digit_rows = np.flatnonzero(labels >= 0)
    sources[digit_rows[:5]] = held_out[:5]  # five digits rendered from validation images: never trained on
    sources[labels < 0] = -1
    pixels = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    np.savez(rendered, pixels=pixels, label=labels, mnist_index=sources)
    args = ("--epochs", "2", "--rendered", str(rendered), "--outlier-batch", "8")
    straight, resumed = tmp_path / "straight" / "m.safetensors", tmp_path / "resumed" / "m.safetensors"
    assert main(run_args(mnist_root, straight, *args)) == 0
    assert main(run_args(mnist_root, resumed, *args, "--stop-after", "1")) == 0
    assert main(run_args(mnist_root, resumed, *args, "--resume")) == 0
    reference = weights(straight)
    assert all(torch.equal(reference[name], tensor) for name, tensor in weights(resumed).items())

    recipe = read_metadata(straight).hyperparameters
    assert recipe["train_samples"] == 256 + 25  # MNIST images plus the rendered digits not from held-out images
    assert recipe["rendered"]["digits"] == 25 and recipe["rendered"]["outliers"] == 30
    assert recipe["rendered"]["held_out_sources_dropped"] == 5
    assert recipe["rendered"]["files"] == [
        {"path": str(rendered), "sha256": hashlib.sha256(rendered.read_bytes()).hexdigest()}
    ]
    assert recipe["outlier_weight"] == 0.5 and recipe["outlier_batch"] == 8
    plain = tmp_path / "plain" / "m.safetensors"
    assert main(run_args(mnist_root, plain, "--epochs", "1")) == 0
    assert read_metadata(plain).hyperparameters["outlier_weight"] == 0.0  # nothing to expose without --rendered
    assert read_metadata(plain).hyperparameters["rendered"] is None
    # The model card says what the network has seen.
    assert "digits rendered as uploads" in (straight.parent / "README.md").read_text()
    assert "Trained only on MNIST" in (plain.parent / "README.md").read_text()


def test_without_held_out_images_nothing_is_calibrated(mnist_root, tmp_path):
    output = tmp_path / "m.safetensors"
    args = run_args(mnist_root, output, "--epochs", "1", samples=64)
    args[args.index("--val-samples") + 1] = "0"
    assert main(args) == 0
    metadata = read_metadata(output)
    assert metadata.temperature == 1.0 and metadata.validation["count"] == 0
    assert "validation" not in metadata.calibration and "test" in metadata.calibration
    assert "val_loss" not in json.loads((tmp_path / "m.history.json").read_text())[0]
    assert "No training images were held out" in (tmp_path / "README.md").read_text()


@pytest.mark.slow
def test_held_out_images_are_never_in_the_training_split(mnist_root):
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    full = load_split(mnist_root, train=True)
    held = holdout_indices(60000, 1000, seed=5)
    kept = torch.ones(60000, dtype=torch.bool)
    kept[held] = False
    data = load_data(parse_args(["--data-dir", str(mnist_root), "--val-samples", "1000", "--val-seed", "5"]), runtime)
    assert len(data.train) == 59000 and len(data.validation) == 1000
    assert torch.equal(data.validation.images, full.images[held])
    assert torch.equal(data.train.images, full.images[kept])
    assert data.holdout["indices_sha256"] == indices_sha256(held) and data.checksums["train"] == full.sha256()
    args = ["--data-dir", str(mnist_root), "--val-samples", "1000", "--val-seed", "5", "--max-train-samples", "300"]
    truncated = load_data(parse_args(args), runtime)
    assert torch.equal(truncated.train.images, full.images[kept][:300])  # the first 300 of what was not held out


def test_holding_out_every_image_is_a_clear_error(mnist_root, tmp_path, caplog):
    args = run_args(mnist_root, tmp_path / "m.safetensors")
    args[args.index("--val-samples") + 1] = "60000"
    assert main(args) == 1
    assert "--val-samples must be between 0 and 59999" in caplog.text


def test_different_seed_gives_different_weights(mnist_root, tmp_path):
    a, b = tmp_path / "a" / "m.safetensors", tmp_path / "b" / "m.safetensors"
    assert main(run_args(mnist_root, a, "--epochs", "1", samples=64)) == 0
    assert main(run_args(mnist_root, b, "--epochs", "1", "--seed", "2", samples=64)) == 0
    assert not torch.equal(weights(a)["fc2.weight"], weights(b)["fc2.weight"])


def test_resume_refuses_changed_settings_and_corrupt_state(mnist_root, tmp_path, caplog):
    output = tmp_path / "m.safetensors"
    assert main(run_args(mnist_root, output, "--epochs", "2", "--stop-after", "1", samples=64)) == 0
    assert main(run_args(mnist_root, output, "--epochs", "3", "--resume", samples=64)) == 1
    assert "--epochs was 2, now 3" in caplog.text
    (tmp_path / "m.state.pt").write_bytes(b"PK\x03\x04 truncated")
    assert main(run_args(mnist_root, output, "--epochs", "2", "--resume", samples=64)) == 1
    assert "corrupt" in caplog.text


def test_a_state_saved_before_a_flag_existed_resumes_as_if_it_had_its_default(mnist_root, tmp_path, caplog):
    output = tmp_path / "m.safetensors"
    assert main(run_args(mnist_root, output, "--epochs", "2", "--stop-after", "1", samples=64)) == 0
    state_file = tmp_path / "m.state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["config"]["sam_rho"]  # as a state written before --sam-rho was added
    torch.save(state, state_file)
    assert main(run_args(mnist_root, output, "--epochs", "2", "--sam-rho", "0.05", "--resume", samples=64)) == 1
    assert "--sam-rho was 0.0, now 0.05" in caplog.text  # the missing flag is its default: off
    assert main(run_args(mnist_root, output, "--epochs", "2", "--resume", samples=64)) == 0
    assert output.is_file()


def test_resume_without_state_is_a_clear_error(mnist_root, tmp_path, caplog):
    assert main(run_args(mnist_root, tmp_path / "m.safetensors", "--resume")) == 1
    assert "no training state" in caplog.text


def test_missing_data_dir_exits_with_instructions(tmp_path, caplog, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("offline")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    assert main(["--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "m.safetensors")]) == 1
    assert "train-images-idx3-ubyte.gz" in caplog.text and str(tmp_path / "nowhere") in caplog.text


def test_init_from_starts_at_a_checkpoints_weights_and_records_it(mnist_root, tmp_path, caplog):
    start = tmp_path / "start" / "m.safetensors"
    assert main(run_args(mnist_root, start, "--epochs", "1", samples=64)) == 0
    # a step too small to move the weights: the fine-tuned run ends where it started, a scratch run does not
    still = ("--epochs", "1", "--lr", "1e-12", "--ema-decay", "0", "--seed", "5")
    tuned, scratch = tmp_path / "tuned" / "m.safetensors", tmp_path / "scratch" / "m.safetensors"
    assert main(run_args(mnist_root, tuned, *still, "--init-from", str(start), samples=64)) == 0
    assert main(run_args(mnist_root, scratch, *still, samples=64)) == 0
    started, ended, fresh = weights(start), weights(tuned), weights(scratch)
    for name, tensor in started.items():
        torch.testing.assert_close(ended[name], tensor, rtol=0, atol=1e-6)
        assert not torch.allclose(fresh[name], tensor, atol=1e-3)
    recorded = read_metadata(tuned).hyperparameters["init_from"]
    assert recorded["path"] == str(start) and recorded["version"] == checkpoint_version(start)
    assert recorded["test_accuracy"] == read_metadata(start).test_accuracy
    assert recorded["command"] == read_metadata(start).command
    assert read_metadata(scratch).hyperparameters["init_from"] is None
    assert (
        main(run_args(mnist_root, tmp_path / "x.safetensors", "--init-from", str(tmp_path / "none.safetensors"))) == 1
    )
    assert "no checkpoint at" in caplog.text


def test_sam_rho_changes_the_steps_repeatably_and_is_recorded(mnist_root, tmp_path):
    plain, sam, again = (tmp_path / name / "m.safetensors" for name in ("plain", "sam", "again"))
    assert main(run_args(mnist_root, plain, "--epochs", "1", samples=64)) == 0
    for output in (sam, again):
        assert main(run_args(mnist_root, output, "--epochs", "1", "--sam-rho", "0.05", samples=64)) == 0
    reference, sharp, repeated = weights(plain), weights(sam), weights(again)
    assert all(torch.equal(sharp[name], tensor) for name, tensor in repeated.items())  # same seed, same weights
    assert any(not torch.allclose(reference[name], tensor) for name, tensor in sharp.items())
    assert read_metadata(sam).hyperparameters["sam_rho"] == 0.05
    assert read_metadata(plain).hyperparameters["sam_rho"] == 0.0
    assert "--sam-rho 0.05" in read_metadata(sam).command


def test_distill_from_records_its_teacher_and_refuses_one_that_saw_the_validation_images(mnist_root, tmp_path, caplog):
    teacher = tmp_path / "teacher" / "m.safetensors"
    assert main(run_args(mnist_root, teacher, "--epochs", "1", samples=64)) == 0
    student = tmp_path / "student" / "m.safetensors"
    flags = ("--epochs", "1", "--distill-from", str(teacher), "--distill-weight", "0.7")
    assert main(run_args(mnist_root, student, *flags, samples=64)) == 0
    recipe = read_metadata(student).hyperparameters
    assert recipe["distill_from"]["version"] == checkpoint_version(teacher)
    assert recipe["distill_from"]["test_accuracy"] == read_metadata(teacher).test_accuracy
    assert (recipe["distill_weight"], recipe["distill_temperature"]) == (0.7, 4.0)
    assert read_metadata(teacher).hyperparameters["distill_weight"] == 0.0  # no teacher: recorded as none
    # another --val-seed holds out other images, some of which the teacher trained on
    other = run_args(mnist_root, tmp_path / "other" / "m.safetensors", *flags, "--val-seed", "1", samples=64)
    assert main(other) == 1
    assert "did not hold out this run's validation images" in caplog.text
    assert not (tmp_path / "other" / "m.safetensors").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "-4"], "--batch-size must be at least 1"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--output", "model.pt"], "--output must end in .safetensors"),
        (["--init-from", "model.pt"], "--init-from must be a .safetensors checkpoint"),
        (["--distill-from", "model.pt"], "--distill-from must be a .safetensors checkpoint"),
        (["--distill-weight", "1.5"], "--distill-weight must be between 0 and 1"),
        (["--distill-temperature", "0"], "--distill-temperature must be a positive number"),
        (["--amp", "fp8"], "invalid choice"),
        (["--sam-rho", "-0.05"], "--sam-rho must be a number >= 0"),
        (["--sam-rho", "nan"], "--sam-rho must be a number >= 0"),
        (["--sam-rho", "0.05", "--amp", "fp16"], "--sam-rho needs bf16 or float32 training"),
        (["--val-samples", "-1"], "--val-samples must be >= 0"),
        (["--elastic-p", "1.5"], "--elastic-p must be between 0 and 1"),
        (["--label-smoothing", "-0.1"], "--label-smoothing must be between 0 and 1"),
        (["--ema-decay", "1"], "--ema-decay 1 would never move"),
        (["--scale", "1"], "--scale must be below 1"),
        (["--epochs", "many"], "invalid int value"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(flags)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_fp16_on_cpu_is_refused(mnist_root, tmp_path, caplog):
    assert main(run_args(mnist_root, tmp_path / "m.safetensors", "--amp", "fp16", "--epochs", "1")) == 1
    assert "--amp fp16 needs a CUDA device" in caplog.text


def test_help_shows_defaults():
    out = subprocess.run(
        [sys.executable, "-m", "training.run", "--help"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    out = " ".join(out.split())  # argparse wraps lines at the terminal width
    for text in (
        "--data-dir DIR",
        "--epochs N epochs to train (default: 60)",
        "(default: models/mnist_cnn.safetensors)",
        "--resume",
    ):
        assert text in out


def test_torchrun_two_cpu_processes_train_disjoint_shards(mnist_root, tmp_path):
    output = tmp_path / "ddp" / "m.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "training.run",
        *run_args(mnist_root, output, "--epochs", "1", samples=2000),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("process group: gloo backend, 2 processes") == 1  # logged by rank 0 alone

    history = json.loads((output.parent / "m.history.json").read_text())
    assert history[0]["world_size"] == 2
    assert history[0]["samples_per_rank"] == 1000
    assert history[0]["distinct_samples"] == 2000  # the two shards do not overlap and cover the data
    # Only rank 0 writes: one checkpoint, one state, no temporary files, and one log line per epoch.
    assert {p.name for p in output.parent.iterdir()} == RUN_OUTPUTS
    assert result.stderr.count("epoch 1/1  train loss") == 1
    metadata = read_metadata(output)
    assert metadata.command.startswith("torchrun --nnodes=1 --nproc_per_node=2 -m training.run")
    TutorialNet().load_state_dict(weights(output))


@pytest.mark.cuda
def test_cuda_run_uses_amp_and_writes_a_checkpoint(mnist_root, tmp_path):
    output = tmp_path / "gpu" / "m.safetensors"
    # No EMA: over this run's 62 steps a 0.999 average would still be mostly the untrained weights.
    args = run_args(mnist_root, output, "--epochs", "2", "--ema-decay", "0", samples=2000)
    args[args.index("--device") + 1] = "cuda"
    assert main(args) == 0
    metadata = read_metadata(output)
    assert metadata.hyperparameters["device"] == "cuda"
    assert metadata.hyperparameters["amp"] in {"torch.bfloat16", "torch.float16"}
    assert metadata.test_accuracy > 0.8


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--epochs", "3", "--stop-after", "1"], "python -m training.run --epochs 3"),
        (["--resume", "--stop-after=2", "--seed", "4"], "python -m training.run --seed 4"),
        (["--output", "my model.safetensors"], "python -m training.run --output 'my model.safetensors'"),
    ],
)
def test_recorded_command_leaves_out_flags_that_do_not_change_the_result(argv, expected):
    assert launch_command(argv, distributed=False, world_size=1) == expected
