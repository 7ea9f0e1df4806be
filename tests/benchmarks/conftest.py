"""suite's reference models on suite's backends, as pytest-benchmark fixtures: for teams that
already gate with `pytest --benchmark-compare-fail=median:10%`. Not part of the default test run
(`norecursedirs` in pyproject.toml); run them with `tox -e bench` or
`pytest tests/benchmarks --benchmark-only`.

Know its limits: the comparison is a bare threshold on one statistic, with no test of whether
the difference is more than noise, and a failed comparison ends pytest with a traceback.
`suite gate --paired` is the gate to rely on (see the README)."""

from __future__ import annotations

import pytest

import models  # noqa: F401  (registers the model zoo)
from suite.registry import BACKENDS, DATASETS, MODELS

# (model, its parameters, dataset, its parameters): small enough for a CI runner; random weights,
# since latency does not depend on what the weights learned.
REFERENCE = {
    "mlp": ("mlp", {}, "digits", {}),
    "cnn": ("cnn", {}, "digits", {}),
    "resnet20": ("resnet", {"depth": 20}, "digits", {}),
    "lstm": ("lstm", {}, "digits_rows", {}),
}


@pytest.fixture
def prepared():
    """prepared(model, backend, batch_size) -> a zero-argument call running the model on suite's
    backend (with that backend's defaults) on a batch of real test inputs."""
    def prepare(reference: str, backend_name: str, batch_size: int = 1):
        import torch

        model_name, model_params, data_name, data_params = REFERENCE[reference]
        backend_cls = BACKENDS.get(backend_name)
        backend = backend_cls(backend_cls.Params())
        if backend.available():
            pytest.skip(f"{backend_name}: {backend.available()}")
        spec, dataset = MODELS.get(model_name), DATASETS.get(data_name)
        data = dataset.load(dataset.Params(**data_params))
        torch.manual_seed(0)
        model = spec.build(spec.Params(**model_params), data)
        run = backend.prepare(model, data.test.x[:1], data.train.x)
        inputs = backend.place(data.test.x[:batch_size])
        return lambda: run(inputs)

    return prepare
