"""Which reduced precision a device computes natively: one answer for training's --amp and serving's PRECISION."""

import torch

X86_BF16_EXTENSIONS = ("avx512_bf16", "amx_bf16")
"""x86 instruction-set extensions that compute bfloat16 in hardware (Cooper Lake, Sapphire Rapids and later; Zen 4)."""


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 runs at full speed: CUDA GPUs of compute capability 8.0 (Ampere) or later, x86 CPUs with
    AVX512-BF16 or AMX-BF16, other CPUs where oneDNN has bf16 instructions (e.g. Arm's BF16 extension).

    Elsewhere bf16 is emulated and slower than float32, so `auto` settings fall back to float32. oneDNN's own check
    (`_is_mkldnn_bf16_supported`) also says yes on every AVX-512 x86 CPU, emulation included, hence the flags here.
    """
    if device.type == "cuda":
        return torch.version.hip is not None or torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("architecture") == "x86_64":
        return any(capabilities.get(extension, False) for extension in X86_BF16_EXTENSIONS)
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
