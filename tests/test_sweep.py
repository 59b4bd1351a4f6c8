"""training.sweep: recipes × seeds planned, run, continued and ranked on validation, never on the test set."""

import logging
from pathlib import Path

import pytest

from mnist_model import Net
from mnist_model.checkpoint import ModelMetadata, read_metadata, save_checkpoint
from training.state import state_path_for
from training.sweep import Outcome, Run, epochs_done, main, parse_args, parse_recipe, plan, recorded, report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shipped=", ("shipped", [])),
        ("sam=--sam-rho 0.05", ("sam", ["--sam-rho", "0.05"])),
        ("r.1_a-b=--rendered 'a b.npz' c.npz", ("r.1_a-b", ["--rendered", "a b.npz", "c.npz"])),
    ],
)
def test_a_recipe_is_a_name_and_shell_split_flags(text, expected):
    assert parse_recipe(text) == expected


@pytest.mark.parametrize("text", ["no-equals", "=--lr 1", "bad/name=--lr 1", "ok=--rendered 'unclosed"])
def test_a_malformed_recipe_is_refused(text):
    with pytest.raises(ValueError, match="--recipe"):
        parse_recipe(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "a=--seed 3"], "--recipe a set --seed"),
        (["--recipe", "a=--resume"], "--recipe a set --resume"),
        (["--recipe", "a=--lr 1e-3 --out b.safetensors"], "--recipe a set --output"),  # argparse takes "--out"
        (["--", "--epochs", "2", "--output=x.safetensors"], "the shared flags set --output"),
        (["--recipe", "a=", "--recipe", "a=--lr 1e-3"], "names must differ"),
        (["--recipe", "a/b="], "NAME=FLAGS"),
        (["--parallel", "0"], "--parallel must be at least 1"),
    ],
)
def test_flags_the_sweep_sets_itself_and_bad_values_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_without_recipes_one_default_recipe_runs_the_shared_flags():
    args, shared = parse_args(["--seeds", "4", "--", "--epochs", "3"])
    assert (args.recipes, args.seeds, shared) == ([("default", [])], [4], ["--epochs", "3"])


def test_every_recipe_runs_at_every_seed_in_a_folder_of_its_own(tmp_path):
    runs = plan([("a", ["--lr", "1e-3"]), ("b", ["--num-threads", "4"])], [1, 2], ["--epochs", "3"], tmp_path, 2)

    assert [(run.recipe, run.seed) for run in runs] == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    first = tmp_path / "a-seed1" / "mnist_cnn.safetensors"
    assert runs[0].output == first
    assert runs[0].log_path == tmp_path / "a-seed1" / "train.log"
    # shared flags, then the recipe's, then the threads where no flag set them and no bars, then the sweep's own
    flags = ("--epochs", "3", "--lr", "1e-3", "--num-threads", "2", "--no-progress")
    assert runs[0].argv == (*flags, "--seed", "1", "--output", str(first))
    assert runs[3].argv[:5] == ("--epochs", "3", "--num-threads", "4", "--no-progress")
    assert runs[3].argv.count("--num-threads") == 1
    assert runs[0].command == f"python -m training.run {' '.join(flags)} --seed 1 --output {first}"


def outcome(recipe: str, seed: int, validation: float = 0.0, test: float = 0.0, status: str = "trained") -> Outcome:
    run = Run(recipe, seed, (), Path(f"runs/{recipe}-seed{seed}/mnist_cnn.safetensors"))
    return Outcome(run, validation, test, status)


def test_recipes_are_ranked_by_their_seeds_mean_validation_not_by_test_or_one_lucky_seed():
    table = report(
        [
            outcome("lucky", 1, 0.9970, 0.9950),  # the best single run, but its other seed is poor
            outcome("lucky", 2, 0.9930, 0.9950),
            outcome("steady", 1, 0.9958, 0.9940),
            outcome("steady", 2, 0.9956, 0.9944),
            outcome("broken", 1, 0.9990, 0.9990),
            outcome("broken", 2, status="failed"),
        ]
    ).splitlines()

    assert table[2] == "| steady | 2 | 99.57 % | 99.56 % – 99.58 % | 99.42 % |"
    assert table[3] == "| lucky | 2 | 99.50 % | 99.30 % – 99.70 % | 99.50 % |"
    assert table[4] == "| broken | 2 | 1 failed | – | – |"  # listed, never ranked on the seed that trained
    assert "| lucky-seed1 | 99.70 % | 99.50 % | runs/lucky-seed1/mnist_cnn.safetensors |" in table
    assert "| broken-seed2 | failed | – | runs/broken-seed2/mnist_cnn.safetensors |" in table


def write(run: Run, command: str, validation: dict[str, object], test: float | None = 0.98) -> None:
    run.output.parent.mkdir(parents=True)
    metadata = ModelMetadata(command=command, validation=validation, test_accuracy=test)
    save_checkpoint(run.output, Net(), metadata)


