"""app.gate: the features (order, values, the linear ones as rows over the maps), the gate's formula against
hand-computed numbers, the served version of it (folded into rows over the maps; cues given or MNIST-format), the
cue matrix, the metadata round trip (and through
a checkpoint file), the fit and the threshold choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from app.gate import (
    CUE_FEATURES,
    FEATURE_NAMES,
    NETWORK_FEATURES,
    DigitGate,
    GateError,
    channel_means,
    cue_features,
    cue_row,
    network_features,
    stack_cues,
)
from app.gate.features import MNIST_FORMAT_CUES, channel_mean_rows, cue_matrix
from app.gate.fit import build_parser
from app.gate.fitting import fit_gate, highest_safe_threshold
from app.preprocess.cues import CueNotes, Cues
from mnist_model import ModelMetadata, Net, load_checkpoint, save_checkpoint
from mnist_model.checkpoint import read_metadata, write_metadata
from mnist_model.head import Answer
from mnist_model.inference import InferenceNet

F = len(FEATURE_NAMES)
CUT = len(NETWORK_FEATURES)  # the cues follow the network's features
FIT_REQUIRED = ["--checkpoint", "c.safetensors", "--train", "t.npz", "--threshold", "h.npz"]


def random_gate(hidden: int = 4, seed: int = 0) -> DigitGate:
    rng = np.random.default_rng(seed)
    return DigitGate(
        mean=rng.normal(size=F),
        std=rng.uniform(0.5, 2.0, size=F),
        hidden_weights=rng.normal(size=(F, hidden)),
        hidden_bias=rng.normal(size=hidden),
        output_weights=rng.normal(size=hidden),
        output_bias=0.3,
        threshold=-0.2,
    )


def test_feature_names_put_fc1_then_the_channel_means_then_the_answer_summary_then_the_cues():
    assert len(FEATURE_NAMES) == 128 + 64 + 2 + 9
    assert FEATURE_NAMES[:2] == ("fc1_pre_0", "fc1_pre_1") and FEATURE_NAMES[127] == "fc1_pre_127"
    assert FEATURE_NAMES[128] == "conv_mean_0" and FEATURE_NAMES[191] == "conv_mean_63"
    assert FEATURE_NAMES[192:194] == ("max_probability", "energy")
    assert FEATURE_NAMES[194:] == CUE_FEATURES
    assert set(CUE_FEATURES) == {field.name for field in dataclasses.fields(Cues)}


@pytest.mark.parametrize(
    ("dtype", "layout"),
    [
        (torch.float32, torch.contiguous_format),
        (torch.float32, torch.channels_last),
        (torch.bfloat16, torch.channels_last),  # what the predictor hands over on a CPU with bf16
        (torch.float16, torch.contiguous_format),
    ],
)
def test_channel_means_and_network_features_values(dtype, layout):
    maps = torch.zeros(2, 64, 12, 12)
    maps[0, 3, 5, 7] = 6.0  # one strong response: mean 6 / 144
    maps[1, :, :6, :] = 2.0  # the top half of every channel: mean 1
    maps[1, 5, 11, 0] = 3.5  # one more value at the bottom-left: its channel's mean moves by 3.5 / 144
    means = channel_means(maps.to(dtype).contiguous(memory_format=layout))
    assert means.shape == (2, 64) and means.dtype == dtype
    pre = np.arange(-128, 128, dtype=np.float32).reshape(2, 128)  # negatives too: before fc1's ReLU
    top, energy = np.array([[0.75], [0.1]], np.float32), np.array([[2.5], [-1.0]], np.float32)
    features = network_features(pre, means.float().numpy(), top, energy)
    assert features.shape == (2, 194) and features.dtype == np.float32
    assert np.array_equal(features[:, :128], pre)
    means = features[:, 128:192]
    assert means[0, 3] == pytest.approx(6 / 144, rel=1e-2) and np.count_nonzero(means[0]) == 1
    assert means[1, 5] == pytest.approx(1 + 3.5 / 144, rel=1e-2) and np.allclose(np.delete(means[1], 5), 1.0)
    assert features[:, 192].tolist() == [0.75, pytest.approx(0.1)] and features[:, 193].tolist() == [2.5, -1.0]


def test_channel_mean_rows_give_the_channel_means():
    maps = torch.rand(3, 64, 12, 12, dtype=torch.float64)
    rows = channel_mean_rows(64, 9216)
    assert rows.shape == (64, 9216)
    assert np.allclose(maps.flatten(1).numpy() @ rows.T, channel_means(maps).numpy(), rtol=0, atol=1e-12)


def test_cue_features_follow_cue_features_order_with_booleans_as_numbers():
    cues = Cues(
        parts=3, dropped_ink=0.25, aspect=1.5, coverage=0.4, stroke_width=2.5, holes=2,
        inverted=False, touches_edge=True, mnist_format=False,
    )  # fmt: skip
    assert cue_features(cues) == [3.0, 0.25, 1.5, 0.4, 2.5, 2.0, 1.0, 0.0, 0.0]
    assert cue_matrix([cues, cues]).shape == (2, 9)


def test_an_mnist_format_upload_shows_the_gate_constant_cues_whatever_was_measured():
    measured = [CueNotes().complete(row) for row in ([1, 0.75, 0.33, 1.8, 0], [3, 2.5, 0.9, 4.0, 7])]
    assert all(cues.mnist_format for cues in measured)
    assert cue_features(measured[0]) == cue_features(measured[1]) == list(MNIST_FORMAT_CUES)
    assert MNIST_FORMAT_CUES == (0, 0, 0, 0, 0, 0, 0, 1, 1)  # passed through, light on dark; nothing measured


def test_scores_follow_the_formula_by_hand():
    # One hidden unit reads fc1_pre_0, another `parts`; everything else zero.
    weights = np.zeros((F, 2))
    weights[FEATURE_NAMES.index("fc1_pre_0"), 0] = 2.0
    weights[FEATURE_NAMES.index("parts"), 1] = -1.0
    mean, std = np.zeros(F), np.ones(F)
    mean[FEATURE_NAMES.index("parts")], std[FEATURE_NAMES.index("parts")] = 1.0, 0.5
    gate = DigitGate(mean, std, weights, np.array([0.5, 0.0]), np.array([1.0, 3.0]), output_bias=-1.0, threshold=0.0)
    x = np.zeros((2, F))
    x[0, 0], x[0, FEATURE_NAMES.index("parts")] = 1.0, 1.0  # h = (2 + .5, relu(-(1 - 1) / .5)) = (2.5, 0)
    x[1, 0], x[1, FEATURE_NAMES.index("parts")] = -1.0, 0.0  # h = (relu(-2 + .5), relu(-(0 - 1) / .5)) = (0, 2)
    assert gate.scores(x).tolist() == [2.5 * 1.0 - 1.0, 2.0 * 3.0 - 1.0]


def served_and_formula_scores(gate: DigitGate) -> tuple[int, list[np.ndarray]]:
    """(rows the served gate adds to fc1, [served, formula] scores with cues, [served, formula] MNIST-format) on
    random maps through a random `Net`: the served gate reads fc1's pre-activations and its rows off
    `InferenceNet.readout`, the rest from the head's answer and the cues, in float32."""
    torch.manual_seed(0)
    net = Net()
    maps = torch.rand(5, 64, 12, 12)
    served = gate.serving(channels=64, columns=9216)
    with torch.inference_mode():
        readouts = InferenceNet(net, extra_rows=served.readout_rows).readout(maps).numpy()
        pre = net.fc1(maps.flatten(1)).double().numpy()
    assert np.allclose(readouts[:, :128], pre, atol=1e-4)  # fc1's pre-activations come first
    rng = np.random.default_rng(1)
    answer = Answer(
        probabilities=np.full((5, 10), 0.1, np.float32),
        max_probability=rng.uniform(0.1, 1.0, (5, 1)).astype(np.float32),
        energy=rng.normal(size=(5, 1)).astype(np.float32),
    )
    cues = rng.normal(size=(5, 9)).astype(np.float32)
    x = np.concatenate([pre, channel_means(maps).double().numpy(), answer.max_probability, answer.energy, cues], 1)
    with_cues = [served.scores(readouts, answer, cues), gate.scores(x)]
    x[:, CUT:] = MNIST_FORMAT_CUES  # None stands for these constant cues (the bias that folds them in)
    mnist_format = [served.scores(readouts, answer, None), gate.scores(x)]
    return len(served.readout_rows), [*with_cues, *mnist_format]


