"""The run's HTML page, summary.md and the page comparing runs: their figures are the results'.

The page as a person sees it (a real browser) is tested in test_report_browser.py."""

import json
import re
from dataclasses import replace

from suite.__main__ import main
from suite.analysis.compare import compare_runs
from suite.measure.processes import speedup_text
from suite.report import markdown, render_html, render_summary
from suite.report.comparison import load_runs, matched_rows, render_comparison
from suite.report.figures import MAX_BOX_POINTS, box_points, pareto_front, shown
from suite.report.tables import headline_shape, significant
from suite.report.terminal import summary_table
from suite.results import save_json
from tests.report_runs import HOSTILE, latency, rich_run, variant


def plot_data(page: str, div_id: str) -> list[dict]:
    """The traces plotly draws in one chart, read back from the page."""
    start = page.index(f'document.getElementById("{div_id}")')
    call = page[page.index("Plotly.newPlot(", start - 400):]
    return json.JSONDecoder().raw_decode(call[call.index("["):])[0]


def test_page_is_self_contained_and_offline():
    page = render_html(rich_run())
    assert page.count("* plotly.js v") == 1
    bundle_start = page.index("<script>") + len("<script>")
    ours = page[:bundle_start] + page[page.index("</script>", bundle_start):]  # the page less plotly.js
    assert all("src" not in tag for tag in re.findall(r"<script[^>]*>", ours))
    assert "<link" not in ours and "http" not in ours.replace("http-equiv", "")
    for div in ("pareto-latency", "pareto-size", "pareto-energy", "distribution-0", "distribution-1",
                "batch-sizes", "rates"):
        assert f'id="{div}"' in page


def test_every_scenario_string_is_escaped():
    page = render_html(rich_run())
    assert "alert(1)</script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # title, name, cells, warnings, layer, env


def test_pareto_front_of_known_points():
    points = [(1.0, 0.90), (2.0, 0.95), (3.0, 0.94), (2.0, 0.95), (0.5, 0.80), (4.0, 0.99)]
    assert pareto_front(points) == [True, True, False, True, True, True]


