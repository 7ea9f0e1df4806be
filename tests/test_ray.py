"""Launcher ray on a real Ray cluster started here on loopback: a head and a second node, each a
separate `ray start` process with one CPU. The same results as the subprocess launcher; a crash
and a hang on a worker recorded while the rest finish; no two variants on one node at once; a head
killed mid-run resumed without measuring anything twice. Skipped where Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from suite.__main__ import main
from suite.measure.endpoint import free_port
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


@pytest.fixture(scope="module")
def ray_folder(tmp_path_factory):
    """The cluster's logs, and each node's own user cache (XDG_CACHE_HOME): node-0, node-1."""
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def cluster(ray_folder):
    """A head and one more node, one CPU each, as two `ray start --block` processes labelled
    tier=head and tier=worker, each with a cache folder of its own as on separate machines (a run
    without --cache-dir uses it); stopped after this file's tests."""
    ray = pytest.importorskip("ray")
    port = free_port()
    env = [{**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "XDG_CACHE_HOME": str(ray_folder / f"node-{i}")}
           for i in range(2)]
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    logs = [open(ray_folder / f"ray-{i}.log", "w") for i in range(2)]
    nodes = [subprocess.Popen(["ray", "start", "--head", "--port", str(port), "--include-dashboard=false",
                               "--labels", "tier=head", *common],
                              env=env[0], stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)]
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: ray_ready(address), timeout_s=90)
        nodes.append(subprocess.Popen(["ray", "start", "--address", address, "--labels", "tier=worker", *common],
                                      env=env[1], stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
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
        assert all(end <= start for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False)), intervals


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

    # Each shape in two processes: the second ones spread over the nodes too, from the model the
    # first one built (shipped as a run-folder file).
    from suite.run import runner

    monkeypatch.setattr(runner, "QUIET_WAIT_S", 0.5)  # beside the other test worker the machine is rarely quiet
    status, out, _, twice = run_quick(write_scenario(SMALL.replace("[1, 4]}", "[1, 4], processes: 2}"), "two.yaml"),
                                      "--launcher", "ray", "--address", cluster)
    assert status == 0, out
    # Rounds 1 and 2, and 3 and 4 where a busy process was timed again (the machine is shared in CI).
    assert all(len(row["processes"]) >= 2 and {p["round"] for p in row["processes"]} <= {1, 2, 3, 4}
               for v in twice["variants"] for row in v["latency"])
    rounds = list((tmp_path / "reports").glob("*/*/rounds/*-2.json"))
    assert len(rounds) == 3 and len({json.loads(r.read_text())["node"]["node_id"] for r in rounds}) == 2

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


def test_fleet_mode_measures_every_variant_on_every_node(cluster, tmp_path, write_scenario, run_quick, cache_dir):
    """--on-each-node: a run folder per node with every variant measured there, and one page
    comparing the nodes; a label picks nodes; the head killed mid-run and --resume finishes it."""
    path = write_scenario(SMALL)
    status, out, err, _ = run_quick(path, "--launcher", "ray", "--address", cluster, "--on-each-node")
    assert status == 0, out
    [fleet_dir] = (tmp_path / "reports").glob("*/*/")
    fleet = json.loads((fleet_dir / "fleet.json").read_text())
    assert len(fleet["nodes"]) == 2 and fleet["labels"] == {}
    for entry in fleet["nodes"]:
        results = json.loads((fleet_dir / entry["folder"] / "results.json").read_text())
        assert [(v["name"], v["status"]) for v in results["variants"]] == [("fp32", "ok"), ("int8", "ok"),
                                                                           ("on-cpu", "ok")]
        assert {v["node"]["node_id"] for v in results["variants"]} == {entry["node_id"]}
        assert {v["weights"]["source"] for v in results["variants"]} == {"cache"}  # trained once, before
        no_overlap_on_a_node(results["variants"])
    assert "training 1 model(s) before timing" in err
    page = (fleet_dir / "comparison.html").read_text()
    assert "<h1>2 nodes compared</h1>" in page and "<h2>History</h2>" not in page
    assert all(entry["folder"].split("/")[-1] in page for entry in fleet["nodes"])
    assert f"nodes compared: {fleet_dir / 'comparison.html'}" in out
    assert main(["compare", str(fleet_dir / fleet["nodes"][0]["folder"]), str(fleet_dir / fleet["nodes"][1]["folder"]),
                 "--out", str(tmp_path / "cmp")]) == 0

    status, out, _, _ = run_quick(path, "--launcher", "ray", "--address", cluster, "--on-each-node", "tier=worker",
                                  "--only", "fp32")
    assert status == 0, out
    newest = max((tmp_path / "reports").glob("*/*/fleet.json"), key=lambda p: p.stat().st_mtime)
    [entry] = json.loads(newest.read_text())["nodes"]
    results = json.loads((newest.parent / entry["folder"] / "results.json").read_text())
    assert results["variants"][0]["node"]["labels"]["tier"] == "worker"

    for extra, says in ((["--on-each-node", "tier=nowhere"], "no live node with a CPU with labels"),
                        (["--on-each-node", "tier"], "'tier' is not KEY=VALUE"),
                        (["--on-each-node", "--launcher", "subprocess"], "use it with --launcher ray")):
        status, _, err, _ = run_quick(path, "--address", cluster, *(["--launcher", "ray"] if "--launcher" not in extra
                                                                     else []), *extra)
        assert status == 2 and err.strip().splitlines()[-1].startswith("error: ") and says in err, err

    # Killed mid-run: each node's saved variants are kept and --resume FLEET_DIR finishes every node.
    out_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "suite", "run", str(path), "--quick", "--out", str(out_dir), "--cache-dir",
               str(cache_dir), "--launcher", "ray", "--address", cluster, "--on-each-node"]
    head = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = wait_for(lambda: next(out_dir.glob("*/*/nodes/*/variants/fp32-*.json"), None), timeout_s=120)
    head.kill()
    head.wait()
    saved, fleet_dir = first.read_bytes(), first.parents[3]
    assert not (fleet_dir / "comparison.html").exists()
    assert main(["run", "--resume", str(fleet_dir)]) == 0
    assert first.read_bytes() == saved and (fleet_dir / "comparison.html").is_file()
    for entry in json.loads((fleet_dir / "fleet.json").read_text())["nodes"]:
        results = json.loads((fleet_dir / entry["folder"] / "results.json").read_text())
        assert [v["status"] for v in results["variants"]] == ["ok"] * 3
        assert {v["node"]["node_id"] for v in results["variants"]} == {entry["node_id"]}


