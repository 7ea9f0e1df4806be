"""The timing loop, driven by a fake clock so every expectation is exact."""

import pytest

from suite.measure.timing import TimingPlan, calibrate, measure, one_sample, timer_overhead


class FakeClock:
    """A clock that only moves when the timed callable runs (`cost` seconds per call)."""

    def __init__(self, cost: float):
        self.now, self.cost, self.calls, self.syncs = 0.0, cost, 0, 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.cost
        self.calls += 1

    def sync(self) -> None:
        self.syncs += 1


def test_one_sample_is_time_per_call_between_synchronizations():
    clock = FakeClock(0.002)
    assert one_sample(clock.call, clock.sync, 5, clock) == 0.002
    assert (clock.calls, clock.syncs) == (5, 2)


def test_calibration_keeps_one_call_when_calls_are_long_enough():
    clock = FakeClock(0.001)
    assert calibrate(clock.call, clock.sync, min_sample_s=0.0005, clock=clock) == 1


def test_calibration_loops_short_calls_up_to_the_shortest_sample():
    clock = FakeClock(1e-6)
    loops = calibrate(clock.call, clock.sync, min_sample_s=1e-4, clock=clock)
    assert loops * 1e-6 >= 1e-4
    assert loops <= 2 * 1.2 * 100  # not grossly more than needed


def test_measure_stops_when_samples_and_time_are_both_enough():
    clock = FakeClock(0.01)
    plan = TimingPlan(warmup_s=0.05, min_samples=20, max_samples=1000, min_time_s=0.5, max_time_s=10, min_sample_s=0.001)
    timing = measure(clock.call, clock.sync, plan, clock)
    assert timing.stopped_by == "enough"
    assert len(timing.samples_s) == 50  # 0.5 s of 0.01 s samples, more than min_samples
    assert timing.loops == 1 and timing.warmup_calls == 5
    assert timing.samples_s == pytest.approx([0.01] * 50)


def test_measure_caps_samples_and_time():
    clock = FakeClock(0.01)
    capped = TimingPlan(warmup_s=0, min_samples=10, max_samples=30, min_time_s=5, max_time_s=10, min_sample_s=0.001)
    assert measure(clock.call, clock.sync, capped, clock).stopped_by == "max_samples"
    slow = TimingPlan(warmup_s=0, min_samples=500, max_samples=1000, min_time_s=0, max_time_s=1, min_sample_s=0.001)
    timing = measure(clock.call, clock.sync, slow, clock)
    assert timing.stopped_by == "max_time_s" and len(timing.samples_s) == 100


def test_progress_callback_sees_every_sample():
    clock, seen = FakeClock(0.01), []
    plan = TimingPlan(warmup_s=0, min_samples=7, max_samples=7, min_time_s=0, max_time_s=1, min_sample_s=0.001)
    measure(clock.call, clock.sync, plan, clock, on_sample=seen.append)
    assert seen == list(range(1, 8))


def test_timer_overhead_of_a_real_clock_is_small_and_positive():
    assert 0 <= timer_overhead() < 1e-3


def test_calibration_reuses_the_last_warm_up_call():
    clock = FakeClock(0.5)
    plan = TimingPlan(warmup_s=0, warmup_calls=1, min_samples=1, max_samples=1, min_time_s=0, max_time_s=10,
                      min_sample_s=0.001)
    timing = measure(clock.call, clock.sync, plan, clock)
    assert (timing.warmup_calls, timing.loops, len(timing.samples_s)) == (1, 1, 1)
    assert clock.calls == 2  # one warm-up call, one sample: no separate calibration call
