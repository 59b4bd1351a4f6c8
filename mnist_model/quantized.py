"""The network's convolutions in int8 for CPUs without native bf16: the same function, batches ~1.7× cheaper on an
AVX2 core (README, "int8 on CPUs without bf16"), from ranges measured once and kept in the checkpoint.

Why: on a CPU without AVX512-BF16 or AMX the float32 convolutions are most of the service's cost (conv2 alone ~70 %
of a batch on an AVX2 core, at that core's float32 peak), and oneDNN's int8 convolutions do the same products in
8-bit integers. Only the two convolutions (and the pool between conv2 and fc1) run in int8: fc1, with the digit
gate's rows folded into its product, and everything after it stay float32, so the gate's features keep their
meaning. Weights are quantized per output channel (symmetric, their own maxima), activations per tensor from the
largest value each convolution's ReLU output reached on MNIST training images (`activation_maxima`), which a
checkpoint records (`ModelMetadata.int8`, written by `python -m training.int8`): nothing here needs data.

The kernels are oneDNN's int8 convolutions as torch's compiler lowers to them (`torch.ops.onednn.qconv2d_pointwise`
on plain uint8/int8 tensors with their scales), not the `torch.ao.quantization` workflow or quantized tensor types,
which torch 2.14 marks deprecated.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnist_model.inference import InferenceNet
from mnist_model.network import Net

LEVELS = 255
"""An activation's quantization steps (quint8): ReLU outputs from 0 to their recorded maximum."""
WEIGHT_LEVELS = 127
"""A weight's steps either side of zero (qint8, symmetric per output channel)."""


class QuantizationError(ValueError):
    """A checkpoint's int8 record is missing or malformed, or this torch cannot run int8 convolutions."""


@dataclass(frozen=True)
class Int8Ranges:
    """The largest ReLU output of each convolution over the calibration images: the top of its int8 range."""

    conv1_max: float
    conv2_max: float

    @classmethod
    def from_metadata(cls, record: dict[str, object]) -> Int8Ranges:
        """The ranges of a checkpoint's `int8` record; `QuantizationError` if there is none or it is malformed."""
        if not record:
            raise QuantizationError("the checkpoint has no int8 ranges: record them with `python -m training.int8`")
        values = [record.get(name) for name in ("conv1_max", "conv2_max")]
        numbers = all(isinstance(value, int | float) and not isinstance(value, bool) for value in values)
        if not numbers or not all(0 < value < float("inf") for value in values):  # type: ignore[operator]
            raise QuantizationError(f"the checkpoint's int8 ranges must be positive numbers, got {values!r}")
        return cls(float(values[0]), float(values[1]))  # type: ignore[arg-type]


