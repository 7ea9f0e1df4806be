"""Fleet mode: `suite run SCENARIO --launcher ray --on-each-node [KEY=VALUE]` measures every
variant on every node of a Ray cluster (or on the nodes whose Ray labels match), to answer "which
of our machines should serve this model?". Each node gets a run of its own, pinned to it
(RunOptions.node), with the Ray launcher's guarantees (a task owns the whole node; crash, hang and
memory limits enforced there); the nodes work at once, each on its variants one after another.
The checkpoints the variants need are trained once, before any node times anything, and
shipped to every node (suite.run.shipping). Then one page compares the nodes variant by variant
(suite.report.comparison, the first node the reference) as `suite report` compares any runs.

    fleet.json          how the fleet run was started: the label, and each node's id, host and folder
    nodes/<host>-<id>/  one node's run folder (run.json names the node), resumable on its own
    comparison.html     the nodes compared

Ctrl-C stops every node's run; `suite run --resume FLEET_DIR` finishes each (a node that has
left the cluster has its remaining variants recorded as failed, with that reason).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite.config.scenario import Scenario
from suite.errors import RunInterrupted, SuiteError
from suite.progress import Bars, OpensTasks
from suite.results import RunResult, atomic_write_text, read_json
from suite.run.run_folder import RunFolder, options_dict, slug
from suite.run.run_plan import RunOptions, planned, started_as

FLEET_FILE = "fleet.json"


def parse_labels(text: str) -> dict[str, str]:
    """'' -> {} (every node); 'gpu=h200,zone=a' -> {'gpu': 'h200', 'zone': 'a'}."""
    labels = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not re.fullmatch(r"[\w./-]+", key.strip()) or not value.strip():
            raise SuiteError(f"--on-each-node: {part!r} is not KEY=VALUE (a Ray node label to match)")
        labels[key.strip()] = value.strip()
    return labels


def run_fleet(scenario: Scenario, options: RunOptions, labels: dict[str, str], bars: Bars) -> tuple[list, Path]:
    """A fresh fleet run: one run folder per matching node, all measured at once."""
    from suite.run.ray_launcher import connect, cpu_nodes
    from suite.run.runner import new_run_dir

    if options.launcher not in (None, "ray") or options.in_process:
        raise SuiteError("--on-each-node runs each variant on every node of a Ray cluster: use it with --launcher ray")
    options = replace(options, launcher="ray")
    nodes = cpu_nodes(connect(options.address), labels)
    if not nodes:
        wanted = f" with labels {labels}" if labels else ""
        raise SuiteError(f"--on-each-node: the Ray cluster has no live node with a CPU{wanted}")
    fleet_dir = new_run_dir(options.out_dir, scenario.name)
    entries = []
    for node_id, node in sorted(nodes.items(), key=lambda item: (str(item[1].get("NodeManagerHostname")), item[0])):
        host = str(node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "node")
        folder = RunFolder(fleet_dir / "nodes" / f"{slug(host, 'node', 40)}-{node_id[:8]}")
        folder.path.mkdir(parents=True)
        folder.start(Path(scenario.source), options_dict(replace(options, node=node_id)), sys.path)
        entries.append({"node_id": node_id, "host": host, "folder": str(folder.path.relative_to(fleet_dir))})
    atomic_write_text(fleet_dir / FLEET_FILE, json.dumps({
        "scenario_file": str(Path(scenario.source).resolve()), "labels": labels, "nodes": entries,
        "created": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1) + "\n")
    return measured(fleet_dir, bars)


def is_fleet(folder: Path) -> bool:
    return (Path(folder) / FLEET_FILE).is_file()


def measured(fleet_dir: Path, bars: Bars) -> tuple[list[tuple[RunResult, Path]], Path]:
    """Every node's run finished at once (kept variants are not measured again), then the page
    comparing them; [(each node's result, its folder)] and the page's path."""
    from suite.report.comparison import write_comparison
    from suite.run.runner import run

    folders = node_folders(fleet_dir)
    outcomes: dict[int, Any] = {}

    def one(i: int, folder: RunFolder) -> None:
        try:
            scenario, options = started_as(folder)
            outcomes[i] = run(scenario, options, Labelled(bars, folder.path.name), folder)
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread, which raises it)
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i, folder), daemon=True) for i, folder in enumerate(folders)]
    from suite.run.ray_launcher import STOP

    STOP.clear()
    try:
        train_first(folders[0], bars)
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        STOP.set()  # each node's launcher cancels its task and its run saves what it has
        for thread in (t for t in threads if t.ident is not None):  # those started
            thread.join()
    failures = [o for o in outcomes.values() if isinstance(o, BaseException)]
    if STOP.is_set() or any(isinstance(o, RunInterrupted) for o in failures):
        done = sum(len(list((f.path / "variants").glob("*.json"))) for f in folders)
        raise RunInterrupted(fleet_dir, done, sum(len(planned(*started_as(f))[1]) for f in folders))
    for failure in failures:
        raise failure
    results = [outcomes[i] for i in range(len(folders))]
    page = fleet_dir / "comparison.html"
    write_comparison([path for _, path in results], page, what="nodes")
    return results, page


def train_first(folder: RunFolder, bars: Bars) -> None:
    """The checkpoints every node's run needs, trained once on the cluster before any node times
    anything (else each node's first variant would train the same one at the same moment)."""
    from suite.run.bench import Bench
    from suite.run.ray_launcher import RayLauncher
    from suite.run.runner import launch_of

    scenario, options = started_as(folder)
    scenario, variants, duplicates = planned(scenario, options)
    remaining = [v for v in variants if folder.finished(v.name) is None]
    RayLauncher(launch_of(Bench(scenario, options, bars, 1, folder, duplicates))).train_first(remaining)


def node_folders(fleet_dir: Path) -> list[RunFolder]:
    """The run folders fleet.json names, each checked to be inside the fleet folder."""
    data = read_json(fleet_dir / FLEET_FILE)
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, dict) and isinstance(n.get("folder"), str)
                                                           for n in nodes):
        raise SuiteError(f"{fleet_dir / FLEET_FILE}: nodes: expected a list of {{node_id, host, folder}}")
    folders = []
    for entry in nodes:
        path = (fleet_dir / entry["folder"]).resolve()
        if fleet_dir.resolve() not in path.parents:
            raise SuiteError(f"{fleet_dir / FLEET_FILE}: nodes: folder {entry['folder']!r} is outside the fleet folder")
        folders.append(RunFolder(path))
    return folders


class Labelled(OpensTasks):
    """Bars whose lines and tasks say which node's run they are about."""

    def __init__(self, bars: Bars, label: str):
        self.bars, self.label = bars, label
        self.plain = bars.plain

    def log(self, message: str) -> None:
        self.bars.log(f"[{self.label}] {message}")

    def progress(self, message: str) -> None:
        self.bars.progress(f"[{self.label}] {message}")

    def open_task(self, description: str, total: int | None) -> Any:
        return self.bars.open_task(f"[{self.label}] {description}", total)
