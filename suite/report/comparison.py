"""One page over many runs (machines, backends, commits, dates): the same variants matched by
name and input shape, their latency as a ratio to a reference run, and each variant's latency
over the runs in time order.

Every pair is judged by suite.analysis.compare, as `suite compare` and `suite gate` judge it: the ratio of
medians, its bootstrap 95% interval, the one-sided Mann-Whitney p-value and the verdict at
alpha; each run's differences from the reference in what matters for latency (hardware, torch,
backend versions, the node that measured a variant) are listed, not refused: comparing machines
is what the page is for.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from suite.analysis.compare import SHOWN, Row, compare_runs, env_differences, latency_rows
from suite.errors import SuiteError
from suite.measure.significance import ALPHA
from suite.report import figures, tables
from suite.report.html import page
from suite.results import LatencyResult, RunResult, atomic_write_text, load_json


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
        for pair, row in latency_rows(run).items():
            found.setdefault(pair, [None] * len(runs))[i] = row
    return {pair: rows for pair, rows in found.items()
            if rows[reference] is not None and sum(r is not None for r in rows) > 1}


def judged(runs: list[tuple[str, RunResult]], reference: int) -> list[dict[tuple[str, str], Row] | None]:
    """For each run but the reference, suite.analysis.compare's row for every pair it shares with the
    reference (None in the reference's place); SuiteError when a name is another thing there."""
    found: list[dict[tuple[str, str], Row] | None] = []
    for i, (label, run) in enumerate(runs):
        if i == reference:
            found.append(None)
            continue
        try:
            found.append({(row.variant, row.shape): row for row in compare_runs(runs[reference][1], run)})
        except SuiteError as exc:  # a name shared by two different things is not one variant's history
            raise SuiteError(f"report: run {label} against the reference: {exc}") from None
    return found


def render_comparison(runs: list[tuple[str, RunResult]], reference: int = 0, what: str = "runs") -> str:
    """The page; `what` the runs are ("nodes": a fleet run's, one per node)."""
    if not 0 <= reference < len(runs):
        raise SuiteError(f"report: --reference {reference + 1} is not one of the {len(runs)} runs given")
    rows = judged(runs, reference)
    matched = matched_rows(runs, reference)
    ref_label = runs[reference][0]
    over_time = len({run.created for _, run in runs}) > 1  # a fleet's runs all start at once: no history
    body = (f"<h1>{len(runs)} {what} compared</h1><p>Reference: {escape(ref_label)}. Variants are matched by "
            "name and input shape (and checked to be the same model, data, compression and backend); a ratio above "
            "1 is slower than the reference. Each pair is judged as <code>suite compare</code> and <code>suite "
            f"gate</code> judge it: the ratio of medians, its bootstrap 95% interval, the one-sided Mann-Whitney "
            f"p-value, and faster or slower only when p &lt; {ALPHA} on that side.</p>"
            + "<h2>Runs</h2>" + runs_table(runs, reference)
            + f"<h2>Median latency, ratio to {escape(ref_label)}</h2>" + ratio_table(runs, reference, matched, rows)
            + operators_html(runs, reference)
            + ("<h2>History</h2><p>Each variant's median latency at each input shape, runs in time order.</p>"
               + history_figure(runs, matched) if over_time else ""))
    return page(f"{len(runs)} {what} compared", body)


def runs_table(runs: list[tuple[str, RunResult]], reference: int) -> str:
    head = ["run", "scenario", "created", "variants", "quick", "machines", *SHOWN, "differs from the reference in"]
    rows = [[label, str(run.scenario.get("name", "")), run.created, tables.number(len(run.variants), "d"),
             "yes" if run.quick else "no", machines(run), *(tables.flat(run.environment.get(k)) for k in SHOWN),
             "(the reference)" if i == reference else "; ".join(env_differences(runs[reference][1], run)) or "nothing"]
            for i, (label, run) in enumerate(runs)]
    return tables.sortable_table(head, rows)


def machines(run: RunResult) -> str:
    """The nodes that measured the run's variants (a Ray run), else the run's own host."""
    nodes = sorted({v.node.label for v in run.variants if v.node is not None})
    return ", ".join(nodes) or "this run's host"


def ratio_table(runs: list[tuple[str, RunResult]], reference: int,
                matched: dict[tuple[str, str], list[LatencyResult | None]],
                judged_rows: list[dict[tuple[str, str], Row] | None]) -> str:
    if not matched:
        return "<p>No variant and input shape appears in the reference run and another run.</p>"
    others = [i for i in range(len(runs)) if i != reference]
    head = ["variant", "shape", f"{runs[reference][0]} p50 ms"]
    head += [f"{runs[i][0]} {what}" for i in others for what in ("p50 ms", "ratio", "95% interval", "p", "verdict")]
    rows = [[name, shape, tables.ms(found[reference].p50_ms),
             *(cell for i in others for cell in ratio_cells(judged_rows[i].get((name, shape))))]
            for (name, shape), found in matched.items()]
    return tables.sortable_table(head, rows)


def operators_html(runs: list[tuple[str, RunResult]], reference: int) -> str:
    """Where the time goes in each run (measure.profile): milliseconds per call by operator family
    for each variant and shape the reference and another run profiled with the same profiler, and
    each family's speed-up against the reference's; empty where fewer than two runs have profiles."""
    tables_of = [{(v.name, s.shape): s.ops for v in run.variants if v.profile for s in v.profile.shapes if s.ops}
                 for _, run in runs]
    others = [i for i in range(len(runs)) if i != reference]
    rows = []
    for (name, shape), mine in tables_of[reference].items():
        theirs = {i: tables_of[i].get((name, shape)) for i in others}
        theirs = {i: t for i, t in theirs.items() if t is not None and t.profiler == mine.profiler}
        if not theirs:
            continue
        for fam in dict.fromkeys([*mine.by_family, *(f for t in theirs.values() for f in t.by_family)]):
            before = mine.by_family.get(fam, 0.0)
            cells = []
            for i in others:
                after = theirs[i].by_family.get(fam, 0.0) if i in theirs else None
                cells += [tables.ms(after), tables.number(before / after if before and after else None, ".2f")]
            rows.append([name, shape, fam, tables.ms(before), *cells])
    if not rows:
        return ""
    head = ["variant", "shape", "operator family", f"{runs[reference][0]} ms"]
    head += [f"{runs[i][0]} {what}" for i in others for what in ("ms", "speed-up")]
    return ("<h2>Operators by family</h2><p>Milliseconds per call in each family of operators, from each "
            "run's profile (the same backend profiler on both sides, which adds its own cost to what it "
            f"times), and the speed-up against {escape(runs[reference][0])}.</p>"
            + tables.sortable_table(head, rows))


def ratio_cells(row: Row | None) -> list[tables.Cell]:
    if row is None:
        return [("", None)] * 5
    c = row.comparison
    return [tables.ms(row.candidate_ms), (f"{c.ratio:.3f}", c.ratio), (f"{c.ci_low:.3f} – {c.ci_high:.3f}", c.ci_low),
            (f"{c.p_value:.2g}", c.p_value), c.verdict(ALPHA)]


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


def write_comparison(paths: list[Path], out: Path, reference: int = 0, what: str = "runs") -> None:
    atomic_write_text(out, render_comparison(load_runs(paths), reference, what))
