"""mnist_model.hardware: one answer to "is bf16 native here" for training and serving."""

import torch

from mnist_model.hardware import native_bf16
from training.run import pick_amp_dtype


def test_answer_is_a_bool_and_matches_training_amp_choice():
    cpu = torch.device("cpu")
    assert isinstance(native_bf16(cpu), bool)
    assert pick_amp_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else None)
    assert pick_amp_dtype("off", cpu) is None and pick_amp_dtype("bf16", cpu) == torch.bfloat16


def test_unknown_device_types_are_not_native():
    assert native_bf16(torch.device("meta")) is False
