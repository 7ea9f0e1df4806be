"""The report's plotly figures, each built from results only and returned as a <div>.

Names from scenarios go into the figures as data; plotly writes them into the page as JSON with
`<`, `>` and `/` escaped. Plotly reads its text as a little HTML of its own (`<a href>`, `<b>`,
`<br>`), so every name goes in through `shown`, with `&`, `<` and `>` as entities, which plotly
draws as those characters (tested in a browser, tests/test_report_browser.py).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import numpy as np

from suite.results import LatencyResult, VariantResult

MAX_BOX_POINTS = 2000  # samples drawn per box; more are replaced by that many evenly spaced quantiles
FADED = 0.3


def shown(name: str) -> str:
    """A name as plotly text: drawn as written, never as plotly's markup."""
    return escape(name, quote=False)


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points, lower cost and higher accuracy better: which are on the front
    (no other point at least as good on both and better on one). One sort and one sweep: a page
    of thousands of variants draws in a moment."""
    import itertools

    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    on_front, best = [False] * len(points), float("-inf")  # best: the top accuracy at any lower cost
    for _, same_cost in itertools.groupby(order, key=lambda i: points[i][0]):
        same_cost = list(same_cost)
        top = points[same_cost[0]][1]  # sorted first
        for i in same_cost:
            on_front[i] = points[i][1] == top and top > best
        best = max(best, top)
    return on_front


def accuracy_of(v: VariantResult) -> float | None:
    return v.accuracy


def pareto_figure(variants: tuple[VariantResult, ...], cost: Callable[[VariantResult], float | None],
                  axis_title: str, div_id: str, quality: Callable[[VariantResult], float | None] = accuracy_of,
                  quality_title: str = "test accuracy", lower_better: bool = False,
                  trials: list[tuple[str, float, float]] = ()) -> str:
    """Quality (accuracy; or perplexity, `lower_better`) against a cost (latency, size, energy):
    the front drawn, dominated variants faded; `trials` (name, cost, quality), a search's trials,
    drawn apart: they are not variants and take no part in the front."""
    import plotly.graph_objects as go

    points = [(shown(v.name), cost(v), quality(v)) for v in variants if quality(v) is not None and cost(v) is not None]
    if not points:
        return f"<p>No variant has both a {escape(quality_title)} and a {escape(axis_title)} to plot.</p>"
    on_front = pareto_front([(x, -y if lower_better else y) for _, x, y in points])
    front = sorted((x, y, name) for (name, x, y), keep in zip(points, on_front, strict=False) if keep)
    dominated = [point for point, keep in zip(points, on_front, strict=False) if not keep]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[x for x, _, _ in front], y=[y for _, y, _ in front], mode="lines",
                                line_shape="hv", hoverinfo="skip", showlegend=False,
                                line={"color": "#2a7a3b", "dash": "dot"}))
    hover = "%{text}<br>%{x:.4g}<br>" + quality_title + " %{y:.4f}<extra>%{fullData.name}</extra>"
    figure.add_trace(go.Scatter(x=[x for x, _, _ in front], y=[y for _, y, _ in front], text=[n for _, _, n in front],
                                mode="markers+text", textposition="top center", name="on the Pareto front",
                                marker={"size": 11, "color": "#2a7a3b"}, hovertemplate=hover))
    figure.add_trace(go.Scatter(x=[x for _, x, _ in dominated], y=[y for _, _, y in dominated],
                                text=[n for n, _, _ in dominated], mode="markers", name="dominated",
                                marker={"size": 10, "color": "#1f5fa8", "opacity": FADED}, hovertemplate=hover))
    if trials:
        figure.add_trace(go.Scatter(x=[x for _, x, _ in trials], y=[y for _, _, y in trials],
                                    text=[shown(n) for n, _, _ in trials], mode="markers",
                                    name="search trials (validation accuracy, short timing plan)",
                                    marker={"size": 7, "symbol": "circle-open", "color": "#7f7f7f"},
                                    hovertemplate="%{text}<br>%{x:.4g}<br>val accuracy %{y:.4f}<extra></extra>"))
    xs = [x for _, x, _ in points] + [x for _, x, _ in trials]
    low, high = np.log10(min(xs)), np.log10(max(xs))
    pad = 0.1 * max(high - low, 1.0)  # room for the labels at both ends
    figure.update_xaxes(title=axis_title, type="log", range=[low - pad, high + pad])
    figure.update_yaxes(title=quality_title)
    return to_div(figure, div_id, height=450)


def distribution_figure(variants: tuple[VariantResult, ...], shape: str, div_id: str) -> str:
    """One box per variant from its raw latency samples at one input shape."""
    import plotly.graph_objects as go

    rows = [(shown(v.name), row) for v in reversed(variants) for row in v.latency if row.shape == shape]  # first on top
    figure = go.Figure([go.Box(x=box_points(row), name=name, boxpoints="outliers", orientation="h",
                               hovertemplate="%{x:.4g} ms<extra>" + f"{len(row.samples_ms)} samples</extra>")
                        for name, row in rows])
    figure.update_xaxes(title=f"latency, ms ({shape}; log scale)", type="log")
    figure.update_layout(showlegend=False)
    return to_div(figure, div_id, height=max(260, 60 + 34 * len(rows)))


def box_points(row: LatencyResult) -> list[float]:
    """The raw samples, or MAX_BOX_POINTS evenly spaced quantiles of them: the same box and a
    page that stays small however long the run measured."""
    samples = np.asarray(row.samples_ms)
    if len(samples) <= MAX_BOX_POINTS:
        return samples.tolist()
    return np.quantile(samples, np.linspace(0, 1, MAX_BOX_POINTS)).tolist()


def batch_figure(variants: tuple[VariantResult, ...], div_id: str) -> str | None:
    """Throughput and median latency against batch size, a line per variant (and sequence length);
    None when no variant was timed at two batch sizes or more."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lines = batch_lines(variants)
    if not lines:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("throughput, samples/s (decoders: tokens/s)",
                                                           "median latency, ms (decoders: per output token)"))
    for i, (label, points) in enumerate(lines.items()):
        batch, rate, p50 = zip(*points, strict=False)
        style = {"name": label, "legendgroup": label, "mode": "lines+markers", "line": {"color": color(i)}}
        figure.add_trace(go.Scatter(x=batch, y=rate, **style), row=1, col=1)
        figure.add_trace(go.Scatter(x=batch, y=p50, showlegend=False, **style), row=1, col=2)
    figure.update_xaxes(title="batch size", type="log")
    figure.update_yaxes(type="log")
    return to_div(figure, div_id, height=450)


