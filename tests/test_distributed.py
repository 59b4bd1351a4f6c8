"""training.distributed: the single-process path and its device errors (the DDP path runs in test_run.py)."""

import pytest
import torch

from mnist_model.device import DeviceError
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


def test_a_missing_gpu_is_reported_with_the_training_flag(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on machines with a GPU
    with pytest.raises(DeviceError, match="--device=cuda asks for a CUDA GPU, but torch sees none: use --device=cpu"):
        distributed.start("cuda")