@pytest.mark.parametrize(
    ("command", "validation", "test", "found"),
    [
        (None, {"count": 200, "accuracy": 0.99}, 0.98, True),
        ("python -m training.run --seed 1 --epochs 5", {"count": 200, "accuracy": 0.99}, 0.98, False),
        (None, {}, 0.98, False),  # trained without held-out images: nothing to rank it on
        (None, {"count": 200, "accuracy": 0.99}, None, False),
    ],
)
def test_a_checkpoint_counts_as_the_run_only_if_it_records_exactly_its_command(
    tmp_path, command, validation, test, found
):
    run = plan([("a", [])], [1], ["--epochs", "1"], tmp_path, 1)[0]
    write(run, command or run.command, validation, test)
    assert (recorded(run) == Outcome(run, 0.99, 0.98)) is found


def test_no_checkpoint_or_a_foreign_file_is_not_a_trained_run(tmp_path):
    run = plan([("a", [])], [1], [], tmp_path, 1)[0]
    assert recorded(run) is None
    run.output.parent.mkdir()
    run.output.write_bytes(b"not a checkpoint")
    assert recorded(run) is None


def test_a_recipe_holding_out_no_validation_images_is_refused_before_any_run(tmp_path, caplog):
    assert main(["--output-dir", str(tmp_path), "--", "--val-samples", "0", "--epochs", "1"]) == 2
    assert "--val-samples 0" in caplog.text
    assert not list(tmp_path.iterdir())


def test_flags_training_refuses_stop_the_sweep_before_any_run_naming_the_recipe(tmp_path, caplog, capsys):
    argv = ["--output-dir", str(tmp_path), "--recipe", "good=", "--recipe", "typo=--lr -1", "--", "--epochs", "1"]
    assert main(argv) == 2
    assert "--lr must be a positive number" in capsys.readouterr().err
    assert "typo-seed1: training.run refuses its flags" in caplog.text
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_sweep_cut_short_continues_and_a_finished_one_is_not_trained_again(mnist_root, tmp_path, caplog):
    shared = ["--data-dir", str(mnist_root), "--max-train-samples", "128", "--val-samples", "100"]
    shared += ["--batch-size", "64", "--no-progress", "--device", "cpu", "--epochs", "2"]
    sweep = ["--output-dir", str(tmp_path), "--seeds", "3", "--parallel", "2", "--threads", "1"]
    sweep += ["--recipe", "plain=", "--recipe", f"broken=--init-from {tmp_path / 'missing.safetensors'}"]
    plain = tmp_path / "plain-seed3" / "mnist_cnn.safetensors"

    # stopped after the first of two epochs: plain is unfinished, broken fails; neither is ranked
    assert main([*sweep, "--", *shared, "--stop-after", "1"]) == 1
    assert not plain.exists() and state_path_for(plain).exists()
    assert "| plain | 1 | 1 unfinished | – | – |" in (tmp_path / "sweep.md").read_text()
    assert "missing.safetensors" in (tmp_path / "broken-seed3" / "train.log").read_text()

    # the same sweep without the stop continues plain from its first epoch
    assert main([*sweep, "--", *shared]) == 1
    assert "resuming after epoch 1" in (tmp_path / "plain-seed3" / "train.log").read_text()
    metadata = read_metadata(plain)
    assert "--no-progress" in shared  # given, so not added again
    expected = f"python -m training.run {' '.join(shared)} --num-threads 1 --seed 3 --output {plain}"
    assert (metadata.epochs, metadata.seed, metadata.command) == (2, 3, expected)
    validation = f"{100 * metadata.validation['accuracy']:.2f} %"
    assert (
        f"| plain-seed3 | {validation} | {100 * metadata.test_accuracy:.2f} % |" in (tmp_path / "sweep.md").read_text()
    )

    # once trained, a run is read back, not trained again
    written = plain.stat().st_mtime_ns
    caplog.clear()
    caplog.set_level(logging.INFO, logger="training.sweep")
    assert main([*sweep, "--", *shared]) == 1
    assert "plain-seed3: already trained" in caplog.text
    assert plain.stat().st_mtime_ns == written


def test_progress_counts_the_last_epoch_a_runs_log_reports(tmp_path):
    run = plan([("a", [])], [1], [], tmp_path, 1)[0]
    assert epochs_done(run) == 0  # not started: no log
    run.log_path.parent.mkdir()
    run.log_path.write_text("2026-12-03 21:08:38 INFO training: config: {'epochs': 3}\n")
    assert epochs_done(run) == 0
    run.log_path.write_text(
        "2026-12-03 21:09:01 INFO training: epoch 1/3  train loss 0.7853  val accuracy 85.84%\n"
        "2026-12-03 21:09:27 INFO training: epoch 2/3  train loss 0.2496  val accuracy 91.96%\n"
        "2026-12-03 21:09:28 INFO training: stopped after epoch 2 of 3 (--stop-after); continue with --resume\n"
        "2026-12-03 21:10:02 INFO training: resuming after epoch 2 from a-seed1/mnist_cnn.state.pt\n"
    )
    assert epochs_done(run) == 2
    with run.log_path.open("a") as log:
        log.write("2026-12-03 21:10:30 INFO training: epoch 3/3  train loss 0.1  val accuracy 95.00%\n")
    assert epochs_done(run) == 3
