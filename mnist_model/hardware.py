"""Which reduced precision a device computes natively: one answer for training's --amp and serving's PRECISION."""

import torch


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 runs at full speed: CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX (oneDNN).

    Elsewhere bf16 is emulated and slower than float32, so `auto` settings fall back to float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False
