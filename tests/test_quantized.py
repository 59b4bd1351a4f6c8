"""int8 convolutions (mnist_model.quantized) and the precision the service picks (app.predictor.resolve_precision):
the kernels compute what the quantized arithmetic says, on real digits the answers stay the float32 network's, and
`auto` takes int8 only where it can run."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app import predictor as predictor_module
from app.config import Settings
from app.predictor import Predictor, resolve_precision
from mnist_model import ModelMetadata, load_checkpoint, normalize
from mnist_model.checkpoint import read_metadata, write_metadata
from mnist_model.quantized import (
    LEVELS,
    WEIGHT_LEVELS,
    Int8Conv,
    Int8Ranges,
    QuantizationError,
    activation_maxima,
    int8_available,
    max_pool_uint8,
)
from training.data import load_split

needs_int8 = pytest.mark.skipif(not int8_available(), reason="this torch build has no oneDNN int8 convolution")


@pytest.fixture(scope="module")
def test_digits(mnist_root):
    """The first 2,000 MNIST test digits (uint8) and their labels."""
    split = load_split(mnist_root, train=False)
    return split.images[:2000].numpy().copy(), split.labels[:2000].numpy()


@pytest.fixture(scope="module")
def int8_checkpoint(shipped_checkpoint, mnist_root, tmp_path_factory):
    """The shipped checkpoint with ranges measured here on 5,000 training images by plain float32 operations."""
    net, metadata = load_checkpoint(shipped_checkpoint)
    images = normalize(load_split(mnist_root, train=True).images[:5000], metadata.mean, metadata.std)
    with torch.no_grad():
        first = F.relu(F.conv2d(images.unsqueeze(1), net.conv1.weight, net.conv1.bias))
        second = F.relu(F.conv2d(first, net.conv2.weight, net.conv2.bias))
    path = tmp_path_factory.mktemp("int8") / "int8.safetensors"
    path.write_bytes(shipped_checkpoint.read_bytes())
    record = {"conv1_max": float(first.max()), "conv2_max": float(second.max()), "images": 5000}
    write_metadata(path, dataclasses.replace(metadata, int8=record))
    return path


def test_ranges_come_from_the_checkpoints_record_or_say_how_to_make_them():
    assert Int8Ranges.from_metadata({"conv1_max": 1.5, "conv2_max": 2}) == Int8Ranges(1.5, 2.0)
    with pytest.raises(QuantizationError, match="python -m training.int8"):
        Int8Ranges.from_metadata({})
    for bad in (
        {"conv1_max": 1.5},
        {"conv1_max": 0, "conv2_max": 2},
        {"conv1_max": "1", "conv2_max": 2},
        {"conv1_max": float("nan"), "conv2_max": 2},
        {"conv1_max": True, "conv2_max": 2},
        {"conv1_max": float("inf"), "conv2_max": 2},
    ):
        with pytest.raises(QuantizationError, match="positive numbers"):
            Int8Ranges.from_metadata(bad)


def test_activation_maxima_are_the_largest_relu_outputs_in_any_chunking(untrained_checkpoint):
    net, _ = load_checkpoint(untrained_checkpoint)
    images = torch.randn(37, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first = net.conv1(images).clamp_min(0)
        second = net.conv2(first).clamp_min(0)
    expected = Int8Ranges(float(first.max()), float(second.max()))
    assert activation_maxima(net, images) == expected
    assert activation_maxima(net, images, chunk=5) == expected


@pytest.mark.parametrize("channels_last", [True, False])
def test_uint8_pool_is_torchs_max_pool(channels_last):
    maps = torch.randint(0, 256, (3, 5, 8, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    if channels_last:
        maps = maps.contiguous(memory_format=torch.channels_last)
    pooled = max_pool_uint8(maps)
    assert pooled.dtype == torch.uint8 and pooled.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(pooled.float(), F.max_pool2d(maps.float(), 2))


def _requantized(values: torch.Tensor, scale: float) -> torch.Tensor:
    """What an int8 ReLU convolution should write for float results `values`: round(relu / scale), ≤ LEVELS."""
    return torch.round(values.clamp_min(0) / scale).clamp(0, LEVELS)


@needs_int8
def test_each_convolution_computes_its_quantized_arithmetic_without_saturating(shipped_checkpoint, test_digits):
    """oneDNN's result against the same sums in float64: the weights as their integers times their scales, the
    inputs as their levels. CPUs without VNNI multiply in 16-bit pairs that could saturate; a kernel that did would
    be off by many levels somewhere on these 500 digits, rounding only by one."""
    net, metadata = load_checkpoint(shipped_checkpoint)
    pixels = torch.from_numpy(test_digits[0][:500]).unsqueeze(1)
    scale, zero = 1 / (255 * metadata.std), round(255 * metadata.mean)
    conv1 = Int8Conv.of(net.conv1, scale, zero, output_max=2.0)
    conv2 = Int8Conv.of(net.conv2, conv1.output_scale, 0, output_max=2.5)
    first = conv1(pixels.contiguous(memory_format=torch.channels_last))
    second = conv2(first)
    for conv, torch_conv, inputs, zero_point, output in (
        (conv1, net.conv1, pixels, zero, first),
        (conv2, net.conv2, first, 0, second),
    ):
        weight = torch_conv.weight.detach().double()
        steps = weight.abs().amax(dim=(1, 2, 3)) / WEIGHT_LEVELS
        integers = torch.round(weight / steps[:, None, None, None])
        values = (inputs.double() - zero_point) * conv.input_scale
        expected = F.conv2d(values, integers * steps[:, None, None, None], conv.bias.double())
        difference = (output.double() - _requantized(expected, conv.output_scale)).abs()
        assert difference.max() <= 1, f"off by {difference.max()} levels"
        assert (difference == 0).float().mean() > 0.99


@needs_int8
def test_int8_reads_real_digits_as_float32_does(int8_checkpoint, test_digits):
    pixels, labels = test_digits
    exact = Predictor(Settings(model_path=int8_checkpoint, device="cpu", precision="float32", max_batch_size=500))
    fast = Predictor(Settings(model_path=int8_checkpoint, device="cpu", precision="int8", max_batch_size=500))
    assert fast.describe()["precision"] == "int8"
    rows = [
        (exact.predict(pixels[i : i + 500]).numpy(), fast.predict(pixels[i : i + 500]).numpy())
        for i in range(0, len(pixels), 500)
    ]
    float_rows, int8_rows = (np.concatenate(part) for part in zip(*rows, strict=True))
    float_answers, int8_answers = float_rows[:, :10].argmax(1), int8_rows[:, :10].argmax(1)
    assert (float_answers != int8_answers).sum() <= 4  # of 2,000
    assert abs((int8_answers == labels).mean() - (float_answers == labels).mean()) <= 0.002
    assert np.abs(int8_rows[:, :10] - float_rows[:, :10]).mean() < 1e-3
    np.testing.assert_allclose(int8_rows[:, :10].sum(axis=1), 1.0, atol=1e-5)
    # the gate's score too, from fc1 and its own rows over the int8 maps: the same verdict on nearly every digit
    threshold = fast.digit_gate.threshold
    assert ((float_rows[:, 10] >= threshold) != (int8_rows[:, 10] >= threshold)).sum() <= 4


def _metadata(int8: dict[str, object]) -> ModelMetadata:
    return ModelMetadata(int8=int8)


RANGES = {"conv1_max": 1.9, "conv2_max": 2.8}


@pytest.mark.parametrize(
    ("native", "int8", "expected"),
    [(True, RANGES, "bfloat16"), (False, RANGES, "int8" if int8_available() else "float32"), (False, {}, "float32")],
)
def test_auto_takes_bf16_where_native_else_int8_where_the_checkpoint_allows(monkeypatch, native, int8, expected):
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: native)
    assert resolve_precision("auto", torch.device("cpu"), _metadata(int8)) == expected


def test_asked_for_int8_where_it_cannot_run_the_service_logs_why_and_runs_float32(caplog):
    with caplog.at_level(logging.WARNING, logger="app.predictor"):
        assert resolve_precision("int8", torch.device("cpu"), _metadata({})) == "float32"
        assert resolve_precision("int8", torch.device("cuda"), _metadata(RANGES)) == "float32"
    assert "python -m training.int8" in caplog.messages[0]
    assert "CPUs only" in caplog.messages[1]


@needs_int8
def test_a_checkpoint_written_without_ranges_serves_float32_under_auto_and_says_how_to_record_them(
    monkeypatch, untrained_checkpoint, caplog
):
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: False)
    assert read_metadata(untrained_checkpoint).int8 == {}
    with caplog.at_level(logging.INFO, logger="app.predictor"):
        predictor = Predictor(Settings(model_path=untrained_checkpoint, device="cpu"))
    assert predictor.describe()["precision"] == "float32"
    [note] = [message for message in caplog.messages if "not int8" in message]
    assert "python -m training.int8" in note


@needs_int8
def test_int8_maps_are_the_float32_maps_to_within_rounding(int8_checkpoint, test_digits):
    """Pooled conv2 maps of real digits, int8 against float32: a few of conv2's levels apart at most, and no bias
    (MNIST's mean is a third of a gray level off the input's integer zero point; left out of conv1's bias, that
    third would lower the maps by ~0.07 of a level on average)."""
    exact = Predictor(Settings(model_path=int8_checkpoint, device="cpu", precision="float32"))
    fast = Predictor(Settings(model_path=int8_checkpoint, device="cpu", precision="int8"))
    pixels = test_digits[0][:1000]
    with torch.inference_mode():
        reference, maps = exact._conv_maps(pixels), fast._conv_maps(pixels)
    assert maps.shape == reference.shape == (1000, 64, 12, 12) and maps.dtype == torch.float32
    assert maps.is_contiguous(memory_format=torch.channels_last)
    top = read_metadata(int8_checkpoint).int8["conv2_max"]
    errors = (maps - reference) / (top / LEVELS)
    inside = reference <= top  # the recorded maximum is the top level: anything above it is clipped there
    assert errors[inside].abs().max() <= 8
    assert torch.allclose(maps[~inside], torch.tensor(top), atol=1e-5) and (~inside).float().mean() < 1e-4
    assert abs(float(errors[reference > 0.05].mean())) < 0.04
