"""`Net`'s forward pass for serving: the same function of the same weights, in the operations a CPU runs fastest.

Why a second path: in inference, three steps of the tutorial's forward pass cost more than their arithmetic.
Torch's max-pool of conv2's output (bf16, channels-last, on a CPU) also computes the indices that only backward
needs and took ~22 % of a batch of 32 on one thread; flattening channels-last maps for fc1 copies them; and its
bf16 ReLU of conv1's output took ~440 µs of a ~3.6 ms batch of 64. Here the pool is two elementwise maxima on the
maps' integer view (`max_pool_relu`, exact), left in channels-last memory, fc1's weight columns are permuted once to
that memory order, so the flattening is a view, and conv1's ReLU is a clamp of the same integer view (`relu_`,
exact): ~20 % less per forward pass for the first two (1.49 vs 1.84 ms for a batch of 32, bf16, one thread), ~9 %
less again for the third (3.60 vs 3.95 ms for a gated batch of 64). The service reads fc1's pre-activations off
`readout` (fc1 transposed, with the digit gate's folded rows in the same product) and finishes on the CPU
(`mnist_model.head`). `tests/test_inference.py` pins the same maps, logits and read-outs.
Training keeps `Net` (autograd needs torch's pool); this holds views of its weights and changes none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnist_model.network import Net

SAME_WIDTH_INTEGER = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}
"""For IEEE floats the bit patterns, read as signed integers of the same width, order exactly as the values do
among non-negative values (sign bit 0), and every negative value (sign bit 1, -0.0 included) reads as a negative
integer, below all of them. So the maximum of values that are then clamped at zero (a ReLU) can be taken on the
integer view, which torch computes several times faster on a CPU than the float maximum of half-precision data."""


def relu_(maps: torch.Tensor) -> torch.Tensor:
    """ReLU in place, on the integer view (see SAME_WIDTH_INTEGER): every negative value, -0.0 included, reads as a
    negative integer and becomes 0, which is +0.0; the rest keep their bits. The same values as `F.relu`, but torch
    clamps 16-bit integers several times faster than it runs a ReLU on bf16 (conv1's output, a batch of 64 on one
    CPU thread: ~140 against ~440-550 µs)."""
    maps.view(SAME_WIDTH_INTEGER[maps.dtype]).clamp_min_(0)
    return maps


def max_pool_relu(maps: torch.Tensor) -> torch.Tensor:
    """relu(max_pool2d(maps, 2)) of N×C×H×W maps (H, W even; any float dtype and layout), exactly, as an
    N×C×(H/2)×(W/2) tensor in channels-last memory.

    Each 2×2 window's maximum is taken on the integer view (see SAME_WIDTH_INTEGER): if any of its four values is
    non-negative the integer maximum is the largest of them; if all are negative it is negative, and the clamp at
    zero that follows (the ReLU, on the same integers) makes it +0.0 either way."""
    count, channels, height, width = maps.shape
    if height % 2 or width % 2:
        raise ValueError(f"max_pool_relu needs even map sides, got {height}×{width}")
    rows = maps.permute(0, 2, 3, 1).contiguous().view(SAME_WIDTH_INTEGER[maps.dtype])  # N×H×W×C, a view if NHWC
    windows = rows.view(count, height // 2, 2, width // 2, 2 * channels)  # each window: 2 rows × (2 columns × C)
    row_maxima = torch.maximum(windows[:, :, 0], windows[:, :, 1])
    pooled = torch.maximum(row_maxima[..., :channels], row_maxima[..., channels:])
    return pooled.clamp_min_(0).view(maps.dtype).permute(0, 3, 1, 2)


def channels_last_columns(rows: torch.Tensor, channels: int) -> torch.Tensor:
    """Rows over C×S×S maps flattened in NCHW order (as fc1's weight is) → the same rows over the maps flattened
    in NHWC order, which for channels-last maps is a view: no copy of the maps."""
    count, side = rows.shape[0], round((rows.shape[1] // channels) ** 0.5)  # 12: the pooled maps are square
    return rows.view(count, channels, side, side).permute(0, 2, 3, 1).reshape(count, -1).contiguous()


class InferenceNet:
    """A `Net` in evaluation mode, run by `conv_maps` → `dense` → `logits` with `Net`'s meaning for each, or by
    `conv_maps` → `readout`: fc1's pre-activations and, in the same matrix product, `extra_rows` more linear
    functions of the maps (the not-a-digit gate's first layer, folded: `app.gate.digit_gate.ServingGate`).

    Built after the net is on its device and in its dtype (it keeps fc1's weight permuted to channels-last
    order). The maps `conv_maps` returns are channels-last; `dense` and `readout` read maps in any layout."""

    def __init__(self, net: Net, extra_rows: torch.Tensor | None = None) -> None:
        """`extra_rows`: E×(C·H·W) weights over the NCHW-flattened maps (fc1's weight's column order), any float
        dtype: cast to the net's."""
        self.net = net.eval()
        weight = net.fc1.weight.detach()  # 128 × (C·H·W), columns in the NCHW flattening order
        channels, self.fc1_units = net.conv2.out_channels, weight.shape[0]
        rows = weight if extra_rows is None else torch.cat([weight, extra_rows.to(weight)])
        # columns in the NHWC order: flattening channels-last maps is then free
        self.readout_weight = channels_last_columns(rows, channels)
        bias = net.fc1.bias.detach()
        self._bias_column = torch.cat([bias, bias.new_zeros(len(rows) - len(bias))])[:, None].contiguous()

    def conv_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised N×1×28×28 images → `Net.conv_maps` (N×64×12×12, channels-last memory)."""
        activations = relu_(self.net.conv1(images))
        return max_pool_relu(self.net.conv2(activations))

    def dense(self, maps: torch.Tensor) -> torch.Tensor:
        """`Net.dense`: maps → fc1's activations after its ReLU (N×128)."""
        return F.relu(self.readout(maps)[:, : self.fc1_units])

    def readout(self, maps: torch.Tensor) -> torch.Tensor:
        """maps → N×(128 + E) in the net's dtype: fc1's pre-activations (before its ReLU), then the `extra_rows`
        applied to the maps (no bias): one matrix product, so the extra rows cost their share of fc1's weight
        streaming and no operation of their own.

        Computed transposed, weight × mapsᵀ (the result is a transposed view): oneDNN's AMX matrix product
        repacks its second operand on every call, and this way that is the N×9216 maps rather than the 128×9216
        weight (same values, bit for bit; for a batch of 64 on one thread ~12 % faster with fc1 alone, ~20 % with
        64 extra rows, measured)."""
        return torch.addmm(self._bias_column, self.readout_weight, _flat(maps).t()).t()

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """`Net.logits`: fc1's activations → N×10 logits."""
        return self.net.fc2(features)


def _flat(maps: torch.Tensor) -> torch.Tensor:
    """N×C×H×W maps flattened in NHWC order: a view for channels-last maps."""
    return maps.permute(0, 2, 3, 1).reshape(len(maps), -1)
