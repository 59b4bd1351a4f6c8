"""mnist_model.hardware: one answer to "is bf16 native here", checked against what the OS and the driver report."""

import shutil
import subprocess

import pytest
import torch

from mnist_model.hardware import native_bf16
from tests.helpers import native_bf16_cpu
from training import recipe
from training.recipe import pick_amp_dtype

CPU = torch.device("cpu")


def test_cpu_bf16_is_native_exactly_with_avx512_bf16_or_amx():
    assert native_bf16(CPU) is native_bf16_cpu()  # plain AVX-512 only emulates bf16: it must not count


@pytest.mark.cuda
def test_cuda_bf16_is_native_from_compute_capability_8():
    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi is not installed")
    query = ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]
    capabilities = set(subprocess.run(query, capture_output=True, text=True, check=True).stdout.split())
    if len(capabilities) != 1:
        pytest.skip(f"GPUs of several kinds ({sorted(capabilities)}): cannot tell which one torch calls cuda:0")
    major = int(capabilities.pop().split(".")[0])
    assert native_bf16(torch.device("cuda", 0)) is (major >= 8)


def test_unknown_device_types_are_not_native():
    assert native_bf16(torch.device("meta")) is False


@pytest.mark.parametrize("native", [True, False])
def test_training_amp_auto_takes_bf16_exactly_where_native(monkeypatch, native):
    monkeypatch.setattr(recipe, "native_bf16", lambda device: native)
    assert pick_amp_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    assert pick_amp_dtype("bf16", CPU) == torch.bfloat16  # asked for explicitly: emulated is still allowed
    assert pick_amp_dtype("off", CPU) is None
    # On CUDA, float16 (with loss scaling) stands in where bf16 is not native; no GPU is touched here.
    assert pick_amp_dtype("auto", torch.device("cuda")) == (torch.bfloat16 if native else torch.float16)
