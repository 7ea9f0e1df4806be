"""Energy from hardware counters: Intel/AMD RAPL through Linux's powercap files on CPU, NVML's
total-energy counter on NVIDIA GPUs. An idle baseline is measured first and subtracted.

Where no counter can be read there is no figure, only the reason: never an estimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Zone:
    name: str  # "package-0"
    energy_file: Path  # energy_uj: microjoules since some point, wrapping at max_range_uj
    max_range_uj: int


class RaplMeter:
    """The package zones of RAPL (each CPU socket's whole package; not their sub-zones, which
    the package already counts, nor psys, which counts the package again)."""

    name = "rapl"
    update_period_s = 0.001

    def __init__(self, root: Path = POWERCAP):
        self.root = root
        self.zones = package_zones(root)

    def unavailable(self) -> str | None:
        if not self.root.exists():
            return f"{self.root} does not exist: this machine exposes no RAPL counters (usual in VMs and containers)"
        if not self.zones:
            return f"no RAPL package zones under {self.root}"
        try:
            self.read()
        except PermissionError:
            return (f"cannot read {self.zones[0].energy_file}: permission denied (root only since Linux 5.10; "
                    "a root user can allow it with chmod o+r)")
        return None

    def describe(self) -> str:
        return f"RAPL via powercap ({', '.join(zone.name for zone in self.zones)})"

    def read(self) -> tuple[int, ...]:
        return tuple(int(zone.energy_file.read_text()) for zone in self.zones)

    def joules_between(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        return sum(wrapped_delta(b, a, zone.max_range_uj) for b, a, zone in zip(before, after, self.zones, strict=False)) / 1e6


def package_zones(root: Path) -> list[Zone]:
    zones = []
    for folder in sorted(root.glob("*-rapl:*")):
        if folder.name.count(":") != 1:  # intel-rapl:0:1 is a sub-zone (core, uncore, dram)
            continue
        name = (folder / "name").read_text().strip() if (folder / "name").exists() else folder.name
        if name.startswith("package") and (folder / "energy_uj").exists():
            zones.append(Zone(name, folder / "energy_uj", int((folder / "max_energy_range_uj").read_text())))
    return zones


def wrapped_delta(before: int, after: int, max_range: int) -> int:
    """Counter difference, allowing for one wrap-around between the two readings."""
    return after - before if after >= before else after + max_range - before


class NvmlMeter:
    """NVML's total energy since the driver loaded, in millijoules (Volta and newer). It is
    updated every few tens of milliseconds, so windows are kept at least 10 periods long."""

    name = "nvml"
    update_period_s = 0.1

    def __init__(self, device_index: int = 0):
        self.device_index, self.handle, self._pynvml, self._reason = device_index, None, None, None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle, self._pynvml = pynvml.nvmlDeviceGetHandleByIndex(device_index), pynvml
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except ImportError:
            self._reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
        except Exception as exc:  # pynvml.NVMLError and its many subclasses: no GPU, old GPU, no driver
            self._reason = f"NVML cannot read the GPU's energy counter ({type(exc).__name__}: {exc})"

    def unavailable(self) -> str | None:
        return self._reason

    def describe(self) -> str:
        return f"NVML total energy, GPU {self.device_index}"

    def read(self) -> int:
        return self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)

    def joules_between(self, before: int, after: int) -> float:
        return (after - before) / 1e3


def meter_for(device: str) -> tuple[Any | None, str | None]:
    """The meter for a device ("cpu", "cuda", "cuda:1"), or None with the reason."""
    meter = NvmlMeter(int(device.partition(":")[2] or 0)) if device.startswith("cuda") else RaplMeter()
    reason = meter.unavailable()
    return (None, reason) if reason else (meter, None)


def idle_power(meter: Any, seconds: float, clock: Callable[[], float] = time.perf_counter,
               sleep: Callable[[float], None] = time.sleep) -> float:
    """Mean power in watts while this process does nothing: the baseline to subtract."""
    before, start = meter.read(), clock()
    sleep(max(seconds, 10 * meter.update_period_s))
    after, end = meter.read(), clock()
    return meter.joules_between(before, after) / (end - start)


def active_energy(call: Callable[[], Any], sync: Callable[[], None], meter: Any, window_s: float,
                  idle_w: float, items_per_call: int, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Run `call` back to back for a window at least 10 meter periods long and read the energy."""
    window = max(window_s, 10 * meter.update_period_s)
    sync()
    before, start, calls = meter.read(), clock(), 0
    while calls == 0 or clock() - start < window:
        call()
        calls += 1
    sync()
    after, end = meter.read(), clock()
    joules, seconds = meter.joules_between(before, after), end - start
    net = joules - idle_w * seconds
    return {"window_s": seconds, "calls": calls, "mean_power_w": joules / seconds,
            "net_power_w": net / seconds, "joules_per_call": net / calls,
            "joules_per_inference": net / (calls * items_per_call)}
