"""Offline training of the MNIST CNN: `python -m training.run` (one process) or under `torchrun` (DDP)."""