def family_figure(variants: tuple[VariantResult, ...], shape: str | None, div_id: str) -> str | None:
    """Where a profiled call's time goes by operator family (the backend profiler's), a 100 %
    stacked bar per variant at `shape` (models of very different sizes stay readable; the
    milliseconds are in the hover), the time outside operators on top; None without profiles."""
    import plotly.graph_objects as go

    tables = [(v.name, s.ops) for v in variants if v.profile for s in v.profile.shapes if s.shape == shape and s.ops]
    if not tables:
        return None
    families = list(dict.fromkeys(fam for _, t in tables for fam in t.by_family))
    figure = go.Figure()
    names = [shown(name) for name, _ in tables]
    for i, fam in enumerate([*families, "outside operators"]):
        ms = [max(t.wall_ms - t.ops_ms, 0.0) if fam == "outside operators" else t.by_family.get(fam, 0.0)
              for _, t in tables]
        whole = [max(t.wall_ms, t.ops_ms) for _, t in tables]
        figure.add_trace(go.Bar(x=names, y=[100 * m / w if w else 0.0 for m, w in zip(ms, whole, strict=False)], customdata=ms,
                                name=fam, marker={"color": color(i)},
                                hovertemplate="%{x}<br>%{y:.1f} %, %{customdata:.4g} ms<extra>" + fam + "</extra>"))
    figure.update_layout(barmode="stack")
    figure.update_yaxes(title=f"% of a profiled call at {shape}", range=[0, 100])
    return to_div(figure, div_id, height=450)


