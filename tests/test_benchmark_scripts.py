"""The benchmark scripts refuse counts and times that would measure nothing (a batch of -1, 0
rounds, NaN seconds) in one line, exit 2, before they load a model."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(("script", "argument", "value"), [
    ("vs_onnxruntime.py", "--rounds", "0"), ("vs_benchmark_app.py", "--batch", "-1"),
    ("vs_loadgen.py", "--seconds", "nan"), ("vs_loadgen.py", "--steps", "0"),
    ("timer_agreement.py", "--seconds", "-1"), ("gate_power.py", "--trials", "0"), ("overhead.py", "--runs", "-2"),
    ("aa.py", "--copies", "0"),
])
def test_a_count_or_time_that_measures_nothing_is_refused(script, argument, value):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), argument, value],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (f"{script}: error: argument {argument}: must be above 0 and finite, "
                                            f"got {value!r}")
