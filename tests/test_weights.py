"""Where weights come from: training, the cache, or the user's checkpoint file."""

import torch

from models.mlp import SPEC
from suite.build.weights import CheckpointCache, cache_key

SCENARIO = """
model: {{name: mlp, hidden: [16]{checkpoint}}}
measure: {{batch_sizes: [2]}}
variants: [{{name: a}}, {{name: b}}]
"""


def test_second_run_loads_the_cached_checkpoint(write_scenario, run_quick):
    path = write_scenario(SCENARIO.format(checkpoint=""))
    status, _, err, first = run_quick(path)
    assert status == 0 and "mlp: trained" in err
    # each variant has its own process: the first trains, the second finds the checkpoint cached
    assert [v["weights"]["source"] for v in first["variants"]] == ["trained", "cache"]
    status, _, err, second = run_quick(path)
    assert status == 0 and "loaded cached checkpoint" in err and "mlp: trained" not in err
    assert {v["weights"]["source"] for v in second["variants"]} == {"cache"}
    assert [v["accuracy"] for v in second["variants"]] == [v["accuracy"] for v in first["variants"]]


def test_cache_key_changes_with_anything_that_determines_the_weights():
    base = {"model": {"name": "mlp", "hidden": [16]}, "seed": 0, "train": {"epochs": 5}}
    assert cache_key(base) == cache_key(dict(reversed(base.items())))
    assert cache_key(base) != cache_key({**base, "seed": 1})
    assert cache_key(base) != cache_key({**base, "train": {"epochs": 6}})


def test_corrupt_cache_entry_is_retrained(tmp_path):
    from suite.build.weights import obtain

    cache = CheckpointCache(tmp_path)
    model = torch.nn.Linear(2, 2)
    weights, record = cache.paths("lin", cache_key({"k": 1}))
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a checkpoint")
    record.write_text("{}")
    got = obtain(model, "lin", None, {"k": 1}, cache, lambda: {"trained": True})
    assert got["source"] == "trained"
    assert got["training"] == {"trained": True}


def test_user_checkpoint_is_loaded_not_trained(write_scenario, tmp_path, run_quick):
    torch.manual_seed(5)
    model = SPEC.build(SPEC.Params(hidden=(16,)), type("Shape", (), {"input_shape": (1, 8, 8), "num_classes": 10}))
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    status, _, err, results = run_quick(write_scenario(SCENARIO.format(checkpoint=", checkpoint: mine.pt")))
    assert status == 0 and "loaded checkpoint" in err and "trained" not in err
    assert results["variants"][0]["weights"] == {"source": "checkpoint", "path": str(tmp_path / "mine.pt")}


def test_checkpoint_that_does_not_fit_is_a_one_line_user_error_and_results_are_kept(write_scenario, tmp_path, run_quick):
    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "other.pt")
    status, _, err, results = run_quick(write_scenario(SCENARIO.format(checkpoint=", checkpoint: other.pt")))
    assert status == 2
    failed = results["variants"][0]
    assert failed["status"] == "failed" and failed["error_type"] == "SuiteError"
    assert failed["error"].startswith(f"{tmp_path / 'other.pt'}: does not fit the model: ")
    assert "\n" not in failed["error"]
    assert "Traceback" not in err


def test_unreadable_checkpoint(write_scenario, tmp_path, run_quick):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    status, _, _, results = run_quick(write_scenario(SCENARIO.format(checkpoint=", checkpoint: junk.pt")))
    assert status == 2
    assert results["variants"][0]["error"].startswith(f"{tmp_path / 'junk.pt'}: cannot read checkpoint")


def test_code_fingerprint_tracks_project_sources_and_package_versions(tmp_path, monkeypatch):
    from importlib import metadata

    from suite.build.weights import code_fingerprint

    (tmp_path / "my_net_v.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_net_v

    model = torch.nn.Sequential(my_net_v.Net(2, 2), torch.nn.ReLU())
    before = code_fingerprint(model)
    assert before["torch"] == metadata.version("torch")
    assert set(before) == {"suite.training", "torch", "my_net_v"}
    (tmp_path / "my_net_v.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass  # changed\n")
    assert code_fingerprint(model)["my_net_v"] != before["my_net_v"]