def test_the_served_scores_equal_the_formula_with_cues_and_for_mnist_format_uploads():
    rows, (served, formula, served_mnist, formula_mnist) = served_and_formula_scores(random_gate(hidden=8))
    assert rows == 8  # the channel means' block of an 8-unit layer has rank 8: 8 rows, not 64
    assert served.dtype == np.float32 and np.allclose(served, formula, rtol=1e-4, atol=1e-3)
    assert np.allclose(served_mnist, formula_mnist, rtol=1e-4, atol=1e-3)


def test_a_gate_fitted_on_few_mean_components_is_served_with_that_many_rows():
    x, is_digit, _ = synthetic(600, seed=0)
    means = slice(128, 192)
    x[:, means] += np.where(is_digit, 0.5, -0.5)[:, None]  # the means carry signal too
    gate = fit_gate(x, is_digit, hidden=24, max_iter=60, components=(means, 5))
    assert gate.hidden_weights.shape == (F, 24)  # over the original features, as the checkpoint stores it
    assert np.linalg.matrix_rank(gate.hidden_weights[means], tol=1e-8) == 5
    rows, (served, formula, served_mnist, formula_mnist) = served_and_formula_scores(gate)
    assert rows == 5
    assert np.allclose(served, formula, rtol=1e-4, atol=1e-3) and np.allclose(
        served_mnist, formula_mnist, rtol=1e-4, atol=1e-3
    )


