import json
import os
import stat
from pathlib import Path

import pytest

from suite.errors import SuiteError
from suite.records import BatchThroughput, Fidelity, Footprint, Load, Node, ServerTrial, Weights
from suite.results import (
    CSV_COLUMNS,
    SCHEMA_VERSION,
    LatencyResult,
    RunResult,
    ThroughputResult,
    VariantResult,
    atomic_write_text,
    csv_rows,
    load_json,
    save_csv,
    save_json,
)


def make_run() -> RunResult:
    latency = LatencyResult(batch_size=4, samples_ms=(1.0, 2.0, 3.0), p50_ms=2.0, p90_ms=2.8, p95_ms=2.9,
                            p99_ms=2.98, mean_ms=2.0, std_ms=1.0, cv=0.5, ci95_p50_ms=(1.0, 3.0), n=3, robust_cv=0.7, outliers=0)
    ok = VariantResult(name="a", model="mlp", backend="eager", accuracy=0.9, agreement=1.0, size_bytes=10,
                       params=5, peak_rss_bytes=100, latency=(latency,),
                       throughput=(ThroughputResult(4, 2000.0),), warnings=("w",))
    failed = VariantResult(name="b", model="mlp", backend="eager", status="failed", error="boom")
    return RunResult(suite_version="0", created="2026-01-01T00:00:00+00:00", scenario={"name": "s"},
                     environment={"cpu": "x"}, variants=(ok, failed))


def test_json_round_trip_and_contract_names(tmp_path):
    run = make_run()
    save_json(run, tmp_path / "results.json")
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data)[0] == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert data["variants"][0]["latency"][0]["ci95_p50_ms"] == [1.0, 3.0]
    assert load_json(tmp_path) == run


def test_csv_has_a_row_per_variant_and_batch_size(tmp_path):
    rows = csv_rows(make_run())
    assert [(r["variant"], r.get("batch_size")) for r in rows] == [("a", 4), ("b", None)]
    assert rows[0]["samples_per_s"] == 2000.0
    save_csv(make_run(), tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)


def test_atomic_write_leaves_no_temporary_file_and_a_readable_file(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "one")
    atomic_write_text(tmp_path / "x.txt", "two")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    assert (tmp_path / "x.txt").read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o666 & ~mask


def test_failed_write_keeps_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "old")
    with pytest.raises(TypeError):
        atomic_write_text(tmp_path / "x.txt", object())  # type: ignore[arg-type]
    assert (tmp_path / "x.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(SuiteError, match="file not found"):
        load_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_json(tmp_path / "bad.json")
    for version, says in ((0, "not a suite results file"), ("2", "not a suite results file"),
                          (True, "not a suite results file"), (None, "not a suite results file"),
                          (SCHEMA_VERSION + 1, "written by a newer suite: upgrade suite")):
        (tmp_path / "other.json").write_text(json.dumps({"schema_version": version}))
        with pytest.raises(SuiteError, match=f"schema_version .* is not one this suite reads .*{says}"):
            load_json(tmp_path / "other.json")


V1 = Path(__file__).parent / "data" / "results-v1"


@pytest.mark.parametrize("name", ["classifier", "decoder", "ray"])
def test_results_written_by_schema_1_still_load_typed(name, tmp_path):
    """Files written by `suite run` at schema version 1 (the code of 2026-12-02: an MLP with int8,
    pruning + fine-tuning, server and offline modes, ONNX Runtime and a skipped TensorRT; a tiny
    GPT-2; two variants on a Ray node) load into today's typed records, and save and load again
    unchanged at today's version."""
    source = json.loads((V1 / f"{name}.json").read_text())
    assert source["schema_version"] == 1
    run = load_json(V1 / f"{name}.json")
    assert [v.name for v in run.variants] == [v["name"] for v in source["variants"]]
    for old, new in zip(source["variants"], run.variants, strict=False):
        assert new.status == old["status"] and [r.p50_ms for r in new.latency] == [r["p50_ms"] for r in old["latency"]]
        if old.get("weights"):
            assert isinstance(new.weights, Weights) and new.weights.source == old["weights"]["source"]
            assert new.weights.training.epochs_run == old["weights"]["training"]["epochs_run"]
        if old.get("fidelity"):
            assert isinstance(new.fidelity, Fidelity)
            assert all(getattr(new.fidelity, k) == v for k, v in old["fidelity"].items())
        assert [r.method for r in new.compress_records] == [r["method"] for r in old.get("compress_records", ())]
        assert all(isinstance(r.after, Footprint) for r in new.compress_records)
        if old.get("node"):
            assert isinstance(new.node, Node) and new.node.node_id == old["node"]["node_id"]
        if old.get("load"):
            assert isinstance(new.load, Load) and new.load.mode == old["load"]["mode"]
    save_json(run, tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert load_json(tmp_path / "results.json") == run


def test_the_offline_mode_rates_migrate_from_text_keys_to_rows():
    run = load_json(V1 / "classifier.json")
    [offline] = [v for v in run.variants if v.name == "offline"]
    old = next(v for v in json.loads((V1 / "classifier.json").read_text())["variants"] if v["name"] == "offline")
    rates = old["load"]["samples_per_s_by_batch_size"]
    assert offline.load.by_batch_size == tuple(BatchThroughput(int(b), rate) for b, rate in rates.items())
    assert offline.load.best_batch_size == old["load"]["best_batch_size"]
    [served] = [v for v in run.variants if v.name == "served"]
    assert all(isinstance(t, ServerTrial) for t in served.load.trials) and served.load.latency_bound_ms == 50


def test_a_saved_variant_of_schema_1_resumes(tmp_path):
    """A run interrupted under schema 1 (variants/<key>.json without a version) is read by --resume."""
    from suite.run.run_folder import RunFolder, key

    old = next(v for v in json.loads((V1 / "classifier.json").read_text())["variants"] if v["name"] == "offline")
    folder = RunFolder(tmp_path)
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / f"{key('offline')}.json").write_text(json.dumps(old))
    loaded = folder.finished("offline")
    assert loaded.load.by_batch_size[0].batch_size == 1
    folder.save_variant(loaded)
    assert json.loads((tmp_path / "variants" / f"{key('offline')}.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert folder.finished("offline") == loaded


@pytest.mark.parametrize("field, value, where", [
    ("weights", {"source": "downloaded"}, "weights.source"),
    ("fidelity", {"cosine_min": "high"}, "fidelity.cosine_min"),
    ("load", {"mode": "server", "trials": [{"rate_qps": 1.0}]}, "load.trials[0]"),
    ("compress_records", [{"method": "x", "params": {}, "before": {"size_bytes": 1}}], "compress_records[0]"),
    ("node", {"node_id": 7}, "node"),
    ("phases", {"data": "slow"}, "phases.data"),
])
def test_a_record_of_the_wrong_shape_is_a_one_line_error_naming_it(tmp_path, field, value, where):
    data = json.loads((V1 / "classifier.json").read_text())
    data["variants"][0][field] = value
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(SuiteError) as error:
        load_json(tmp_path / "results.json")
    assert f"variants[0].{where}" in str(error.value) and "\n" not in str(error.value)
