"""A run's index.html: the page a person decides from.

The recommendation and warnings first, then a sortable table of variants, the Pareto fronts,
latency distributions from the raw samples, batch-size and rate curves, every input shape, the
per-layer compression tables, the environment and the exact scenario. Works offline: plotly.js
is embedded once, no CDN. Every string from a scenario or a model is escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from suite.report import figures, tables
from suite.results import RunResult, VariantResult, atomic_write_text, measured_shapes

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1500px; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[data-order=ascending]::after { content: " ▲"; } th[data-order=descending]::after { content: " ▼"; }
td.text { text-align: left; white-space: normal; } th { white-space: normal; }
.quick { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6rem; }
tr.failed td { color: #a00; } tr.skipped td { color: #777; }
.selection { background: #e8f4ea; border: 1px solid #8bc59a; padding: 0.6rem; }
tr.recommended td { background: #e8f4ea; font-weight: bold; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }
"""

QUICK_BANNER = ('<p class="quick"><b>Quick run.</b> These figures come from <code>--quick</code>: '
                'brief training and few samples, a smoke test of the pipeline. Do not decide from them.</p>')


def page(title: str, body: str) -> str:
    import plotly.offline

    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>suite: {escape(title)}</title>'
            f"<style>{STYLE}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>{body}"
            f"<script>{tables.SORT_SCRIPT}</script></body></html>\n")


# A page details (a figure or a section each) at most this many variants' searches and profiles:
# a results file of thousands of variants then renders in seconds, not hours (seen: 4,793
# searched variants, 30 MB, took 35 s, most of it one search figure each; 4.9 s now).
DETAIL_LIMIT = 50


def render_html(run: RunResult, scenario_text: str | None = None) -> str:
    """`scenario_text`: the scenario file as written (the run folder keeps a copy); without it
    the page shows the validated scenario as JSON."""
    name = str(run.scenario.get("name", "run"))
    description = run.scenario.get("description") or ""
    header = (f"<h1>{escape(name)}</h1><p>{escape(description)} Run created {escape(run.created)} with suite "
              f"{escape(run.suite_version)}.</p>" + (QUICK_BANNER if run.quick else ""))
    scenario = scenario_text if scenario_text is not None else json.dumps(run.scenario, indent=1)
    body = (header + selection_html(run.selection) + warnings_html(run.variants) + variant_sections(run)
            + "<h2>Environment</h2>" + tables.key_value_table(run.environment)
            + f"<h2>Scenario</h2><pre>{escape(scenario)}</pre>")
    return page(name, body)


def variant_sections(run: RunResult) -> str:
    shape = tables.headline_shape(run)
    at = f" at {escape(shape)}" if shape else ""
    sections = [f"<h2>Variants{at}</h2><p>Click a column head to sort.</p>" + tables.variants_table(run, shape),
                f"<h2>Pareto fronts{at}</h2>" + pareto_html(run.variants, shape),
                "<h2>Latency distributions</h2><p>A box per variant from its raw samples.</p>"
                + "".join(figures.distribution_figure(run.variants, s, f"distribution-{i}")
                          for i, s in enumerate(measured_shapes(run.variants)))]
    curves = [(title, figure) for title, figure in (
        ("Throughput and latency versus batch size", figures.batch_figure(run.variants, "batch-sizes")),
        ("Server mode: p99 latency versus arrival rate", figures.rate_figure(run.variants, "rates"))) if figure]
    sections += [f"<h2>{title}</h2>{figure}" for title, figure in curves]
    sections += task_sections(run.variants)
    sections += ["<h2>Every input shape</h2>" + tables.shapes_table(run.variants),
                 "<h2>Where the time went</h2><p>Each variant's wall time, seconds, by phase: start-up (its "
                 "process), data, weights, compression, prepare (the backend's build, ONNX export included), "
                 "accuracy (the pass over the test set, first graph builds included), warm-up, sampling (the "
                 "timed samples), harness, energy, load mode.</p>" + tables.phases_table(run.variants),
                 "<h2>Compression, layer by layer</h2>" + tables.compression_tables(run.variants)]
    searched = [v for v in run.variants if v.search]
    if searched:
        sections.append("<h2>Accuracy-aware searches</h2>" + "".join(
            tables.search_html(v, figures.search_figure(v, f"search-{i}") or "")
            for i, v in enumerate(searched[:DETAIL_LIMIT])) + left_out(len(searched), "searches"))
    if any(v.profile for v in run.variants):
        sections.append(profile_html(run, shape))
    return "".join(sections)


def left_out(count: int, what: str) -> str:
    """The page's note for the detail it leaves out past DETAIL_LIMIT variants (results.json has it)."""
    if count <= DETAIL_LIMIT:
        return ""
    return (f"<p>{count - DETAIL_LIMIT:,} more {what} are left out of this page, which details the first "
            f"{DETAIL_LIMIT}: results.json holds them all (<code>suite explain RUN VARIANT</code> prints one).</p>")


