"""The README and docs/: every link between them leads to a file and heading that exist, and
the README's test command is the one .ci/run runs, and both install commands keep the pin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a '#' in a code block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not followed offline
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


def test_every_link_in_the_readme_and_docs_leads_somewhere():
    assert len(PAGES) > 5
    assert {page.name: broken_links(page) for page in PAGES} == {page.name: [] for page in PAGES}


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Where the time goes\n\n```sh\n# not a heading\n```\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#where-the-time-goes) [ok](a.md) [web](https://x.org/y) [self](#local)\n"
                    "[gone](c.md) [typo](a.md#where-time-goes) [code](a.md#not-a-heading)\n\n## Local\n")
    assert broken_links(page) == ["c.md: no such file", "a.md#where-time-goes: no such heading",
                                  "a.md#not-a-heading: no such heading"]


def test_the_readmes_commands_are_ci_s_and_keep_the_torch_pin():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.startswith("python3 -m venv"))
    assert f"```sh\n{command}\n```" in readme
    assert "-c constraints.txt" in command and "pytest" in command
    # And the main job's: installed under the same pin (an unpinned torch brings GBs of CUDA).
    main_job = next(line for line in readme.splitlines() if line.endswith("python -m suite run scenarios/resnet.yaml"))
    assert main_job.startswith("python3 -m venv") and "-c constraints.txt" in main_job
