"""Launcher ray on a real Ray cluster started here on loopback: a head and a second node, each a
separate `ray start` process with one CPU. The same results as the subprocess launcher; a crash
and a hang on a worker recorded while the rest finish; no two variants on one node at once; a head
killed mid-run resumed without measuring anything twice. Skipped where Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from suite.__main__ import main
from tests.test_isolation import scenario as misbehaving_scenario
from tests.test_isolation import variant, wait_for
from tests.test_launchers import SMALL



def test_without_ray_the_launcher_is_a_one_line_error(write_scenario, run_quick, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    status, _, err, results = run_quick(write_scenario(SMALL), "--launcher", "ray")
    assert status == 2 and results is None
    assert err.strip().splitlines() == ["error: --launcher ray needs Ray: pip install -c constraints.txt -e '.[ray]'"]


def test_address_without_the_ray_launcher_is_a_one_line_error(write_scenario, run_quick):
    status, _, err, _ = run_quick(write_scenario(SMALL), "--address", "127.0.0.1:1")
    assert status == 2 and err.strip() == "error: --address is the Ray cluster's: use it with --launcher ray"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A head and one more node, one CPU each, as two `ray start --block` processes; stopped after."""
    ray = pytest.importorskip("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    logs = [open(tmp_path / f"ray-{i}.log", "w") for i in range(2)]
    nodes = [subprocess.Popen(["ray", "start", "--head", "--port", str(port), "--include-dashboard=false", *common],
                              env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)]
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: ray_ready(address), timeout_s=90)
        nodes.append(subprocess.Popen(["ray", "start", "--address", address, *common], env=env, stdout=logs[1],
                                      stderr=subprocess.STDOUT, start_new_session=True))
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        wait_for(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 2 or None, timeout_s=90)
        yield address
    finally:
        ray.shutdown()
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def ray_ready(address: str) -> bool | None:
    done = subprocess.run(["ray", "status", "--address", address], capture_output=True, text=True, timeout=30)
    return True if done.returncode == 0 else None


def no_overlap_on_a_node(variants: list[dict]) -> None:
    spans: dict[str, list] = {}
    for v in variants:
        if v["node"]:
            spans.setdefault(v["node"]["node_id"], []).append((v["node"]["started"], v["node"]["ended"]))
    for intervals in spans.values():
        intervals.sort()
        assert all(end <= start for (_, end), (start, _) in zip(intervals, intervals[1:])), intervals


def test_ray_runs_variants_on_the_cluster_as_the_subprocess_launcher_does(cluster, tmp_path, write_scenario,
                                                                         run_quick, cache_dir, monkeypatch):
    path = write_scenario(SMALL)
    status, _, _, local = run_quick(path, "--launcher", "subprocess")
    assert status == 0
    status, out, _, remote = run_quick(path, "--launcher", "ray", "--address", cluster)
    assert status == 0, out

    def same(results):
        return [(v["name"], v["status"], v["accuracy"], v["agreement"], v["agreement_with"]) for v in results]

    assert same(remote["variants"]) == same(local["variants"])
    nodes = {v["node"]["node_id"] for v in remote["variants"]}
    assert len(nodes) == 2  # the two after the reference ran at once, one on each node
    assert all(v["node"]["cpus_owned"] == 1.0 and v["backend_info"]["threads"] == 1 for v in remote["variants"])
    no_overlap_on_a_node(remote["variants"])

    # A crash and a hang on a worker fail those variants alone.
    monkeypatch.syspath_prepend(str(tmp_path))
    bad = misbehaving_scenario(tmp_path, variant("before") + variant("aborts", "abort") + variant("hangs", "sleep", 3600)
                               + variant("after"), isolation="{timeout_s: 30}")
    status, _, _, results = run_quick(bad, "--launcher", "ray", "--address", cluster)
    by_name = {v["name"]: v for v in results["variants"]}
    assert status == 1
    assert by_name["before"]["status"] == by_name["after"]["status"] == "ok"
    assert by_name["after"]["agreement"] == 1.0  # the reference's outputs went to its node
    assert (by_name["aborts"]["status"], by_name["aborts"]["error_type"]) == ("failed", "Crash")
    assert by_name["hangs"]["error"] == "timed out after 30 s (isolation.timeout_s)"
    no_overlap_on_a_node(results["variants"])

    # The head killed mid-run: what it saved is kept, and --resume finishes the run.
    slow = misbehaving_scenario(tmp_path, variant("first") + variant("slow", "sleep", 0.05) + variant("third"))
    out_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "suite", "run", str(slow), "--quick", "--out", str(out_dir), "--cache-dir",
               str(cache_dir), "--launcher", "ray", "--address", cluster]
    head = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = wait_for(lambda: next(out_dir.glob("*/*/variants/first-*.json"), None), timeout_s=120)
    head.kill()
    head.wait()
    saved, run_dir = first.read_bytes(), first.parent.parent
    assert main(["run", "--resume", str(run_dir)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert [(v["name"], v["status"]) for v in results["variants"]] == [("first", "ok"), ("slow", "ok"), ("third", "ok")]
    assert first.read_bytes() == saved and all(v["node"] for v in results["variants"])
