"""The command line: exit codes (0 ok, 2 user error), one-line errors, outputs on disk."""

import subprocess
import sys

import pytest

from suite.__main__ import main
from tests.conftest import ROOT

SMALL = """
model: {name: mlp, hidden: [16]}
measure: {batch_sizes: [1, 4]}
variants:
  - name: fp32
  - name: cpu
    backend: {name: eager, device: cpu}
"""


def test_validate_ok_and_errors(write_scenario, capsys):
    good = write_scenario(SMALL, "good.yaml")
    bad = write_scenario("model: mlpp\nvariants: [{name: a}]\n", "bad.yaml")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad), str(good.parent / "missing.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {bad}: model: unknown model 'mlpp' (did you mean mlp?)",
                   f"error: {good.parent / 'missing.yaml'}: file not found"]


def test_real_exit_status_and_no_traceback(write_scenario):
    bad = write_scenario("model: mlp\nmeasure: {batch_sizes: [-1]}\nvariants: [{name: a}]\n")
    done = subprocess.run([sys.executable, "-m", "suite", "validate", str(bad)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"error: {bad}: measure.batch_sizes[0]: input should be greater than 0 (got -1)\n"


def test_run_with_a_bad_scenario_runs_nothing(write_scenario, tmp_path, capsys):
    good = write_scenario(SMALL, "good.yaml")
    bad = write_scenario("model: mlp\nvariants: [{name: a, backend: onnxrt}]\n", "bad.yaml")
    assert main(["run", str(good), str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "variants[0].backend: unknown backend 'onnxrt'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_list_shows_every_kind_and_backend_availability(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("models:", "compression methods (availability on CPU):", "datasets:", "backends:"):
        assert heading in out
    assert "mlp" in out and "digits" in out
    assert "eager                  available" in out and "compile                available" in out
    assert "int8_dynamic           available" in out
    assert "semi_structured_2_4    unavailable: 2:4 semi-structured sparsity runs on NVIDIA GPUs only" in out


def test_run_writes_json_csv_and_html_and_only_filters(write_scenario, run_quick):
    status, out, err, results = run_quick(write_scenario(SMALL), "--only", "cpu")
    assert status == 0
    assert [v["name"] for v in results["variants"]] == ["cpu"]
    run_dir = (ROOT / out.splitlines()[-1].removeprefix("report: ")).parent
    assert {p.name for p in run_dir.iterdir()} == {"results.json", "results.csv", "index.html", "summary.md",
                                                  "run.json", "scenario.yaml", "variants", "outputs", "logs"}
    assert [p.name.split("-")[0] for p in (run_dir / "variants").iterdir()] == ["cpu"]
    assert len((run_dir / "results.csv").read_text().splitlines()) == 1 + 2  # header + 2 batch sizes
    assert "Quick run" in (run_dir / "index.html").read_text()
    assert "| cpu | ok | eager |" in (run_dir / "summary.md").read_text()


def test_unknown_only_variant_is_a_user_error(write_scenario, run_quick):
    status, _, err, results = run_quick(write_scenario(SMALL), "--only", "fp3")
    assert status == 2 and results is None
    assert err.strip().endswith("--only: unknown variant 'fp3' (did you mean fp32?)")


def test_agreement_is_with_the_baseline(write_scenario, run_quick):
    text = SMALL + "baseline: cpu\n"
    _, _, _, results = run_quick(write_scenario(text))
    assert [v["name"] for v in results["variants"]] == ["cpu", "fp32"]  # the baseline runs first
    assert {v["agreement_with"] for v in results["variants"]} == {"cpu"}
    assert results["variants"][0]["agreement"] == 1.0
    assert results["variants"][1]["agreement"] == 1.0  # same weights, same device


def test_unavailable_backend_is_skipped_with_its_reason(write_scenario, run_quick):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    text = "model: {name: mlp, hidden: [8]}\nvariants: [{name: a}, {name: gpu, backend: {name: eager, device: cuda}}]\n"
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 0
    skipped = results["variants"][1]
    assert skipped["status"] == "skipped" and "CUDA is not available" in skipped["error"]
    assert skipped["latency"] == [] and skipped["accuracy"] is None
