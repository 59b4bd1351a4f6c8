"""mnist_model.malloc: freed activation buffers are reused instead of faulted in afresh on every forward pass."""

import platform
import subprocess
import sys

import pytest

from mnist_model import malloc

FAULTS = """
import ctypes, resource, torch
ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD pinned low: big blocks get fresh pages each time
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.ones(4 << 20, dtype=torch.uint8)  # 4 MiB written, then freed: like a forward pass's activations
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults())
from mnist_model.malloc import keep_freed_memory
assert keep_freed_memory()
faults()  # the heap grows once
print(faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_big_blocks_are_reused_after_keep_freed_memory():
    done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True, timeout=120)
    before, after = (int(line) for line in done.stdout.split())
    assert before > 10_000  # 20 × 1,024 fresh 4 KiB pages
    assert after < 200


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert malloc.keep_freed_memory() is False
