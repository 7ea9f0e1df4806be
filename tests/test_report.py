"""The run's HTML page: offline, one copy of plotly.js, every scenario string escaped."""

import json
import re

from suite.report import render_html
from suite.report.terminal import summary_table
from suite.results import LatencyResult, RunResult, ThroughputResult, VariantResult

HOSTILE = "<script>alert(1)</script>"


def make_run(quick: bool = False) -> RunResult:
    latency = LatencyResult(batch_size=1, samples_ms=(1.0, 1.2), p50_ms=1.1, p90_ms=1.18, p95_ms=1.19, p99_ms=1.2,
                            mean_ms=1.1, std_ms=0.14, cv=0.13, ci95_p50_ms=(1.0, 1.2), n=2, robust_cv=0.1, outliers=0)
    variants = (
        VariantResult(name=HOSTILE, model="mlp", backend="eager", accuracy=0.97, agreement=1.0, size_bytes=2048,
                      params=10, peak_rss_bytes=2**21, latency=(latency,), throughput=(ThroughputResult(1, 909.1),),
                      warnings=(f"note {HOSTILE}",)),
        VariantResult(name="gone", model="mlp", backend="eager", status="failed", error=HOSTILE),
    )
    return RunResult(suite_version="0.1.0", created="2026-11-23T00:00:00+00:00",
                     scenario={"name": HOSTILE, "description": HOSTILE}, environment={"cpu": HOSTILE},
                     variants=variants, quick=quick)


def test_page_is_self_contained_and_offline():
    page = render_html(make_run())
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ["<script>", "<script>"]  # plotly.js inline, then the chart; nothing fetched
    assert page.count("* plotly.js v") == 1
    assert "<link" not in page
    assert 'id="accuracy-latency"' in page


def test_every_scenario_string_is_escaped():
    page = render_html(make_run())
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_table_holds_the_figures_of_the_results():
    page = render_html(make_run())
    assert "0.9700" in page and "1.1 [1, 1.2]" in page and "909" in page and "2.0" in page
    assert '<tr class="failed">' in page


def test_chart_data_is_the_results():
    page = render_html(make_run())
    call = page[page.index("Plotly.newPlot("):]
    data = json.loads(call[call.index("[{"):call.index("}],") + 2])
    assert data[0]["x"] == [1.1] and data[0]["y"] == [0.97]


def test_quick_runs_are_labelled():
    assert "Quick run" in render_html(make_run(quick=True))
    assert "Quick run" not in render_html(make_run(quick=False))
    assert "quick run" in summary_table(make_run(quick=True)).title
