"""mnist_model.device: one grammar and one set of rules for --device and MNIST_SERVE_DEVICE.

The hardware is faked (torch.cuda's answers are patched), so every rule is checked on any machine, GPU or not.
"""

import pytest
import torch

from mnist_model.device import DeviceError, parse_device, resolve_device


@pytest.fixture
def gpus(monkeypatch):
    """Make torch report `count` CUDA GPUs (0 = none)."""

    def fake(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return fake


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda:0"), (" CUDA:12 ", "cuda:12")],
)
def test_accepted_forms_are_trimmed_and_lower_cased(text, parsed):
    assert parse_device(text) == parsed


@pytest.mark.parametrize("text", ["tpu", "", "cuda:", "cuda:x", "cuda:-1", "cuda:1.0", "cuda:²", "cpu:0", "gpu"])
def test_malformed_devices_list_the_accepted_forms(text):
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        parse_device(text)


def test_mps_is_refused_with_what_to_use_instead():
    with pytest.raises(ValueError, match="mps is not supported here; use cpu"):
        parse_device("mps")


def test_without_a_gpu_auto_and_cpu_mean_the_cpu(gpus):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU", local_rank=3) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_without_a_gpu_asking_for_cuda_names_the_setting_and_the_fix(gpus, name):
    gpus(0)
    message = f"--device={name} asks for a CUDA GPU, but torch sees none: use --device=cpu or auto"
    with pytest.raises(DeviceError, match=message):
        resolve_device(name, setting="--device")


def test_auto_and_cuda_pick_the_gpu_of_the_local_rank(gpus):
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # more processes than GPUs: wrap
    assert resolve_device("auto", local_rank=2) == torch.device("cuda", 0)


def test_an_explicit_index_is_kept_and_checked(gpus):
    gpus(2)
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="MNIST_SERVE_DEVICE=cuda:2: this machine has 2 CUDA GPU"):
        resolve_device("cuda:2", setting="MNIST_SERVE_DEVICE")


def test_resolving_a_malformed_name_is_a_value_error(gpus):
    gpus(1)
    with pytest.raises(ValueError, match="'tpu' is not a device"):
        resolve_device("tpu")
