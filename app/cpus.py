"""How many CPUs this process may really use: the default for worker processes, torch and decode threads.

`os.cpu_count()` counts the host's CPUs. A container limited to 2 CPUs on a 64-core host would then start 64
workers and 64 torch threads each, oversubscribed 32× over. The usable count is the smallest of: the CPUs
this process may run on (`os.sched_getaffinity`: taskset, cpusets, Kubernetes' static CPU manager) and the
cgroup CPU quota (`cpu.max` in cgroup v2, `cpu.cfs_quota_us / cpu.cfs_period_us` in v1: docker --cpus,
Kubernetes limits), rounded up. Imports nothing heavy: the gunicorn master reads it before forking workers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can use: affinity and cgroup quota respected, at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The tightest CPU quota on this process's cgroup or its parents, in CPUs (1.5: one and a half), or None
    when unlimited or unknown."""
    quotas = [quota for folder in _cgroup_folders(cgroup_root, proc_cgroup) if (quota := _quota(folder)) is not None]
    return min(quotas, default=None)


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup folders and their parents: v2 (`0::/path`) and v1 `cpu` controllers."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    folders = [root]  # in a container's cgroup namespace our own cgroup is the mount's root
    for line in lines:  # "0::/system.slice/x.scope" (v2) or "4:cpu,cpuacct:/docker/abc" (v1)
        _, controllers, path = line.split(":", 2)
        if controllers and "cpu" not in controllers.split(","):
            continue
        mount = root if not controllers else root / controllers
        folder = mount / path.lstrip("/")
        while folder != mount and mount in folder.parents:
            folders.append(folder)
            folder = folder.parent
        folders.append(mount)
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def _quota(folder: Path) -> float | None:
    """The quota set on one cgroup folder (v2 `cpu.max`: "150000 100000" or "max 100000"; v1 cfs files)."""
    try:
        if (folder / "cpu.max").is_file():
            quota, _, period = (folder / "cpu.max").read_text().partition(" ")
        elif (folder / "cpu.cfs_quota_us").is_file():
            quota, period = (folder / "cpu.cfs_quota_us").read_text(), (folder / "cpu.cfs_period_us").read_text()
        else:
            return None
        quota, period = quota.strip(), period.strip()
        if quota in ("max", "-1"):
            return None
        value = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None
