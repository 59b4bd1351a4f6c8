"""The CNN, exactly as in pytorch/examples `mnist/main.py`, so its weights load into that `Net` unchanged."""

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "pytorch-examples-mnist-cnn"
"""Name recorded in every checkpoint; loading refuses weights made for another architecture."""


class Net(nn.Module):
    """conv(1→32,3) → ReLU → conv(32→64,3) → ReLU → maxpool 2 → dropout .25 → fc(9216→128) → ReLU → dropout .5 →
    fc(128→10) → log_softmax. Input: N×1×28×28 normalised images; output: N×10 log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations, fc1 after its ReLU (N×128): what `head` classifies."""
        return self.dense(self.conv_maps(x))

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional block's output, conv2 → max-pool → ReLU (N×64×12×12): what `dense` reads, and what
        the not-a-digit gate (`app.gate`) summarises per channel beside the answer, from the same forward pass."""
        # The tutorial's function, computed more cheaply with the same result bit for bit (tested, values and
        # gradients): ReLU after max-pooling (they commute: both keep the largest value, and ReLU is monotonic)
        # touches a quarter of the values, and ReLUs in place spare an allocation each (~15 % of a forward pass).
        x = F.relu(self.conv1(x), inplace=True)
        return F.relu(F.max_pool2d(self.conv2(x), 2), inplace=True)

    def dense(self, maps: torch.Tensor) -> torch.Tensor:
        """`conv_maps` (N×64×12×12) → fc1's activations after its ReLU (N×128). Dropout works on a copy when
        training, so a caller's `maps` stay as they were."""
        x = torch.flatten(self.dropout1(maps), 1)
        return F.relu(self.fc1(x), inplace=True)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """fc1's activations (N×128) → N×10 log-probabilities: `logits`, then log_softmax. Dropout works on a
        copy when training, so a caller's `features` stay as they were."""
        return F.log_softmax(self.logits(features), dim=1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """fc1's activations (N×128) → N×10 logits (dropout .5 → fc2), before the log_softmax of `head`."""
        return self.fc2(self.dropout2(features))