def test_a_checkpoint_is_trained_once_and_shipped_to_the_other_node(cluster, ray_folder, tmp_path, write_scenario):
    """Without a shared cache folder (each node has its own, as separate machines do), the
    reference trains the checkpoint and the variants on the other node get it through Ray's
    object store instead of training it again."""
    path = write_scenario(SMALL.replace("hidden: [16]", "hidden: [12]"))
    assert main(["run", str(path), "--quick", "--out", str(tmp_path / "r"), "--launcher", "ray",
                 "--address", cluster]) == 0
    [results] = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/*/results.json")]
    variants = {v["name"]: v for v in results["variants"]}
    assert variants["fp32"]["weights"]["source"] == "trained"
    assert variants["int8"]["weights"]["source"] == variants["on-cpu"]["weights"]["source"] == "cache"
    assert len({v["node"]["node_id"] for v in variants.values()}) == 2  # so one of them ran on the other node
    checkpoints = [sorted((ray_folder / f"node-{i}" / "suite" / "checkpoints").glob("mlp-*.pt")) for i in range(2)]
    assert all(len(found) == 1 for found in checkpoints)
    assert checkpoints[0][0].name == checkpoints[1][0].name
    assert checkpoints[0][0].read_bytes() == checkpoints[1][0].read_bytes()


def test_packed_training_runs_before_anything_is_timed(cluster, tmp_path, write_scenario, run_quick):
    """isolation.pack_untimed_cpus: the checkpoints of two models are trained first, as 1-CPU
    tasks, and every variant then finds its checkpoint made before its own task began."""
    path = write_scenario(SMALL.replace("variants:", "isolation: {pack_untimed_cpus: 1}\nvariants:")
                          + "  - name: wider\n    model: {name: mlp, hidden: [24]}\n")
    status, out, err, results = run_quick(path, "--launcher", "ray", "--address", cluster)
    assert status == 0, out + err
    assert "training 2 model(s) before timing, 1 CPU(s) each, packed" in out + err
    assert {v["weights"]["source"] for v in results["variants"]} == {"cache"}
    first_task = min(v["node"]["started"] for v in results["variants"])
    made = [p.stat().st_mtime for p in (tmp_path / "cache" / "checkpoints").glob("mlp-*.pt")]
    assert len(made) == 2 and max(made) < first_task
