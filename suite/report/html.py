"""The run's index.html: a table of variants and an accuracy-versus-latency chart.

Works offline: plotly.js is embedded once in the page, no CDN. Every string that comes from a
scenario or a model is escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from suite.results import RunResult, VariantResult, atomic_write_text, measured_shapes

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>suite: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th {{ background: #f2f2f2; }} td.text {{ text-align: left; }}
.quick {{ background: #fff3cd; border: 1px solid #e0c060; padding: 0.6rem; }}
.failed {{ color: #a00; }} .skipped {{ color: #777; }}
.selection {{ background: #e8f4ea; border: 1px solid #8bc59a; padding: 0.6rem; }}
tr.recommended td {{ background: #e8f4ea; font-weight: bold; }}
</style>
<script>{plotly_js}</script>
</head><body>
<h1>{title}</h1>
<p>{description}Run created {created} with suite {version}.</p>
{quick}
{selection}
{warnings}
<h2>Variants</h2>
{table}
<h2>Accuracy versus latency</h2>
{chart}
<h2>Environment</h2>
<pre>{environment}</pre>
<h2>Scenario</h2>
<pre>{scenario}</pre>
</body></html>
"""

QUICK_BANNER = ('<p class="quick"><b>Quick run.</b> These figures come from <code>--quick</code>: '
                'brief training and few samples, a smoke test of the pipeline. Do not decide from them.</p>')


def render_html(run: RunResult) -> str:
    import plotly.offline

    scenario = run.scenario
    return PAGE.format(
        title=escape(str(scenario.get("name", "run"))),
        description=escape(scenario.get("description") or "") + (" " if scenario.get("description") else ""),
        created=escape(run.created), version=escape(run.suite_version),
        quick=QUICK_BANNER if run.quick else "", warnings=warnings_html(run.variants),
        selection=selection_html(run.selection),
        table=variants_table(run.variants, (run.selection or {}).get("recommended")), chart=accuracy_latency_chart(run.variants),
        environment=escape(json.dumps(run.environment, indent=1)),
        scenario=escape(json.dumps(scenario, indent=1)),
        plotly_js=plotly.offline.get_plotlyjs())


def write_html(run: RunResult, path: Path) -> None:
    atomic_write_text(path, render_html(run))


def selection_html(selection: dict | None) -> str:
    if selection is None:
        return ""
    from suite.select import describe

    return '<div class="selection">' + "".join(f"<p>{escape(line)}</p>" for line in describe(selection)) + "</div>"


def warnings_html(variants: tuple[VariantResult, ...]) -> str:
    items = [f'<li class="{v.status}">{escape(v.name)}: {v.status}: {escape(v.error or "")}</li>'
             for v in variants if v.status != "ok"]
    items += [f"<li>{escape(v.name)}: {escape(w)}</li>" for v in variants for w in v.warnings]
    return f"<h2>Warnings</h2><ul>{''.join(items)}</ul>" if items else ""


def variants_table(variants: tuple[VariantResult, ...], recommended: str | None = None) -> str:
    shapes = measured_shapes(variants)
    head = ["variant", "status", "model", "backend", "compress", "accuracy", "agreement"]
    head += [f"p50 ms ({s})" for s in shapes] + [f"samples/s ({s})" for s in shapes]
    head += ["size (KiB)", "params", "peak RSS (MiB)"]
    rows = [table_row(v, shapes, v.name == recommended) for v in variants]
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def table_row(v: VariantResult, shapes: list[str], recommended: bool = False) -> str:
    p50 = {row.shape: f"{row.p50_ms:.4g} [{row.ci95_p50_ms[0]:.4g}, {row.ci95_p50_ms[1]:.4g}]"
           for row in v.latency}
    rate = {row.shape: f"{row.samples_per_s:,.0f}" for row in v.throughput}
    texts = [v.name, v.status, v.model, v.backend, ", ".join(step.get("method", "?") for step in v.compress) or "none"]
    numbers = [_fmt(v.accuracy, ".4f") or (v.accuracy_reason or ""), _fmt(v.agreement, ".4f")]
    numbers += [p50.get(s, "") for s in shapes] + [rate.get(s, "") for s in shapes]
    numbers += [_fmt(v.size_bytes and v.size_bytes / 1024, ",.1f"), _fmt(v.params, ","),
                _fmt(v.peak_rss_bytes and v.peak_rss_bytes / 2**20, ",.0f")]
    cells = [f'<td class="text">{escape(t)}</td>' for t in texts] + [f"<td>{escape(n)}</td>" for n in numbers]
    return f'<tr class="{v.status}{" recommended" if recommended else ""}">' + "".join(cells) + "</tr>"


def accuracy_latency_chart(variants: tuple[VariantResult, ...]) -> str:
    """Accuracy against median latency at the first input shape each variant was measured at."""
    import plotly.graph_objects as go

    points = [(v.name, v.latency[0], v.accuracy) for v in variants if v.latency and v.accuracy is not None]
    if not points:
        return "<p>No variant has both an accuracy and a latency to plot.</p>"
    figure = go.Figure(go.Scatter(
        x=[row.p50_ms for _, row, _ in points], y=[acc for _, _, acc in points],
        error_x={"type": "data", "symmetric": False,
                 "array": [row.ci95_p50_ms[1] - row.p50_ms for _, row, _ in points],
                 "arrayminus": [row.p50_ms - row.ci95_p50_ms[0] for _, row, _ in points]},
        mode="markers+text", text=[name for name, _, _ in points], textposition="top center",
        customdata=[row.shape for _, row, _ in points],
        hovertemplate="%{text}<br>p50 %{x:.4g} ms (%{customdata})<br>accuracy %{y:.4f}<extra></extra>"))
    lowest = min(acc for _, _, acc in points)
    figure.update_yaxes(range=[max(0.0, lowest - 0.05), 1.005])
    figure.update_layout(xaxis_title="median latency, ms (95% CI)", yaxis_title="test accuracy",
                         height=450, margin={"t": 30})
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id="accuracy-latency")


def _fmt(value: float | int | None, spec: str) -> str:
    return "" if value is None else format(value, spec)
