"""Other processes on the machine while samples were taken: the CPU time they used and the load.

Everything on the machine shares its cores: with two other busy processes on this 2-core VM,
ResNet-20 at batch 1 measured 8.8x its quiet median, and nothing in the figures showed it. So
each timed window records the CPU time the whole system used (psutil.cpu_times: user, nice,
system, irq, softirq) minus what this process and its children used in it, and the 1-minute
load average; above BUSY_SHARE of one core, the figures carry a warning.

/proc/stat and a process's times count in ticks of 10 ms, so a window shorter than
MIN_WINDOW_S is judged only when the others used more than MIN_OTHER_S.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

BUSY_SHARE = 0.10  # of one core
MIN_WINDOW_S = 1.0
MIN_OTHER_S = 0.05


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    system_busy_s: float
    own_s: float


def snapshot() -> Snapshot:
    import psutil

    times = psutil.cpu_times()
    busy = sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "irq", "softirq"))
    return Snapshot(time.monotonic(), busy, tree_cpu_seconds(psutil))


def tree_cpu_seconds(psutil: Any) -> float:
    """CPU time of this process and of every child it has now or has waited for."""
    me = psutil.Process()
    own = me.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # it ended between the two looks
            continue
    return total


def others(before: Snapshot, after: Snapshot) -> dict:
    """What the rest of the machine did between two snapshots."""
    wall = max(after.wall_s - before.wall_s, 1e-9)
    other = max((after.system_busy_s - before.system_busy_s) - (after.own_s - before.own_s), 0.0)
    return {"window_s": round(wall, 3), "other_cpu_s": round(other, 3), "other_share_of_core": round(other / wall, 4),
            "load_avg_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}


def busy(record: dict | None) -> bool:
    """Whether other processes took more than BUSY_SHARE of one core (and enough to tell apart
    from the counters' tick in a short window)."""
    if not record:
        return False
    enough = record["window_s"] >= MIN_WINDOW_S or record["other_cpu_s"] >= MIN_OTHER_S
    return enough and record["other_share_of_core"] > BUSY_SHARE


def warning(label: str, record: dict) -> str:
    return (f"{label}: the machine was busy: other processes used {record['other_share_of_core']:.0%} of a core "
            f"during these samples ({record['other_cpu_s']:.2f} s of CPU in {record['window_s']:.2f} s; load average "
            f"{record['load_avg_1m']:.2f} on {record['cores']} cores), so the figures may be slower than this "
            f"machine alone gives")


def wait_quiet(limit_s: float, window_s: float = MIN_WINDOW_S) -> bool:
    """Wait until other processes leave the machine quiet for one window (at most `limit_s`);
    whether they did."""
    deadline = time.monotonic() + limit_s
    while True:
        before = snapshot()
        time.sleep(window_s)
        if not busy(others(before, snapshot())):
            return True
        if time.monotonic() >= deadline:
            return False
