"""The report as a person sees it: opened in real headless Chromium (Debian's `chromium`, driven
by Playwright), with no JavaScript error, no dialog (a hostile name must not run), every chart
drawn, the table sorting on a click, and a screenshot saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from suite.report import write_html
from suite.report.comparison import write_comparison
from suite.results import save_json
from tests.report_runs import HOSTILE, rich_run

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                                         "chromium; .ci/run installs it where it can)")
# As root in a container, and with no network to reach: no sandbox, no background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, path: Path):
    """The page, loaded, and the list its console errors, uncaught exceptions and dialogs go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def charts_drawn(page) -> dict[str, int]:
    """{chart id: traces plotly drew in it} for every chart on the page."""
    return page.eval_on_selector_all(
        "div.plotly-graph-div",
        "divs => Object.fromEntries(divs.map(d => [d.id, d.querySelector('svg.main-svg') ? "
        "d.querySelectorAll('g.trace, g.shapelayer path').length : 0]))")


def column_of(page, table: int, header: str) -> list[str]:
    return page.eval_on_selector_all(
        "table.sortable", f"""(tables, header) => {{
            const t = tables[{table}], col = [...t.tHead.rows[0].cells].findIndex(c => c.textContent.startsWith(header));
            return [...t.tBodies[0].rows].map(r => r.cells[col].textContent); }}""", header)


def test_run_page_in_chromium(browser, tmp_path):
    path = tmp_path / "index.html"
    write_html(rich_run(), path)
    page, problems = open_page(browser, path)
    drawn = charts_drawn(page)
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    assert problems == []
    assert set(drawn) == {"pareto-latency", "pareto-size", "pareto-energy", "distribution-0", "distribution-1",
                          "batch-sizes", "rates"}
    assert all(traces > 0 for traces in drawn.values()), drawn
    assert page.locator("td", has_text=HOSTILE).count() >= 1  # the name shows as text
    assert page.title() == f"suite: {HOSTILE}"
    assert (tmp_path / "index.png").stat().st_size > 10_000


def test_table_sorts_on_a_click(browser, tmp_path):
    path = tmp_path / "index.html"
    write_html(rich_run(), path)
    page, problems = open_page(browser, path)
    assert column_of(page, 0, "variant") == ["fp32", "int8", HOSTILE, "gone"]
    page.locator("table.sortable").first.locator("th", has_text="p50 ms").first.click()
    assert column_of(page, 0, "variant") == ["int8", "fp32", HOSTILE, "gone"]  # no figure: last
    page.locator("table.sortable").first.locator("th", has_text="p50 ms").first.click()
    assert column_of(page, 0, "variant") == [HOSTILE, "fp32", "int8", "gone"]
    assert problems == []


def test_comparison_page_in_chromium(browser, tmp_path):
    for name, slower, day in (("a", 1.0, 20), ("b", 1.3, 21)):
        save_json(rich_run(f"2026-11-{day}T00:00:00+00:00", slower=slower), tmp_path / name / "results.json")
    path = tmp_path / "comparison.html"
    write_comparison([tmp_path / "a", tmp_path / "b"], path)
    page, problems = open_page(browser, path)
    drawn = charts_drawn(page)
    page.screenshot(path=str(tmp_path / "comparison.png"), full_page=True)
    assert problems == []
    assert list(drawn) == ["history"] and drawn["history"] >= 6
    ratios = column_of(page, 1, "#2 b @abcdef12 ratio")
    assert len(ratios) == 6 and all(1.1 < float(r) < 1.5 for r in ratios)


def test_names_in_charts_are_text_not_plotly_markup(browser, tmp_path):
    """Plotly reads `<a href>`, `<b>` and `<br>` in its text as markup: a variant named with a link
    must be drawn as those characters, with no link in the chart."""
    from dataclasses import replace

    from tests.report_runs import variant

    linked = '<a href="https://example.com/x">click</a>'
    run = rich_run()
    run = replace(run, variants=run.variants + (variant(linked, 1.5, 0.95, 200),))
    path = tmp_path / "index.html"
    write_html(run, path)
    page, problems = open_page(browser, path)
    assert problems == []
    links = page.eval_on_selector_all("div.plotly-graph-div svg a", "links => links.map(a => a.outerHTML)")
    assert links == []
    shown = page.eval_on_selector_all("div.plotly-graph-div svg text", "ts => ts.map(t => t.textContent)")
    assert any(linked in text for text in shown), shown[:20]