def profile_html(run: RunResult, shape: str | None) -> str:
    """Where the time goes (measure.profile): time by operator family, and per variant what
    `suite explain` prints: work, roofline position, top operators, the diff against its
    reference and the reasons it is not faster where it is not."""
    from suite.analysis.explain import explain

    bars = figures.family_figure(run.variants, shape, "operator-families") or ""
    roof = figures.roofline_figure(run.variants, "roofline") or ""
    profiled = [v for v in run.variants if v.profile]
    details = "".join(f"<details><summary>{escape(v.name)}</summary><pre>{escape(chr(10).join(explain(run, v.name)))}"
                      "</pre></details>" for v in profiled[:DETAIL_LIMIT]) + left_out(len(profiled), "profiles")
    return ("<h2>Where the time goes, operator by operator</h2><p>From each backend's own profiler, after the "
            "timed samples; FLOPs and the roofline against this machine's measured limits. A variant's "
            "reasons for not being faster than its reference are drawn from these figures "
            f"(<code>suite explain RUN VARIANT</code> prints the same). The roofline sets each shape's "
            "achieved rate against the roof this run's measured limits draw (lower bounds of the true "
            f"peaks: an int8 kernel can pass the float32 matmul rate).</p>{bars}{roof}{details}")


def pareto_html(variants: tuple[VariantResult, ...], shape: str | None) -> str:
    """Accuracy against latency and size, and against energy when it was measured."""
    def p50(v: VariantResult) -> float | None:
        row = tables.row_at(v, shape)
        return row and row.p50_ms

    costs = [(p50, "median latency, ms", "pareto-latency"),
             (lambda v: v.size_bytes and v.size_bytes / 1024, "size, KiB", "pareto-size")]
    if any(tables.energy_per_inference(v, shape) is not None for v in variants):
        costs.append((lambda v: tables.energy_per_inference(v, shape), "energy, J per inference", "pareto-energy"))
    unplotted = [v.name for v in variants if v.accuracy is None and not v.generation]
    note = (f"<p>Not plotted (no accuracy): {escape(', '.join(unplotted))}.</p>" if unplotted else "")
    trials = search_trials(variants, shape)
    note += (f"<p>The latency plot also shows {len(trials)} trials of accuracy-aware searches at this batch "
             "size (hollow grey): validation accuracy and a short timing plan, not the variants' figures.</p>"
             if trials else "")
    return note + "".join(figures.pareto_figure(variants, cost, title, div_id, trials=trials if i == 0 else [])
                          for i, (cost, title, div_id) in enumerate(costs))


def search_trials(variants: tuple[VariantResult, ...], shape: str | None) -> list[tuple[str, float, float]]:
    """The searches' trials measured at the batch size of `shape` (name, speed in ms, val accuracy),
    for the latency plot; none where the search timed another figure than the median."""
    rows = {v.name: tables.row_at(v, shape) for v in variants}
    return [(f"{v.name}: trial {t.index} ({t.phase}" + (f", {len(t.kept_float)} in float" if t.kept_float else "")
             + (f", {t.value}" if t.value is not None else "") + ")", t.speed_ms, t.val_accuracy)
            for v in variants if v.search and v.search.by == "p50_ms" and rows[v.name] is not None
            and rows[v.name].batch_size == v.search.batch_size
            for t in v.search.trials if t.speed_ms and t.val_accuracy is not None and t.phase != "reference"]


def task_sections(variants: tuple[VariantResult, ...]) -> list[str]:
    """Each task's own section over its variants (suite.tasks: the decoders' quality and speed)."""
    from suite.registry import TASKS
    from suite.tasks import task_of

    mine = {name: tuple(v for v in variants if task_of(v).name == name) for name in TASKS.names()}
    return [section for name, own in mine.items() if own and (section := TASKS.get(name).report_section(own))]


def write_html(run: RunResult, path: Path, scenario_text: str | None = None) -> None:
    atomic_write_text(path, render_html(run, scenario_text))


def selection_html(selection: dict | None) -> str:
    if selection is None:
        return ""
    from suite.analysis.select import describe

    return '<div class="selection">' + "".join(f"<p>{escape(line)}</p>" for line in describe(selection)) + "</div>"


def warnings_html(variants: tuple[VariantResult, ...]) -> str:
    """Failed and skipped variants with the reason, then the warnings, one line per kind with its
    severity (suite.analysis.warning_kinds), each folding its warnings as written."""
    from suite.analysis.warning_kinds import grouped, line

    failed = [f'<li class="{v.status}">{escape(v.name)}: {v.status}: {escape(v.error or "")}</li>'
              for v in variants if v.status != "ok"]
    folded = [f'<details class="{group["severity"]}"><summary>{escape(line(group))}</summary><ul>'
              f"{''.join(f'<li>{escape(w)}</li>' for w in group['warnings'])}</ul></details>"
              for group in grouped(variants)]
    if not failed and not folded:
        return ""
    return "<h2>Warnings</h2>" + (f"<ul>{''.join(failed)}</ul>" if failed else "") + "".join(folded)