def roofline_figure(variants: tuple[VariantResult, ...], div_id: str) -> str | None:
    """The roofline: achieved GFLOP/s against arithmetic intensity (FLOPs per byte of weights read)
    at each profiled shape, a marker per shape and a line per variant, under the roof that this
    run's measured limits draw (min(matmul rate, read bandwidth x intensity)); None without FLOPs."""
    import plotly.graph_objects as go

    points = {v.name: [(s.flops / v.profile.weight_bytes, s.achieved_gflops, s.shape) for s in v.profile.shapes
                       if s.flops and s.achieved_gflops] for v in variants if v.profile and v.profile.weight_bytes}
    points = {name: found for name, found in points.items() if found}
    if not points:
        return None
    limits = next(v.profile.limits for v in variants if v.profile)
    figure = go.Figure()
    for i, (name, found) in enumerate(points.items()):
        figure.add_trace(go.Scatter(
            x=[x for x, _, _ in found], y=[y for _, y, _ in found], text=[shape for _, _, shape in found],
            name=shown(name), mode="lines+markers", line={"color": color(i)},
            hovertemplate="%{text}<br>%{x:.3g} FLOP/byte<br>%{y:.3g} GFLOP/s<extra>%{fullData.name}</extra>"))
    xs = [x for found in points.values() for x, _, _ in found]
    low, high = min(xs) / 4, max(xs) * 4
    knee = limits["matmul_gflops"] / limits["read_bandwidth_gbps"]
    roof_x = [low, *([knee] if low < knee < high else []), high]
    figure.add_trace(go.Scatter(x=roof_x, y=[min(limits["matmul_gflops"], limits["read_bandwidth_gbps"] * x)
                                             for x in roof_x],
                                name="roof (measured limits)", mode="lines", line={"color": "black", "dash": "dash"},
                                hovertemplate="%{y:.3g} GFLOP/s<extra>roof</extra>"))
    figure.update_xaxes(title="arithmetic intensity, FLOPs per byte of weights read (log)", type="log")
    figure.update_yaxes(title="achieved GFLOP/s at the median (log)", type="log")
    return to_div(figure, div_id, height=450)


def batch_lines(variants: tuple[VariantResult, ...]) -> dict[str, list[tuple[int, float, float]]]:
    """{variant label: [(batch size, samples/s, p50 ms)]} for each variant and sequence length
    timed at two batch sizes or more."""
    lines: dict[str, list[tuple[int, float, float]]] = {}
    for v in variants:
        rate = {t.shape: t.samples_per_s for t in v.throughput}
        for row in v.latency:
            if row.metric not in ("call", "tpot"):  # decoders: tokens/s of decoding against batch size
                continue
            axis = "p" if row.metric == "tpot" else "s"
            label = shown(v.name) if row.seq_len is None else f"{shown(v.name)} {axis}={row.seq_len}"
            lines.setdefault(label, []).append((row.batch_size, rate.get(row.shape, float("nan")), row.p50_ms))
    return {label: sorted(points) for label, points in lines.items() if len(points) > 1}


