"""Reports rendered from results only: a run's HTML page and summary.md, the page comparing
many runs, and the terminal summary."""

from __future__ import annotations

from pathlib import Path

from suite.report.html import render_html, write_html
from suite.report.markdown import render_summary, write_summary
from suite.results import RunResult

__all__ = ["render_html", "write_html", "render_summary", "write_summary", "write_run_reports"]


def write_run_reports(run: RunResult, folder: Path, html_path: Path | None = None) -> Path:
    """index.html (with the scenario's own text, which the run folder keeps) and summary.md."""
    scenario_file = folder / "scenario.yaml"
    scenario_text = scenario_file.read_text(encoding="utf-8") if scenario_file.is_file() else None
    html_path = html_path or folder / "index.html"
    write_html(run, html_path, scenario_text)
    write_summary(run, folder / "summary.md")
    return html_path