def test_stack_cues_fills_mnist_format_blocks_with_their_constant_cues():
    measured = np.arange(18, dtype=np.float32).reshape(2, 9)
    assert stack_cues([(None, 3), (None, 1)]) is None  # all MNIST-format: the predictor's cheaper path
    stacked = stack_cues([(None, 2), (measured, 2), (None, 1)])
    assert stacked is not None and stacked.shape == (5, 9) and stacked.dtype == np.float32
    assert np.array_equal(stacked[[0, 1, 4]], np.tile(MNIST_FORMAT_CUES, (3, 1)))
    assert np.array_equal(stacked[2:4], measured)


def test_cue_row_is_none_for_an_mnist_format_upload_and_the_features_otherwise():
    mnist = CueNotes().complete([1, 0.75, 0.33, 1.8, 0])
    assert cue_row(mnist) is None
    drawn = dataclasses.replace(mnist, parts=2, holes=1, mnist_format=False, inverted=False)
    row = cue_row(drawn)
    assert row is not None and row.dtype == np.float32 and row.tolist() == pytest.approx(cue_features(drawn))


def test_metadata_round_trip_and_refusals():
    gate = dataclasses.replace(random_gate(), record={"fitted_on": {"train": "x.npz"}})
    back = DigitGate.from_metadata(gate.to_metadata())
    assert back is not None and back.record == gate.record and back.threshold == gate.threshold
    for name in ("mean", "std", "hidden_weights", "hidden_bias", "output_weights"):
        assert np.array_equal(getattr(back, name), getattr(gate, name))
    assert DigitGate.from_metadata({}) is None
    with pytest.raises(GateError, match="other features"):
        DigitGate.from_metadata(gate.to_metadata() | {"features": ["a", "b"]})
    with pytest.raises(GateError, match="incomplete"):
        DigitGate.from_metadata({k: v for k, v in gate.to_metadata().items() if k != "threshold"})
    with pytest.raises(GateError, match="finite"):
        DigitGate.from_metadata(gate.to_metadata() | {"mean": [float("nan")] * F})


def test_write_metadata_keeps_the_tensors_and_the_tutorial_net_still_loads_them(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, Net(), ModelMetadata(command="test"))
    before = load_file(str(path))
    gate = random_gate()
    write_metadata(path, dataclasses.replace(read_metadata(path), digit_gate=gate.to_metadata()))
    after = load_file(str(path))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    model, metadata = load_checkpoint(path)
    assert metadata.command == "test"
    assert DigitGate.from_metadata(metadata.digit_gate).threshold == gate.threshold  # type: ignore[union-attr]


