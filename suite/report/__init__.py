"""Reports rendered from results only: the HTML page of a run and the terminal summary."""

from suite.report.html import render_html, write_html

__all__ = ["render_html", "write_html"]