def rate_figure(variants: tuple[VariantResult, ...], div_id: str) -> str | None:
    """Server mode: p99 latency (queueing included) against the arrival rate of each trial, and
    the bound; None when no variant ran in server mode."""
    import plotly.graph_objects as go

    served = [v for v in variants if v.load and v.load.mode == "server" and v.load.trials]
    if not served:
        return None
    figure = go.Figure()
    for i, v in enumerate(served):
        trials = sorted(v.load.trials, key=lambda t: t.rate_qps)
        decoder = trials[0].ttft is not None  # decoders: p99 time to first token from arrival, against its bound
        p99 = [t.ttft["p99_ms"] if decoder else t.p99_ms for t in trials]
        figure.add_trace(go.Scatter(
            x=[t.rate_qps for t in trials], y=p99, name=shown(v.name) + (" (time to first token)" if decoder else ""),
            mode="lines+markers", line={"color": color(i)},
            customdata=[["met" if t.met else "missed", t.requests if decoder else t.queries] for t in trials],
            hovertemplate="%{x:,.2f} per s<br>p99 %{y:.4g} ms<br>%{customdata[0]} the bound "
                          "(%{customdata[1]} queries)<extra></extra>"))
        figure.add_hline(y=v.load.ttft_bound_ms if decoder else v.load.latency_bound_ms,
                         line={"dash": "dash", "color": color(i)})
    figure.update_xaxes(title="arrival rate, queries/s")
    figure.update_yaxes(title="p99 latency from arrival, ms (log scale)", type="log")
    return to_div(figure, div_id, height=450)


def endpoint_figures(variants: tuple[VariantResult, ...], div_id: str) -> str | None:
    """Servers (backend endpoint): p50 time per output token against output tokens/s in all, one
    line per server over its load points (the knee: where more load buys no more tokens/s),
    tokens/s per user (1 / TPOT) against tokens/s in all (the trade-off a server is tuned along),
    and goodput against the offered Poisson rate; None when no variant ran behind a server."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from suite.report.tables import endpoint_points

    answered = [(v, [p for p in endpoint_points(v) if p.get("tpot") and p.get("output_tokens_per_s")]) for v in variants]
    served = [(v, sorted(points, key=lambda p: p["output_tokens_per_s"])) for v, points in answered]
    served = [(v, points) for v, points in served if points]
    if not served:
        return None
    figure = make_subplots(rows=1, cols=3, subplot_titles=("latency against throughput", "per user against in all",
                                                           "goodput against the offered rate"))
    for i, (v, points) in enumerate(served):
        total = [p["output_tokens_per_s"] for p in points]
        loads = [f"{p['concurrency']} users" if "concurrency" in p else f"{p['rate']:.3g} requests/s" for p in points]
        for col, y, what in ((1, [p["tpot"]["p50_ms"] for p in points], "TPOT p50 %{y:.4g} ms"),
                             (2, [1e3 / p["tpot"]["p50_ms"] for p in points], "%{y:,.1f} tokens/s per user")):
            figure.add_trace(go.Scatter(x=total, y=y, name=shown(v.name), legendgroup=v.name, showlegend=col == 1,
                                        mode="markers+lines", line={"color": color(i)}, customdata=loads,
                                        hovertemplate=f"%{{customdata}}<br>%{{x:,.1f}} tokens/s in all<br>{what}"
                                                      "<extra></extra>"), row=1, col=col)
        offered = sorted((p for p in points if "rate" in p and p.get("goodput_rps") is not None), key=lambda p: p["rate"])
        figure.add_trace(go.Scatter(x=[p["rate"] for p in offered], y=[p["goodput_rps"] for p in offered],
                                    name=shown(v.name), legendgroup=v.name, showlegend=False, mode="markers+lines",
                                    line={"color": color(i)}, hovertemplate="offered %{x:,.3g} requests/s<br>goodput "
                                    "%{y:,.3g} requests/s<extra></extra>"), row=1, col=3)
    figure.update_xaxes(title="output tokens/s, all users", row=1, col=1)
    figure.update_xaxes(title="output tokens/s, all users", row=1, col=2)
    figure.update_xaxes(title="offered requests/s (Poisson)", row=1, col=3)
    figure.update_yaxes(title="requests/s meeting both bounds", row=1, col=3)
    figure.update_yaxes(title="time per output token, p50 ms", row=1, col=1)
    figure.update_yaxes(title="output tokens/s per user", row=1, col=2)
    return to_div(figure, div_id, height=450)


def color(i: int) -> str:
    import plotly.colors

    palette = plotly.colors.qualitative.D3
    return palette[i % len(palette)]


def to_div(figure: Any, div_id: str, height: int) -> str:
    figure.update_layout(height=height, margin={"t": 40, "l": 60, "r": 20, "b": 50})
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})



def bandwidth_figure(variants: tuple[VariantResult, ...], div_id: str) -> str | None:
    """Decoders: the read bandwidth each variant's decoding reached (weights bytes / time per
    output token) at each batch size of the first prompt length, against the machine's limit."""
    import plotly.graph_objects as go

    decoders = [v for v in variants if v.generation and v.generation.get("roofline")]
    if not decoders:
        return None
    figure = go.Figure()
    limit = None
    for i, v in enumerate(decoders):
        rows = [r for r in v.generation["roofline"] if r["metric"] == "tpot"]
        first = min(r["prompt_len"] for r in rows)
        rows = [r for r in rows if r["prompt_len"] == first]
        limit = rows[0]["limit_gbps"]
        figure.add_trace(go.Bar(x=[f"b={r['batch_size']}" for r in rows], y=[r["achieved_gbps"] for r in rows],
                                name=shown(v.name), marker={"color": color(i)},
                                customdata=[r["share"] * 100 for r in rows],
                                hovertemplate="%{y:.3g} GB/s (%{customdata:.1f} % of the limit)<extra>%{fullData.name}</extra>"))
    figure.add_hline(y=limit, line={"dash": "dash", "color": "#a00"},
                     annotation_text=f"measured read bandwidth {limit:.3g} GB/s")
    figure.update_layout(barmode="group")
    figure.update_yaxes(title="weights read per second while decoding, GB/s")
    return to_div(figure, div_id, height=420)


