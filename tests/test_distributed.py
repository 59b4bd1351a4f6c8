"""training.distributed: device resolution and the single-process path (the DDP path runs in test_run.py)."""

import pytest
import torch

from training import distributed


def test_without_torchrun_it_runs_alone_on_the_cpu(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    runtime = distributed.start("cpu")
    assert (runtime.rank, runtime.world_size, runtime.is_main, runtime.distributed) == (0, 1, True, False)
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(tensor, runtime) is tensor and tensor.tolist() == [1.0, 2.0]
    assert len(distributed.all_gather_1d(tensor, runtime)) == 1
    distributed.barrier(runtime)
    distributed.stop(runtime)


def test_device_names():
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert distributed.resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown --device 'tpu'"):
        distributed.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown on machines without CUDA")
def test_asking_for_cuda_without_a_gpu_says_what_to_use():
    with pytest.raises(ValueError, match="use --device cpu"):
        distributed.resolve_device("cuda")
