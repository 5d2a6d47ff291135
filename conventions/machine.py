"""What this machine lets a process use: its memory, physical or limited by a cgroup (a SLURM job or a container
is often allowed much less than its node has)."""

from __future__ import annotations

import os
from pathlib import Path


def cgroup_memory_limit(proc_cgroup: Path = Path("/proc/self/cgroup"),
                        root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit in bytes of this process's cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``);
    None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            limit = root / path.lstrip("/") / "memory.max"
        elif "memory" in controllers.split(","):
            limit = root / "memory" / path.lstrip("/") / "memory.limit_in_bytes"
        else:
            continue
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit
            return int(text)
    return None


def available_memory_bytes() -> int:
    """The memory this process may use in bytes: physical RAM, or its cgroup's limit when lower."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = cgroup_memory_limit()
    return physical if limit is None else min(physical, limit)
