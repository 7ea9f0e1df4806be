"""summary.md: the key figures and the recommendation as Markdown, for a pull-request comment or
$GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from suite.analysis.compare import Row
from suite.measure.significance import ALPHA
from suite.report.tables import energy_per_inference, headline_shape, ms, number, rate_at, row_at, steps_text
from suite.results import RunResult, VariantResult, atomic_write_text, finite

HEAD = ["variant", "status", "backend", "compression", "accuracy", "agreement", "p50 ms", "p99 ms", "samples/s",
        "size KiB"]


def render_summary(run: RunResult) -> str:
    from suite.analysis.select import describe

    shape = headline_shape(run)
    lines = [f"## {text(str(run.scenario.get('name', 'run')))}: {len(run.variants)} variants"
             + (f", figures at {shape}" if shape else ""), ""]
    if run.quick:
        lines += ["> Quick run (`--quick`): smoke-test figures, not a benchmark.", ""]
    for line in describe(run.selection) if run.selection else ():
        lines += [text(line), ""]  # a paragraph each
    energy = any(energy_per_inference(v, shape) is not None for v in run.variants)
    head = HEAD + ["J/inference"] * energy
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(summary_cells(v, shape, energy)) + " |" for v in run.variants]
    problems = [f"- {text(v.name)}: {v.status}: {text(v.error or '')}" for v in run.variants if v.status != "ok"]
    from suite.analysis.warning_kinds import lines as warning_lines

    shown, _ = warning_lines(run.variants)
    warned = ["", "Warnings:", ""] + [f"- {text(line)}" for line in shown] if shown else []
    return "\n".join(lines + ([""] + problems if problems else []) + warned) + "\n"


def summary_cells(v: VariantResult, shape: str | None, energy: bool) -> list[str]:
    row = row_at(v, shape)
    accuracy = fmt(v.accuracy, ".4f") or text(v.accuracy_reason or "")
    cells = [text(v.name), v.status, text(v.backend), text(steps_text(v)), accuracy, fmt(v.agreement, ".4f"),
             ms(row and row.p50_ms)[0], ms(row and row.p99_ms)[0], fmt(rate_at(v, shape), ",.0f"),
             fmt(v.size_bytes and v.size_bytes / 1024, ",.1f")]
    return cells + [fmt(energy_per_inference(v, shape), ".3g")] * energy


# What CommonMark (and GitHub's tables and strikethrough) can read as markup inside a line: links,
# images, emphasis, code, raw HTML, cell breaks. Marks that matter only at a line's start (#, -, +,
# 1.) are left: a name never starts a line here.
MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()!~|])")


def text(value: str) -> str:
    """Shown as written: no HTML (escaped as entities), no Markdown (each mark above backslash-
    escaped), no table cell break, one line. A bare URL stays a URL (GitHub may link it as written)."""
    return MARKDOWN_PUNCTUATION.sub(r"\\\1", escape(value)).replace("\n", " ").replace("\r", " ")


def fmt(value: float | None, spec: str) -> str:
    """A table cell's text: the number formatted, or empty."""
    return number(value, spec)[0]


def write_summary(run: RunResult, path: Path) -> None:
    atomic_write_text(path, render_summary(run))


# -- suite compare / gate: the comparison's JSON and Markdown ------------------------------------
def comparison_markdown(rows: list[Row], title: str, alpha: float = ALPHA) -> str:
    """A comparison's rows (suite.analysis.compare) as a Markdown table."""
    lines = [f"## {text(title)}", "", "| variant | shape | base ms | candidate ms | ratio | 95% interval | p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        variant, *rest = row.cells(alpha)
        lines.append("| " + " | ".join([text(variant), *rest]) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(rows: list[Row], out: Path, stem: str, extra: dict, title: str, alpha: float = ALPHA) -> list[Path]:
    """STEM.json (every figure) and STEM.md (the table) in `out`."""
    data = {**extra, "alpha": alpha, "rows": [row.to_dict(alpha) for row in rows]}
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(finite(data)[0], indent=1, allow_nan=False) + "\n")
    atomic_write_text(md_path, comparison_markdown(rows, title, alpha))
    return [json_path, md_path]
