"""Where variants run: launchers picked by name, the same results in this process and in a child,
bad launcher options as one-line errors, --backend as a new Scenario, and the module structure
that keeps the orchestrator's pieces apart (no import of the runner from below it)."""

from __future__ import annotations

import ast

import pytest

from suite.config.scenario import load
from suite.run.run_plan import RunOptions, on_backend, planned
from tests.conftest import ROOT

SMALL = """
model: {name: mlp, hidden: [16]}
measure: {batch_sizes: [1, 4]}
variants:
  - name: fp32
  - name: int8
    compress: [int8_dynamic]
  - name: on-cpu
    backend: {name: eager, device: cpu}
"""


def test_in_process_and_subprocess_launchers_give_the_same_results(write_scenario, run_quick):
    path = write_scenario(SMALL)
    results = {}
    for launcher in ("in_process", "subprocess"):
        status, _, _, results[launcher] = run_quick(path, "--launcher", launcher)
        assert status == 0
    here, child = results["in_process"]["variants"], results["subprocess"]["variants"]
    assert [(v["name"], v["status"], v["accuracy"], v["agreement"]) for v in here] == [
        (v["name"], v["status"], v["accuracy"], v["agreement"]) for v in child]
    # Only a child pays a process start; in this process the phase is absent or near zero.
    assert all(v["phases"]["start-up"] > 0 for v in child)


@pytest.mark.parametrize("extra, message", [
    (["--launcher", "rya"], "--launcher: unknown launcher 'rya' (did you mean ray?)"),
    (["--launcher", "slurm"], "--launcher: unknown launcher 'slurm' (known: in_process, ray, subprocess)"),
    (["--launcher", "subprocess", "--in-process"], "--in-process and --launcher subprocess: choose one"),
])
def test_bad_launcher_options_are_one_line_errors_and_start_no_run(write_scenario, run_quick, extra, message):
    status, _, err, results = run_quick(write_scenario(SMALL), *extra)
    assert status == 2 and results is None
    assert err.strip().splitlines() == [f"error: {message}"]


def test_backend_option_is_a_new_scenario_with_every_variant_moved(write_scenario):
    scenario = load(write_scenario(SMALL))
    moved, duplicates = on_backend(scenario, "eager")
    assert moved is not scenario and scenario.variants[2].backend.params.device == "cpu"  # the original stays
    assert {v.backend.name for v in moved.variants} == {"eager"}
    assert duplicates == {"on-cpu": "fp32"}  # eager with its default settings: the same as fp32
    _, variants, _ = planned(scenario, RunOptions(only=("int8",), backend="eager"))
    assert [v.name for v in variants] == ["int8"]
    assert on_backend(scenario, None) == (scenario, {})


def imported_modules(path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", ["run/isolation", "run/launchers", "run/bench", "build/building", "run/run_plan",
                                    "analysis/gate"])
def test_no_piece_below_the_runner_imports_it(module):
    assert "suite.run.runner" not in imported_modules(ROOT / "suite" / f"{module}.py")


def test_isolation_names_its_child_entry_point_instead_of_importing_it():
    from suite.run import isolation

    assert not {"suite.run.bench", "suite.build.building"} & imported_modules(ROOT / "suite" / "run" / "isolation.py")
    module, function = isolation.ENTRY.split(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))


def test_quick_is_a_new_scenario_with_smoke_test_settings_everywhere(write_scenario):
    from suite.run.run_plan import QUICK_MEASURE, quickened

    scenario = load(write_scenario("""
        model: {name: gpt2_random, layers: 1, hidden: 32, heads: 2, context: 64, vocab: 300}
        train: {epochs: 50, max_batches: 3}
        measure: {batch_sizes: [1], min_samples: 400, generate: {prompt_lens: [8], new_tokens: 2, text_tokens: 60}}
        variants:
          - name: fp32
          - name: own-measure
            measure: {batch_sizes: [1], min_samples: 31, max_time_s: 60}
        """))
    quick = quickened(scenario)
    assert scenario.measure.min_samples == 400 and scenario.variants[1].measure.min_samples == 31  # unchanged
    for measure in (quick.measure, quick.variants[1].measure, quick.measure_of(quick.variants[0])):
        assert {k: getattr(measure, k) for k in QUICK_MEASURE} == QUICK_MEASURE
    # Generation and training are capped, never raised: 2 new tokens stay 2, 3 batches stay 3.
    assert quick.measure.generate.new_tokens == 2 and quick.measure.generate.text_tokens == 8
    assert quick.variants[1].measure.generate.new_tokens == 2  # its own measure inherits the generate settings
    assert (quick.train.epochs, quick.train.max_epochs, quick.train.max_batches) == (50, 2, 3)
    from suite.build.building import train_config

    assert train_config({"epochs": 30, "batch_size": 8, "lr": 0.1}, quick).epochs == 2
    # Token inputs: their first two lengths (padding shown; each length is a shape more to time).
    tokens = quickened(load(write_scenario("""
        model: bert
        dataset: {name: topics, seq_len: 32}
        measure: {seq_lens: [32, 128, 256]}
        variants: [{name: a}, {name: b, measure: {seq_lens: [64]}}]
        """)))
    assert tokens.measure.seq_lens == (32, 128) and tokens.variants[1].measure.seq_lens == (64,)
