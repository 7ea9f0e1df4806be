"""One page over many runs (machines, backends, commits, dates): the same variants matched by
name and input shape, their latency as a ratio to a reference run, and each variant's latency
over the runs in time order.

A ratio's interval is the widest the two medians' 95% intervals allow (candidate low / reference
high to candidate high / reference low): when it holds 1, the runs do not differ at that level.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from suite.errors import SuiteError
from suite.report import figures, tables
from suite.report.html import page
from suite.results import LatencyResult, RunResult, atomic_write_text, load_json

ENV_KEYS = ("cpu", "cores", "gpu", "torch", "python", "platform", "git_commit")


@dataclass(frozen=True)
class Ratio:
    value: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return "slower" if self.low > 1 else "faster" if self.high < 1 else "same"


def ratio(candidate: LatencyResult, reference: LatencyResult) -> Ratio:
    return Ratio(candidate.p50_ms / reference.p50_ms, candidate.ci95_p50_ms[0] / reference.ci95_p50_ms[1],
                 candidate.ci95_p50_ms[1] / reference.ci95_p50_ms[0])


def load_runs(paths: list[Path]) -> list[tuple[str, RunResult]]:
    """Each results.json or run folder with a short label: its number, folder name and commit."""
    runs = []
    for i, path in enumerate(paths, 1):
        run = load_json(path)
        where = path if path.is_dir() else path.parent
        commit = (run.environment.get("git_commit") or "")[:8]
        runs.append((f"#{i} {where.name}" + (f" @{commit}" if commit else ""), run))
    return runs


def matched_rows(runs: list[tuple[str, RunResult]], reference: int) -> dict[tuple[str, str], list[LatencyResult | None]]:
    """{(variant, shape): the row of each run or None}, for pairs the reference and one other run have."""
    found: dict[tuple[str, str], list[LatencyResult | None]] = {}
    for i, (_, run) in enumerate(runs):
        for v in run.variants:
            for row in v.latency:
                found.setdefault((v.name, row.shape), [None] * len(runs))[i] = row
    return {key: rows for key, rows in found.items()
            if rows[reference] is not None and sum(r is not None for r in rows) > 1}


def render_comparison(runs: list[tuple[str, RunResult]], reference: int = 0) -> str:
    if not 0 <= reference < len(runs):
        raise SuiteError(f"report: --reference {reference + 1} is not one of the {len(runs)} runs given")
    from suite.compare import check_same_variants

    for label, run in runs:  # a name shared by two different things is not one variant's history
        try:
            check_same_variants(runs[reference][1], run)
        except SuiteError as exc:
            raise SuiteError(f"report: run {label} against the reference: {exc}") from None
    matched = matched_rows(runs, reference)
    ref_label = runs[reference][0]
    body = (f"<h1>{len(runs)} runs compared</h1><p>Reference: {escape(ref_label)}. Variants are matched by "
            "name and input shape (and checked to be the same model, data, compression and backend); a ratio above 1 is slower than the reference. The interval is the widest "
            "the two medians' 95% intervals allow: faster or slower when it excludes 1, else same.</p>"
            + "<h2>Runs</h2>" + runs_table(runs)
            + f"<h2>Median latency, ratio to {escape(ref_label)}</h2>" + ratio_table(runs, reference, matched)
            + "<h2>History</h2><p>Each variant's median latency at each input shape, runs in time order.</p>"
            + history_figure(runs, matched))
    return page(f"{len(runs)} runs compared", body)


def runs_table(runs: list[tuple[str, RunResult]]) -> str:
    head = ["run", "scenario", "created", "variants", "quick", *ENV_KEYS]
    rows = [[label, str(run.scenario.get("name", "")), run.created, tables.number(len(run.variants), "d"),
             "yes" if run.quick else "no", *(tables.flat(run.environment.get(k)) for k in ENV_KEYS)]
            for label, run in runs]
    return tables.sortable_table(head, rows)


def ratio_table(runs: list[tuple[str, RunResult]], reference: int,
                matched: dict[tuple[str, str], list[LatencyResult | None]]) -> str:
    if not matched:
        return "<p>No variant and input shape appears in the reference run and another run.</p>"
    others = [i for i in range(len(runs)) if i != reference]
    head = ["variant", "shape", f"{runs[reference][0]} p50 ms"]
    head += [f"{runs[i][0]} {what}" for i in others for what in ("p50 ms", "ratio", "ratio interval")]
    rows = [[name, shape, tables.ms(found[reference].p50_ms),
             *(cell for i in others for cell in ratio_cells(found[i], found[reference]))]
            for (name, shape), found in matched.items()]
    return tables.sortable_table(head, rows)


def ratio_cells(candidate: LatencyResult | None, reference: LatencyResult) -> list[tables.Cell]:
    if candidate is None:
        return [("", None)] * 3
    r = ratio(candidate, reference)
    return [tables.ms(candidate.p50_ms), (f"{r.value:.3f}", r.value),
            (f"{r.low:.3f} – {r.high:.3f} ({r.verdict})", r.low)]


def history_figure(runs: list[tuple[str, RunResult]], matched: dict[tuple[str, str], list[LatencyResult | None]]) -> str:
    import plotly.graph_objects as go

    if not matched:
        return "<p>Nothing to draw.</p>"
    order = sorted(range(len(runs)), key=lambda i: runs[i][1].created)
    figure = go.Figure()
    for n, ((name, shape), found) in enumerate(matched.items()):
        points = [(runs[i][1].created, runs[i][0], found[i]) for i in order if found[i] is not None]
        figure.add_trace(go.Scatter(
            x=[when for when, _, _ in points], y=[row.p50_ms for _, _, row in points], name=figures.shown(f"{name} {shape}"),
            mode="lines+markers", line={"color": figures.color(n)}, text=[figures.shown(label) for _, label, _ in points],
            error_y={"type": "data", "symmetric": False,
                     "array": [row.ci95_p50_ms[1] - row.p50_ms for _, _, row in points],
                     "arrayminus": [row.p50_ms - row.ci95_p50_ms[0] for _, _, row in points]},
            hovertemplate="%{text}<br>%{x}<br>p50 %{y:.4g} ms<extra>%{fullData.name}</extra>"))
    figure.update_xaxes(title="run created (UTC)")
    figure.update_yaxes(title="median latency, ms (log scale)", type="log")
    return figures.to_div(figure, "history", height=500)


def write_comparison(paths: list[Path], out: Path, reference: int = 0) -> None:
    atomic_write_text(out, render_comparison(load_runs(paths), reference))
