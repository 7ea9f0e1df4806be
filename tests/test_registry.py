import sys

import pytest

from suite.errors import SuiteError
from suite.registry import BACKENDS, DATASETS, METHODS, MODELS, Registry, UnknownName, did_you_mean


def test_entries_are_imported_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_plugin_home.py").write_text(
        "from tests_registry_target import REG\nREG.register('thing', 'lazy_plugin_impl:VALUE')\n")
    (tmp_path / "lazy_plugin_impl.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("widget", home="lazy_plugin_home")
    monkeypatch.setitem(sys.modules, "tests_registry_target", type(sys)("tests_registry_target"))
    sys.modules["tests_registry_target"].REG = registry
    assert registry.names() == ["thing"]
    assert "lazy_plugin_impl" not in sys.modules
    assert registry.get("thing") == 42
    assert "lazy_plugin_impl" in sys.modules


def test_duplicate_names_are_refused():
    registry = Registry("widget", home="json")
    registry.register("a", "json:dumps")
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        registry.register("a", "json:loads")


def test_malformed_target_is_refused():
    with pytest.raises(ValueError, match="module:attr"):
        Registry("widget", home="json").register("a", "json.dumps")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownName, match=r"unknown backend 'eagr' \(did you mean eager\?\)"):
        BACKENDS.check("eagr")


def test_unknown_name_is_a_user_error_and_a_value_error():
    with pytest.raises(SuiteError):
        MODELS.check("nothing-like-it")
    assert issubclass(UnknownName, ValueError)


def test_did_you_mean_lists_known_names_when_nothing_is_close():
    assert did_you_mean("zzz", ["b", "a"]) == " (known: a, b)"
    assert did_you_mean("zzz", []) == " (none available)"


@pytest.mark.parametrize("registry", [MODELS, DATASETS, BACKENDS, METHODS], ids=lambda r: r.kind)
def test_every_registered_entry_imports_and_has_params(registry):
    for name in registry.names():
        entry = registry.get(name)
        assert entry.Params.model_config["extra"] == "forbid"
        assert entry.description


def test_import_suite_and_validate_do_not_import_torch():
    import subprocess

    code = ("import sys; from suite.config import scenario; scenario.load('scenarios/mlp.yaml'); "
            "from suite.__main__ import main; main(['list']); "
            "assert 'torch' not in sys.modules and 'plotly' not in sys.modules and 'sklearn' not in sys.modules")
    from tests.conftest import ROOT

    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
