"""Predictor: loads a checkpoint safely on the chosen device; its probabilities match the network."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from app import predictor as predictor_module
from app.config import Settings
from app.predictor import Predictor
from mnist_model import MNIST_MEAN, MNIST_STD, CheckpointError, ModelMetadata, Net, load_checkpoint, save_checkpoint


def random_pixels(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def test_probabilities_are_the_networks_softmax_of_the_normalised_pixels(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, Net(), ModelMetadata(command="test", mean=0.2, std=0.4))
    predictor = Predictor(Settings(model_path=checkpoint, device="cpu", precision="float32", max_batch_size=4))
    predictor.warm_up()
    pixels = random_pixels(3)
    probabilities = predictor.predict(pixels.copy())
    net, _ = load_checkpoint(checkpoint)
    with torch.inference_mode():
        expected = net(((torch.from_numpy(pixels).float() / 255 - 0.2) / 0.4).unsqueeze(1)).exp()
    assert probabilities.shape == (3, 10) and probabilities.dtype == torch.float32
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=1e-4)


def test_probabilities_are_calibrated_by_the_checkpoints_temperature(tmp_path):
    torch.manual_seed(3)
    net = Net().eval()
    path = tmp_path / "calibrated.safetensors"
    save_checkpoint(path, net, ModelMetadata(temperature=2.5))
    predictor = Predictor(Settings(model_path=path, device="cpu", precision="float32", max_batch_size=4))
    pixels = random_pixels(4, seed=3)
    # The logits before log_softmax, taken from the last layer, then softmax(z / T) written out by hand.
    logits = []
    net.fc2.register_forward_hook(lambda module, inputs, output: logits.append(output.detach()))
    with torch.inference_mode():
        net(((torch.from_numpy(pixels).float() / 255 - MNIST_MEAN) / MNIST_STD).unsqueeze(1))
    scaled = torch.exp(logits[0].double() / 2.5)
    expected = (scaled / scaled.sum(dim=1, keepdim=True)).float()
    probabilities = predictor.predict(pixels)
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=1e-4)
    uncalibrated = torch.softmax(logits[0], dim=1)
    assert (probabilities.max(dim=1).values < uncalibrated.max(dim=1).values).all()  # T > 1 softens
    assert torch.equal(probabilities.argmax(dim=1), uncalibrated.argmax(dim=1))  # and never changes the digit


def test_name_version_and_description(untrained_checkpoint):
    predictor = Predictor(Settings(model_path=untrained_checkpoint, device="cpu", precision="float16"))
    assert predictor.name == "pytorch-examples-mnist-cnn"
    assert predictor.version == hashlib.sha256(untrained_checkpoint.read_bytes()).hexdigest()[:12]
    description = predictor.describe()
    assert description["device"] == "cpu"
    assert description["precision"] == "float32"  # float16 is for CUDA only
    assert description["checkpoint"] == str(untrained_checkpoint.resolve())


def test_bfloat16_on_cpu_agrees_with_float32(untrained_checkpoint):
    exact = Predictor(Settings(model_path=untrained_checkpoint, device="cpu", precision="float32", max_batch_size=8))
    fast = Predictor(Settings(model_path=untrained_checkpoint, device="cpu", precision="bfloat16", max_batch_size=8))
    assert fast.describe()["precision"] == "bfloat16"
    pixels = random_pixels(8)
    probabilities = fast.predict(pixels.copy())
    assert probabilities.dtype == torch.float32
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(8))
    torch.testing.assert_close(probabilities, exact.predict(pixels.copy()), atol=2e-2, rtol=0)


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointError, match="MNIST_SERVE_MODEL_PATH"):
        Predictor(Settings(model_path=tmp_path / "absent.safetensors", device="cpu"))


def test_corrupt_checkpoint_is_refused(tmp_path, untrained_checkpoint):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(untrained_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        Predictor(Settings(model_path=truncated, device="cpu"))


class _Exploit:
    def __reduce__(self):
        return (open, (str(_Exploit.marker), "w"))


def test_a_pickle_is_never_unpickled(tmp_path):
    _Exploit.marker = tmp_path / "pwned"
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(pickle.dumps({"weights": _Exploit()}))
    with pytest.raises(CheckpointError):
        Predictor(Settings(model_path=checkpoint, device="cpu"))
    assert not _Exploit.marker.exists()


def test_cuda_without_a_gpu_is_an_error_naming_the_setting(monkeypatch, untrained_checkpoint):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on machines with a GPU
    with pytest.raises(RuntimeError, match="MNIST_SERVE_DEVICE=cuda asks for a CUDA GPU.*use MNIST_SERVE_DEVICE=cpu"):
        Predictor(Settings(model_path=untrained_checkpoint, device="cuda"))


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_cuda_precisions_agree_with_float32_on_cpu(untrained_checkpoint, precision):
    cpu = Predictor(Settings(model_path=untrained_checkpoint, device="cpu", precision="float32", max_batch_size=8))
    gpu = Predictor(Settings(model_path=untrained_checkpoint, device="cuda", precision=precision, max_batch_size=8))
    gpu.warm_up()
    pixels = random_pixels(8)
    on_gpu = gpu.predict(pixels.copy())
    assert on_gpu.device.type == "cpu" and on_gpu.dtype == torch.float32
    assert gpu.describe()["precision"] == precision
    torch.testing.assert_close(on_gpu.sum(dim=1), torch.ones(8))
    atol = 2e-2 if precision != "float32" else 1e-4
    torch.testing.assert_close(on_gpu, cpu.predict(pixels.copy()), atol=atol, rtol=0)


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_is_bfloat16_exactly_where_it_is_native(monkeypatch, untrained_checkpoint, native, expected):
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: native)
    predictor = Predictor(Settings(model_path=untrained_checkpoint, device="cpu"))
    assert Settings().precision == "auto"
    assert predictor.describe()["precision"] == expected


def test_torch_threads_default_to_the_cpus_available(untrained_checkpoint, monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(predictor_module, "available_cpus", lambda: 1)
        assert Predictor(Settings(model_path=untrained_checkpoint, device="cpu")).describe()["num_threads"] == 1
        described = Predictor(Settings(model_path=untrained_checkpoint, device="cpu", num_threads=2)).describe()
        assert described["num_threads"] == 2
    finally:
        torch.set_num_threads(before)
