import json
import os
import stat

import pytest

from suite.errors import SuiteError
from suite.results import (CSV_COLUMNS, LatencyResult, RunResult, ThroughputResult, VariantResult,
                           atomic_write_text, csv_rows, load_json, save_csv, save_json)


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
    assert list(data)[0] == "schema_version" and data["schema_version"] == 1
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
    (tmp_path / "old.json").write_text('{"schema_version": 0}')
    with pytest.raises(SuiteError, match="schema_version 0 is not 1"):
        load_json(tmp_path / "old.json")
