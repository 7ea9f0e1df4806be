"""The summary table printed at the end of a run: one row per variant and input shape, so it
stays readable however many batch sizes and sequence lengths were timed."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from suite.results import RunResult, VariantResult


def summary_table(run: RunResult, where: str = "") -> Table:
    title = f"{run.scenario.get('name')}{where}" + ("  (quick run: smoke-test figures)" if run.quick else "")
    table = Table(title=Text(title))
    for column in ["variant", "status", "backend", "accuracy", "agreement", "shape"]:  # decoders: perplexity, KLD, top token
        table.add_column(column)
    for column in ["p50 ms", "95% CI ms", "samples/s"]:
        table.add_column(column, justify="right")
    for v in run.variants:
        for i, row in enumerate(variant_rows(v)):
            table.add_row(*(variant_cells(v) if i == 0 else [""] * 5), *row, end_section=i == max(len(v.latency), 1) - 1)
    return table


def variant_cells(v: VariantResult) -> list[Text]:
    """Plain Text, not markup: a name like `pruned[sparsity=0.5]` must print as written."""
    return [Text(cell) for cell in variant_texts(v)]


def variant_texts(v: VariantResult) -> list[str]:
    return [v.name, v.status if v.status == "ok" else f"{v.status}: {v.error}", v.backend,
            f"{v.accuracy:.4f}" if v.accuracy is not None else perplexity_text(v) or (v.accuracy_reason or ""),
            "" if v.agreement is None else f"{v.agreement:.4f}"]


def perplexity_text(v: VariantResult) -> str | None:
    """A decoder's quality: 'perplexity 18.43, KLD 0.0031' (its agreement column: the same top token)."""
    if v.perplexity is None:
        return None
    kld = getattr(v.fidelity, "kld_mean", None)
    return f"perplexity {v.perplexity:.4g}" + (f", KLD {kld:.3g}" if kld is not None else "")


def variant_rows(v: VariantResult) -> list[list[str]]:
    rate = {t.shape: f"{t.samples_per_s:,.0f}" for t in v.throughput}
    rows = [[row.shape, f"{row.p50_ms:.4g}", f"{row.ci95_p50_ms[0]:.4g} – {row.ci95_p50_ms[1]:.4g}", rate.get(row.shape, "")]
            for row in v.latency]
    return rows or [["", "", "", ""]]


def comparison_table(rows: list, title: str) -> Table:
    """`suite compare` / `suite gate`: one row per variant and input shape."""
    table = Table(title=Text(title))
    for column in ["variant", "shape", "base ms", "candidate ms", "ratio", "95% interval", "p", "verdict"]:
        table.add_column(column, justify="left" if column in ("variant", "shape", "verdict") else "right")
    for row in rows:
        variant, *rest = row.cells()
        table.add_row(Text(variant), *rest)
    return table
