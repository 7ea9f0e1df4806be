"""Each reference model on each CPU backend at batch 1, timed by pytest-benchmark."""

import pytest

from tests.benchmarks.conftest import REFERENCE


@pytest.mark.parametrize("backend", ["eager", "onnxruntime", "openvino"])
@pytest.mark.parametrize("reference", sorted(REFERENCE))
def test_latency_batch_1(benchmark, prepared, reference, backend):
    call = prepared(reference, backend)
    benchmark.group = reference
    result = benchmark(call)
    assert result is not None