def search_figure(v: VariantResult, div_id: str) -> str | None:
    """An accuracy-aware search's path: each trial's validation accuracy (or agreement, where the
    data has no labels) against its speed, in the order tried, the reference and the chosen trial
    marked; None without trials to draw."""
    import plotly.graph_objects as go

    trials = [t for t in v.search.trials if t.speed_ms is not None and not t.error]
    judged = "val_accuracy" if any(t.val_accuracy is not None for t in trials) else "agreement"
    trials = [t for t in trials if getattr(t, judged) is not None]
    if not trials:
        return None
    figure = go.Figure()
    text = [shown(f"trial {t.index}: {t.phase}" + (f", {len(t.kept_float)} in float" if t.kept_float else "")
                  + (f", {t.value}" if t.value is not None else "")) for t in trials]
    figure.add_trace(go.Scatter(x=[t.speed_ms for t in trials], y=[getattr(t, judged) for t in trials], text=text,
                                mode="lines+markers", name="trials, in order", line={"color": "#bbbbbb"},
                                marker={"color": ["#2ca02c" if t.meets else "#d62728" for t in trials], "size": 9},
                                hovertemplate="%{text}<br>%{x:.4g} ms<br>%{y:.4f}<extra></extra>"))
    for label, found, symbol in (("reference (uncompressed)", [t for t in trials if t.phase == "reference"], "square"),
                                 ("chosen", [t for t in trials if t.index == v.search.chosen], "star")):
        if found:
            figure.add_trace(go.Scatter(x=[t.speed_ms for t in found], y=[getattr(t, judged) for t in found],
                                        mode="markers", name=label, marker={"symbol": symbol, "size": 16,
                                                                             "color": "black"},
                                        hovertemplate="%{x:.4g} ms<br>%{y:.4f}<extra>" + label + "</extra>"))
    figure.update_xaxes(title=f"{v.search.by} at batch {v.search.batch_size}, ms (short timing plan)")
    figure.update_yaxes(title=f"{judged.replace('_', ' ')} on the validation split")
    return to_div(figure, div_id, height=400)