def int8_available() -> bool:
    """Whether oneDNN's int8 convolution runs here: x86 CPUs with a torch built with oneDNN (the pinned wheels are)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


@torch.no_grad()
def activation_maxima(net: Net, images: torch.Tensor, chunk: int = 1024) -> Int8Ranges:
    """The largest value of relu(conv1) and of relu(conv2) over normalised N×1×28×28 `images`, in float32."""
    conv1_max = conv2_max = 0.0
    for start in range(0, len(images), chunk):
        first = F.relu(net.conv1(images[start : start + chunk].float()))
        second = F.relu(net.conv2(first))
        conv1_max, conv2_max = max(conv1_max, float(first.max())), max(conv2_max, float(second.max()))
    return Int8Ranges(conv1_max, conv2_max)


@dataclass(frozen=True)
class Int8Conv:
    """One convolution with its ReLU, ready for `qconv2d_pointwise`: weights quantized per output channel
    (symmetric int8) and packed by oneDNN for inputs of `input_scale`/`input_zero_point`, float32 bias."""

    packed: torch.Tensor
    weight_scales: torch.Tensor
    weight_zero_points: torch.Tensor
    bias: torch.Tensor
    input_scale: float
    input_zero_point: int
    output_scale: float

    @classmethod
    def of(
        cls,
        conv: torch.nn.Conv2d,
        input_scale: float,
        input_zero_point: int,
        output_max: float,
        input_offset: float = 0,
    ) -> Int8Conv:
        """`conv` (3×3, stride 1, no padding) quantized. `input_offset`: how much higher than its value the kernel
        reads each input (a fractional zero point rounded to an integer), taken back through the bias."""
        weight = conv.weight.detach().float()
        scales = (weight.abs().amax(dim=(1, 2, 3)) / WEIGHT_LEVELS).clamp_min(1e-12)
        integers = torch.round(weight / scales[:, None, None, None]).clamp(-WEIGHT_LEVELS, WEIGHT_LEVELS)
        integers = integers.to(torch.int8).contiguous(memory_format=torch.channels_last)
        packed = torch.ops.onednn.qconv_prepack(
            integers, scales, input_scale, input_zero_point, [1, 1], [0, 0], [1, 1], 1, None
        )
        own_bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(len(scales))
        bias = own_bias - input_offset * weight.sum(dim=(1, 2, 3))
        zero_points = torch.zeros(len(scales), dtype=torch.int32)
        return cls(packed, scales, zero_points, bias, input_scale, input_zero_point, output_max / LEVELS)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """uint8 N×C×H×W (channels-last) of this convolution's input quantization → relu(conv) as uint8 of its
        output scale (zero point 0)."""
        return torch.ops.onednn.qconv2d_pointwise(
            values,
            self.input_scale,
            self.input_zero_point,
            self.packed,
            self.weight_scales,
            self.weight_zero_points,
            self.bias,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
            self.output_scale,
            0,
            None,
            "relu",
            [None],
            "",
        )


def max_pool_uint8(maps: torch.Tensor) -> torch.Tensor:
    """max_pool2d(maps, 2) of uint8 N×C×H×W maps (H, W even), as an N×C×(H/2)×(W/2) channels-last tensor: two
    elementwise maxima over the channels-last rows (torch's max-pool takes no integer maps)."""
    count, channels, height, width = maps.shape
    rows = maps.permute(0, 2, 3, 1).contiguous()  # N×H×W×C: a view when `maps` is channels-last
    windows = rows.view(count, height // 2, 2, width // 2, 2 * channels)
    row_maxima = torch.maximum(windows[:, :, 0], windows[:, :, 1])
    return torch.maximum(row_maxima[..., :channels], row_maxima[..., channels:]).permute(0, 3, 1, 2)


class Int8InferenceNet(InferenceNet):
    """`InferenceNet` whose `conv_maps` runs conv1 → ReLU → conv2 → ReLU → max-pool in int8 and hands float32
    channels-last maps to the float32 `readout` (fc1 and the gate's rows), so everything after the maps is unchanged.

    `input_range` is the normalised values of a black and a white pixel: the input's quantization spans them in
    255 steps, so each pixel is its own gray level again (MNIST's mean is a fractional gray level; the fraction is
    folded into conv1's bias). Built on a float32 CPU `net`.
    """

    def __init__(
        self,
        net: Net,
        ranges: Int8Ranges,
        input_range: tuple[float, float],
        extra_rows: torch.Tensor | None = None,
    ) -> None:
        if not int8_available():
            raise QuantizationError("this torch build has no oneDNN int8 convolution")
        super().__init__(net, extra_rows)
        low, high = input_range
        scale = (high - low) / LEVELS
        exact_zero = -low / scale  # the gray level of normalised 0 (MNIST: 33.33)
        zero_point = min(LEVELS, max(0, round(exact_zero)))
        offset = (exact_zero - zero_point) * scale
        self._conv1 = Int8Conv.of(net.conv1, scale, zero_point, ranges.conv1_max, offset)
        self._conv2 = Int8Conv.of(net.conv2, self._conv1.output_scale, 0, ranges.conv2_max)

    def conv_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised N×1×28×28 float32 images → `Net.conv_maps` (N×64×12×12, float32, channels-last memory)."""
        conv1 = self._conv1  # its input quantization is the images'
        levels = torch.round(images / conv1.input_scale + conv1.input_zero_point).clamp_(0, LEVELS)
        pixels = levels.to(torch.uint8).contiguous(memory_format=torch.channels_last)
        pooled = max_pool_uint8(self._conv2(self._conv1(pixels)))
        return pooled.float().mul_(self._conv2.output_scale)
