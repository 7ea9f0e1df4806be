"""The seams' contracts, checked for every registered plugin: every attribute the core reads of a
backend or a task is declared, with its default, in its base class (suite.backends.base.Backend,
suite.tasks.base.Task), every plugin subclasses it, and the core reads them without probing
(no getattr on a backend or decoder outside the backends)."""

from __future__ import annotations

import ast
import inspect

import pytest

from suite.backends.base import Backend
from suite.config.params import Params
from suite.config.scenario import FORMATS
from suite.lm import DecoderContract
from suite.registry import BACKENDS, MODELS, TASKS
from suite.tasks.base import Task
from tests.conftest import ROOT

BACKEND_ATTRIBUTES = ("Params", "description", "takes", "tasks", "runs_model_file", "profile_ops", "available",
                      "version", "describe", "prepare", "prepare_decoder", "place", "to_host", "synchronize")
DECODER_ATTRIBUTES = ("max_batch", "file_bytes", "weights_read_bytes", "profile_ops", "timed_request", "load_sweep",
                      "retokenized")
# Settings a backend cannot be built without (the server an endpoint talks to); others' defaults do.
REQUIRED_SETTINGS = {"endpoint": {"url": "http://127.0.0.1:1"}}
TASK_METHODS = ("conflict", "prepare", "measure", "ready", "paired", "search_problem", "judge", "sample_batches",
                "train", "select", "report_section")


def test_the_base_class_declares_every_attribute_the_core_reads():
    for name in BACKEND_ATTRIBUTES:
        assert hasattr(Backend, name), name
    for name in DECODER_ATTRIBUTES:
        assert hasattr(DecoderContract, name) and getattr(DecoderContract, name) is None, name


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_meets_the_contract(name):
    cls = BACKENDS.get(name)
    assert issubclass(cls, Backend), f"{cls.__name__} does not subclass suite.backends.base.Backend"
    assert issubclass(cls.Params, Params) and cls.Params is not Params
    assert cls.description and set(cls.takes) <= set(FORMATS), cls.takes
    assert cls.tasks and set(cls.tasks) <= set(TASKS.names()), cls.tasks
    assert isinstance(cls.runs_model_file, bool)
    assert cls.profile_ops is None or callable(cls.profile_ops)
    # A backend that says it runs decoders has its own prepare_decoder; one that does not, not.
    assert ("generate" in cls.tasks) == (cls.prepare_decoder is not Backend.prepare_decoder), name
    instance = cls(cls.Params(**REQUIRED_SETTINGS.get(name, {})))
    reason = instance.available()
    assert reason is None or (isinstance(reason, str) and reason)
    if reason is None:
        assert isinstance(instance.version(), str) and isinstance(instance.describe(), dict)
        assert "device" in instance.describe()


def test_a_backend_that_runs_no_decoder_says_so():
    from suite.errors import SuiteError

    cls = BACKENDS.get("onnxruntime")
    with pytest.raises(SuiteError, match="runs no generative decoder"):
        cls(cls.Params()).prepare_decoder(None, "dynamic", None)


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_meets_the_contract(name):
    task = TASKS.get(name)
    assert isinstance(task, Task) and task.name == name and task.description and task.judged
    for method in TASK_METHODS:
        assert callable(getattr(task, method)), method
    overridden = [m for m in ("prepare", "measure", "ready", "paired", "judge", "sample_batches", "train", "select")
                  if getattr(type(task), m) is getattr(Task, m)]
    assert not overridden, f"task {name} leaves {overridden} to the base class, which cannot do them"


def test_every_model_names_a_registered_task():
    for name in MODELS.names():
        assert MODELS.get(name).task in TASKS.names(), name


def probes() -> list[str]:
    """getattr(x, "...") calls in the core whose object is a backend or a decoder."""
    found = []
    for path in (ROOT / "suite").rglob("*.py"):
        if "backends" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and node.args and any(word in ast.unparse(node.args[0]).lower() for word in ("backend", "decoder"))):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_core_does_not_probe_backends():
    assert probes() == []


def test_the_probe_check_finds_a_probe(tmp_path, monkeypatch):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "x.py").write_text("def f(backend):\n    return getattr(backend, 'tasks', ())\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert probes() == ["suite/x.py:2: getattr(backend, 'tasks', ())"]


def test_launchers_get_a_small_context_not_the_bench():
    from suite.run.launchers import LAUNCHERS, Launch

    for name in LAUNCHERS.names():
        first = list(inspect.signature(LAUNCHERS.get(name).__init__).parameters.values())[1]
        assert first.annotation in ("Launch", Launch), (name, first.annotation)
