import os

from conventions import machine


def test_available_memory_is_physical_ram_or_a_lower_cgroup_limit(monkeypatch):
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    monkeypatch.setattr(machine, "cgroup_memory_limit", lambda: None)
    assert machine.available_memory_bytes() == physical
    monkeypatch.setattr(machine, "cgroup_memory_limit", lambda: 2**30)
    assert machine.available_memory_bytes() == min(physical, 2**30)
    monkeypatch.setattr(machine, "cgroup_memory_limit", lambda: 10 * physical)
    assert machine.available_memory_bytes() == physical