def test_pareto_front_in_one_sort_agrees_with_every_pair_compared():
    import random

    def by_pairs(points):
        return [not any(ox <= x and oy >= y and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
                for i, (x, y) in enumerate(points)]

    rng = random.Random(0)
    for _ in range(2000):  # few distinct values: ties in cost, in accuracy and in both
        points = [(rng.choice((0.1, 0.2, 1.0, 3.0)), rng.choice((0.5, 0.9, 1.0))) for _ in range(rng.randint(0, 10))]
        assert pareto_front(points) == by_pairs(points), points


def test_pareto_chart_draws_the_front_and_fades_the_rest():
    traces = plot_data(render_html(rich_run()), "pareto-latency")
    line, front, dominated = traces
    assert front["text"] == ["int8", shown(HOSTILE)] and dominated["text"] == ["fp32"]  # plotly draws &lt; as <
    run = rich_run()
    p50 = {v.name: v.latency[0].p50_ms for v in run.variants if v.latency}
    assert front["x"] == [p50["int8"], p50[HOSTILE]] and front["y"] == [0.94, 0.97]
    assert dominated["x"] == [p50["fp32"]] and dominated["marker"]["opacity"] < 1
    assert line["x"] == front["x"] and line["line"]["shape"] == "hv"


def test_energy_and_size_fronts_use_their_own_costs():
    page = render_html(rich_run())
    energy = plot_data(page, "pareto-energy")
    assert sorted(energy[1]["x"] + energy[2]["x"]) == [0.01, 0.02]  # the hostile variant has no energy
    size = plot_data(page, "pareto-size")
    assert sorted(size[1]["x"] + size[2]["x"]) == [100.0, 300.0, 400.0]


def test_distributions_are_the_raw_samples():
    run = rich_run()
    boxes = plot_data(render_html(run), "distribution-0")
    assert [b["name"] for b in boxes] == [shown(HOSTILE), "int8", "fp32"]  # drawn bottom-up: first variant on top
    assert boxes[-1]["x"] == list(run.variants[0].latency[0].samples_ms)


def test_long_sample_runs_are_drawn_from_their_quantiles():
    row = latency(1, list(range(1, 10_001)))
    points = box_points(row)
    assert len(points) == MAX_BOX_POINTS and points[0] == 1 and points[-1] == 10_000
    assert abs(sorted(points)[MAX_BOX_POINTS // 2] - 5000) < 10


def test_batch_and_rate_curves_are_the_results():
    run = rich_run()
    page = render_html(run)
    batch = plot_data(page, "batch-sizes")
    fp32 = run.variants[0]
    assert batch[0]["name"] == "fp32" and batch[0]["x"] == [1, 8]
    assert batch[0]["y"] == [t.samples_per_s for t in fp32.throughput]
    assert batch[1]["y"] == [r.p50_ms for r in fp32.latency]
    rates = plot_data(page, "rates")
    assert rates[0]["x"] == [100.0, 150.0, 200.0] and rates[0]["y"] == [3.0, 4.5, 9.0]


def test_table_holds_the_figures_and_sorts_by_value():
    run = rich_run()
    page = render_html(run)
    fp32 = run.variants[0].latency[0]
    assert f'data-v="{float(fp32.p50_ms)!r}">{significant(fp32.p50_ms)}<' in page
    assert '<tr class="ok recommended">' in page and '<tr class="failed">' in page
    assert "J/inference" in page and "table.sortable th" in page
    int8, fp32_b1 = run.variants[1].latency[0], run.variants[0].latency[0]  # int8 against the fastest uncompressed
    value = fp32_b1.p50_ms / int8.p50_ms
    text = speedup_text(fp32_b1, int8)  # with its interval, and "tied" where that holds 1
    assert text.startswith(f"{value:.2f}x (")
    assert "speed-up vs fastest uncompressed" in page and f'data-v="{value!r}">{text} vs fp32<' in page


def test_columns_no_variant_has_are_left_out():
    run = rich_run()
    no_energy = run.__class__(**{**run.__dict__, "variants": tuple(v.__class__(**{**v.__dict__, "energy": None})
                                                                  for v in run.variants)})
    assert "J/inference" not in render_html(no_energy)


def test_compression_table_per_layer():
    page = render_html(rich_run())
    section = page[page.index("Compression, layer by layer"):]
    assert "int8_dynamic: 4.0 KiB, 1,000 weights, sparsity 0.0% → 1.0 KiB, 1,000 weights, sparsity 40.0%" in section
    assert '<td class="text">fc1</td><td class="text">Linear</td><td class="text">int8</td>' in section
    assert '<td data-v="0.5">50.0%</td>' in section


def test_headline_shape_is_the_selections_else_the_commonest():
    run = rich_run()
    assert headline_shape(run) == "b=1"
    assert headline_shape(run.__class__(**{**run.__dict__, "selection": None})) == "b=1"
    assert significant(12043.2) == "12,043" and significant(0.012345) == "0.01235" and significant(1.5) == "1.500"


def test_quick_runs_are_labelled():
    run = rich_run()
    quick = run.__class__(**{**run.__dict__, "quick": True})
    assert "Quick run" in render_html(quick) and "Quick run" not in render_html(run)
    assert "quick run" in summary_table(quick).title and "Quick run" in render_summary(quick)


def test_summary_markdown_table():
    summary = render_summary(rich_run())
    lines = summary.splitlines()
    assert lines[0].startswith("## &lt;script&gt;") and "figures at b=1" in lines[0]
    assert any(line.startswith("Recommended: int8") for line in lines)
    header = next(line for line in lines if line.startswith("| variant"))
    rows = [line for line in lines if line.startswith("| ") and line != header]
    assert len(rows) == 4 and all(row.count(" | ") == header.count(" | ") for row in rows)
    assert "J/inference" in header and "- gone: failed: &lt;script&gt;" in summary
    assert markdown.text("a|b\n<i>") == "a\\|b &lt;i&gt;"  # one cell, one line, no HTML


def test_two_runs_compared_as_suite_compare_judges_them(tmp_path):
    """The page's ratio, interval, p-value and verdict for every pair are suite.analysis.compare's."""
    first, second = tmp_path / "a", tmp_path / "b"
    save_json(rich_run("2026-11-20T00:00:00+00:00"), first / "results.json")
    save_json(rich_run("2026-11-21T00:00:00+00:00", slower=1.5), second / "results.json")
    runs = load_runs([first, second / "results.json"])
    assert [label for label, _ in runs] == ["#1 a @abcdef12", "#2 b @abcdef12"]
    matched = matched_rows(runs, 0)
    assert set(matched) == {(name, shape) for name in ("fp32", "int8", HOSTILE) for shape in ("b=1", "b=8")}
    page = render_comparison(runs, 0)
    rows = compare_runs(runs[0][1], runs[1][1])
    assert {(row.variant, row.shape) for row in rows} == set(matched)
    for row in rows:
        c = row.comparison
        assert f'data-v="{c.ratio!r}">{c.ratio:.3f}<' in page
        assert f"{c.ci_low:.3f} – {c.ci_high:.3f}" in page and c.verdict() == "slower"
    assert page.count(">slower<") == len(rows)
    assert "alert(1)</script>" not in page
    history = plot_data(page, "history")
    assert history[0]["name"] == "fp32 b=1" and len(history[0]["y"]) == 2


def test_the_page_names_what_differs_from_the_reference(tmp_path):
    from dataclasses import replace

    base = rich_run()
    other = replace(base, environment={**base.environment, "cores": 64, "torch": "9.9"})
    page = render_comparison([("#1 a", base), ("#2 b", other)], 0)
    assert "cores: 2 vs 64" in page and "torch: None vs &#x27;9.9&#x27;" in page
    assert "(the reference)" in page and page.count("this run&#x27;s host") + page.count("this run's host") == 2


def test_report_command(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    save_json(rich_run(), first / "results.json")
    save_json(rich_run(slower=2.0), second / "results.json")
    assert main(["report", str(first)]) == 0
    assert (first / "index.html").is_file() and (first / "summary.md").is_file()
    out = tmp_path / "cmp.html"
    assert main(["report", str(first), str(second), "-o", str(out), "--reference", "2"]) == 0
    assert "Reference: #2 b" in out.read_text()
    assert main(["report", str(first), str(second), "--reference", "3", "-o", str(out)]) == 2
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_phases_table_adds_the_steps_up():
    from dataclasses import replace

    from suite.report.tables import phases_table

    run = rich_run()
    timed = replace(run.variants[0], seconds=10.0, phases={"start-up": 1.0, "compress: channel": 1.5,
                                                             "compress: finetune": 2.5, "sampling": 5.0})
    table = phases_table((timed, run.variants[1]))
    assert table.count("<tr") == 2  # the header and the one variant that has phases
    assert '<td data-v="4.0">4.00</td>' in table and '<td data-v="0.5">50%</td>' in table  # compress summed
    assert "No variant recorded" in phases_table(run.variants)
    assert "Where the time went" in render_html(replace(run, variants=(timed,)))


def test_weights_a_backend_compressed_itself_make_a_compressed_variant():
    """ort_genai int8 (no compression step, the backend's own int8 weights) is neither the
    uncompressed peer a compressed variant's speed-up is taken against, nor shown uncompressed."""
    from suite.analysis.explain import compression_steps, fastest_uncompressed, steps

    fp32 = variant("fp32", 2.0, 0.9, 100)
    own_int8 = variant("ort-int8", 0.5, 0.9, 30, backend="ort_genai", backend_info={"compressed_weights": "int8"})
    int8 = variant("int8", 1.0, 0.9, 30, compress=({"method": "int8_dynamic"},))
    run = replace(rich_run(), variants=(fp32, own_int8, int8))
    assert fastest_uncompressed(run, int8).name == "fp32"  # not the faster ort-int8
    assert fastest_uncompressed(run, own_int8).name == "fp32"
    assert compression_steps(own_int8) == ["ort_genai int8 weights"] and steps(own_int8) == ", ort_genai int8 weights"
    assert compression_steps(fp32) == [] and steps(fp32) == ", uncompressed"
    page = render_html(run)
    assert "ort_genai int8 weights" in page
    b1 = own_int8.latency[0]
    assert f"{speedup_text(fp32.latency[0], b1)} vs fp32<" in page  # its speed-up column is filled
