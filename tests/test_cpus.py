"""available_cpus: the smaller of CPU affinity and the cgroup quota (v2 cpu.max, v1 cfs files, parents too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import cpus
from app.cpus import available_cpus, cgroup_cpu_quota


def cgroup_tree(root: Path, files: dict[str, str], membership: str) -> Path:
    """Fake /sys/fs/cgroup with `files` (relative path → content) and a /proc/self/cgroup saying `membership`."""
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    proc = root / "proc-self-cgroup"
    proc.write_text(membership)
    return proc


@pytest.mark.parametrize(
    ("files", "membership", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),  # docker --cpus 1.5, cgroup namespace
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        ({"kubepods/pod1/cpu.max": "max 100000\n", "kubepods/cpu.max": "200000 100000\n"}, "0::/kubepods/pod1\n", 2),
        ({"cpu.max": "400000 100000\n", "a/cpu.max": "100000 100000\n"}, "0::/a\n", 1),
        (
            {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"},
            "4:cpu,cpuacct:/docker/x\n",
            2.5,
        ),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "3:cpu:/\n", None),
        ({"cpu.max": "garbage\n"}, "0::/\n", None),
    ],
    ids=["v2", "v2 unlimited", "v2 parent", "v2 tightest", "v1", "v1 unlimited", "unreadable"],
)
def test_cgroup_quota(tmp_path, files, membership, quota):
    proc = cgroup_tree(tmp_path, files, membership)
    assert cgroup_cpu_quota(tmp_path, proc) == quota


def test_available_cpus_is_the_smaller_of_affinity_and_quota_rounded_up(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda root: 2.5)
    assert available_cpus(tmp_path) == 3
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda root: None)
    assert available_cpus(tmp_path) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda root: 0.2)
    assert available_cpus(tmp_path) == 1


def test_this_machine():
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))
