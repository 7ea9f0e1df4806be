"""Energy counters: RAPL's powercap files (a fake tree the test writes, wrap-around included),
NVML through a stand-in module, and the arithmetic of the idle baseline."""

import sys
import types

import pytest

from suite.measure import energy


def write_zone(root, folder, name, energy_uj, max_range_uj=262143328850):
    zone = root / folder
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone / "energy_uj"


@pytest.fixture
def powercap(tmp_path):
    """Two sockets, each with a core sub-zone, and a psys zone: only the packages count."""
    files = {"pkg0": write_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000),
             "pkg1": write_zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000, max_range_uj=10_000_000)}
    write_zone(tmp_path, "intel-rapl:0:0", "core", 400_000)
    write_zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)
    return tmp_path, files


def test_rapl_reads_only_the_package_zones(powercap):
    root, _ = powercap
    meter = energy.RaplMeter(root)
    assert [zone.name for zone in meter.zones] == ["package-0", "package-1"]
    assert meter.unavailable() is None
    assert meter.read() == (1_000_000, 5_000_000)
    assert meter.describe() == "RAPL via powercap (package-0, package-1)"


def test_rapl_energy_between_two_readings_survives_a_wrap_around(powercap):
    root, files = powercap
    meter = energy.RaplMeter(root)
    before = meter.read()
    files["pkg0"].write_text("3500000\n")  # +2.5 J
    files["pkg1"].write_text("1000000\n")  # wrapped at 10 J: +5 J to the top, +1 J after it
    assert meter.joules_between(before, meter.read()) == pytest.approx(2.5 + 6.0)


def test_wrapped_delta():
    assert energy.wrapped_delta(10, 25, 100) == 15
    assert energy.wrapped_delta(90, 5, 100) == 15
    assert energy.wrapped_delta(7, 7, 100) == 0


def test_rapl_says_why_it_cannot_measure(tmp_path):
    assert "does not exist" in energy.RaplMeter(tmp_path / "missing").unavailable()
    assert energy.RaplMeter(tmp_path).unavailable() == f"no RAPL package zones under {tmp_path}"


def test_unreadable_counters_give_the_reason_not_a_figure(powercap):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    root, files = powercap
    files["pkg0"].chmod(0o200)
    assert "permission denied" in energy.RaplMeter(root).unavailable()


class FakeMachine:
    """A fake clock and an energy counter: idle it draws 10 W; a call takes 1/32 s at 30 W."""

    update_period_s = 0.001

    def __init__(self):
        self.now, self.joules = 0.0, 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.joules += 10.0 * seconds

    def call(self):
        self.now += 1 / 32
        self.joules += 30.0 / 32

    def read(self):
        return self.joules

    def joules_between(self, before, after):
        return after - before


def test_idle_baseline_is_subtracted_from_the_energy_per_inference():
    machine = FakeMachine()
    idle = energy.idle_power(machine, 1.0, clock=machine.clock, sleep=machine.sleep)
    assert idle == pytest.approx(10.0)
    result = energy.active_energy(machine.call, lambda: None, machine, window_s=1.0, idle_w=idle, items_per_call=4,
                                  clock=machine.clock)
    assert result["calls"] == 32 and result["window_s"] == 1.0
    assert result["mean_power_w"] == pytest.approx(30.0)
    assert result["net_power_w"] == pytest.approx(20.0)
    assert result["joules_per_call"] == pytest.approx(20.0 / 32)
    assert result["joules_per_inference"] == pytest.approx(20.0 / 32 / 4)


def test_windows_are_at_least_ten_meter_periods():
    machine = FakeMachine()
    machine.update_period_s = 0.25  # a window of 2.5 s, whatever was asked
    result = energy.active_energy(machine.call, lambda: None, machine, 0.05, 0.0, 1, clock=machine.clock)
    assert result["calls"] == 80


def test_nvml_total_energy_in_millijoules(monkeypatch):
    counter = {"mJ": 1_000}
    fake = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
                                 nvmlDeviceGetTotalEnergyConsumption=lambda handle: counter["mJ"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter, reason = energy.meter_for("cuda:1")
    assert reason is None and meter.describe() == "NVML total energy, GPU 1"
    before = meter.read()
    counter["mJ"] += 2_500
    assert meter.joules_between(before, meter.read()) == pytest.approx(2.5)


def test_nvml_without_the_package_or_a_gpu_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert energy.meter_for("cuda")[1] == "nvidia-ml-py is not installed (pip install nvidia-ml-py)"

    def no_gpu():
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=no_gpu))
    assert "NVML cannot read the GPU's energy counter (RuntimeError: NVML Shared Library Not Found)" in \
        energy.meter_for("cuda")[1]
