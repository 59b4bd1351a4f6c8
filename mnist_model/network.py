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
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
