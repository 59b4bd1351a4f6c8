"""What training and serving share: the network, its input normalisation and the checkpoint format (here), and
the rules for device strings (`mnist_model.device`) and native bf16 (`mnist_model.hardware`).

Each is written once here so that a checkpoint trained by `training` is read by `app` exactly as it was written.
"""

from mnist_model.checkpoint import (
    CheckpointError,
    ModelMetadata,
    checkpoint_version,
    load_checkpoint,
    save_checkpoint,
)
from mnist_model.network import ARCHITECTURE, Net
from mnist_model.normalize import MNIST_MEAN, MNIST_STD, normalize

__all__ = [
    "ARCHITECTURE",
    "MNIST_MEAN",
    "MNIST_STD",
    "CheckpointError",
    "ModelMetadata",
    "Net",
    "checkpoint_version",
    "load_checkpoint",
    "normalize",
    "save_checkpoint",
]