def synthetic(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits near one corner of two informative features, non-digits near the other, the rest noise; half
    the digits in group `a` (noisier), half in `b`."""
    rng = np.random.default_rng(seed)
    is_digit = rng.random(count) < 0.6
    x = rng.normal(size=(count, F))
    x[:, 0] += np.where(is_digit, 2.0, -2.0)
    x[:, CUT] += np.where(is_digit, -1.5, 1.5)  # the first cue
    group = np.where(~is_digit, "non", np.where(rng.random(count) < 0.5, "a", "b"))
    x[group == "a", 0] += rng.normal(scale=1.0, size=int((group == "a").sum()))
    return x, is_digit, group


def test_fit_separates_a_synthetic_problem_and_is_deterministic():
    x, is_digit, _ = synthetic(1500, seed=0)
    gate = fit_gate(x, is_digit, hidden=8, max_iter=100)
    held_x, held_is_digit, _ = synthetic(1000, seed=1)
    accuracy = ((gate.scores(held_x) >= 0) == held_is_digit).mean()
    assert accuracy > 0.95
    again = fit_gate(x, is_digit, hidden=8, max_iter=100)
    assert np.array_equal(again.hidden_weights, gate.hidden_weights) and again.output_bias == gate.output_bias


def test_weights_make_the_fit_care_more_about_a_hard_group_of_non_digits():
    rng = np.random.default_rng(3)
    digits, easy, hard = 600, 500, 100  # the hard non-digits overlap the digits, the easy ones are far away
    x = np.zeros((digits + easy + hard, F))
    x[:, 0] = np.concatenate([rng.normal(2.0, 1.0, digits), rng.normal(-4.0, 1.0, easy), rng.normal(1.0, 1.0, hard)])
    is_digit = np.arange(len(x)) < digits
    hard_rows = np.arange(len(x)) >= digits + easy
    plain = fit_gate(x, is_digit, hidden=4, max_iter=100)
    stressed = fit_gate(x, is_digit, hidden=4, max_iter=100, weights=np.where(hard_rows, 5.0, 1.0))
    flagged = [float((gate.scores(x[hard_rows]) < 0).mean()) for gate in (plain, stressed)]
    assert flagged[1] > flagged[0] + 0.2, flagged  # the boundary moved toward the digits to catch the hard ones
    with pytest.raises(ValueError, match="positive weight"):
        fit_gate(x, is_digit, weights=np.zeros(len(x)))


def test_fit_command_takes_group_weights_and_refuses_bad_ones(capsys):
    required = FIT_REQUIRED
    assert build_parser().parse_args(required).weight == ["letters=2", "symbols=2"]  # the default, parsed by `fit`
    assert build_parser().parse_args([*required, "--weight", "letters=3", "shapes=0.5"]).weight == [
        ("letters", 3.0),
        ("shapes", 0.5),
    ]
    assert build_parser().parse_args([*required, "--weight"]).weight == []  # all equal
    for bad in ("letters", "letters=0", "=2", "letters=x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*required, "--weight", bad])
        assert "expected GROUP=W" in capsys.readouterr().err


def test_threshold_is_the_highest_that_keeps_every_groups_false_flags_in_budget():
    x, is_digit, group = synthetic(3000, seed=2)
    gate = fit_gate(x, is_digit, hidden=8, max_iter=100)
    scores = gate.scores(x)
    budgets = {"a": 0.02, "b": 0.005}
    digit_scores = {name: scores[group == name] for name in budgets}
    threshold = highest_safe_threshold(digit_scores, budgets)
    for name, budget in budgets.items():
        assert (digit_scores[name] < threshold).mean() <= budget
    higher = np.nextafter(threshold, np.inf)
    assert any((digit_scores[name] < higher).mean() > budget for name, budget in budgets.items())
    assert (scores[~is_digit] < threshold).mean() > 0.9  # and most non-digits are flagged at it


def test_threshold_with_a_zero_budget_flags_no_digit():
    assert highest_safe_threshold({"a": np.array([3.0, 1.0, 2.0])}, {"a": 0.0}) == 1.0
    with pytest.raises(ValueError):
        highest_safe_threshold({"a": np.array([])}, {"a": 0.1})


def test_fit_command_sees_16_mean_components_by_default_and_refuses_fewer_than_one(capsys):
    required = FIT_REQUIRED
    assert build_parser().parse_args(required).mean_components == 16
    assert build_parser().parse_args([*required, "--mean-components", "64"]).mean_components == 64
    for bad in ("0", "-3", "x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*required, "--mean-components", bad])
        assert "expected a whole number ≥ 1" in capsys.readouterr().err
