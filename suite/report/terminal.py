"""The summary table printed at the end of a run."""

from __future__ import annotations

from rich.table import Table

from suite.results import RunResult


def summary_table(run: RunResult) -> Table:
    batch_sizes = sorted({row.batch_size for v in run.variants for row in v.latency})
    title = f"{run.scenario.get('name')}" + ("  (quick run: smoke-test figures)" if run.quick else "")
    table = Table(title=title)
    for column in ["variant", "status", "backend", "accuracy", "agreement"]:
        table.add_column(column)
    for b in batch_sizes:
        table.add_column(f"p50 ms b={b}", justify="right")
        table.add_column(f"samples/s b={b}", justify="right")
    for v in run.variants:
        p50 = {row.batch_size: f"{row.p50_ms:.4g}" for row in v.latency}
        rate = {row.batch_size: f"{row.samples_per_s:,.0f}" for row in v.throughput}
        cells = [v.name, v.status if v.status == "ok" else f"{v.status}: {v.error}", v.backend,
                 f"{v.accuracy:.4f}" if v.accuracy is not None else (v.accuracy_reason or ""),
                 "" if v.agreement is None else f"{v.agreement:.4f}"]
        for b in batch_sizes:
            cells += [p50.get(b, ""), rate.get(b, "")]
        table.add_row(*cells)
    return table
