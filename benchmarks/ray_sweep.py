"""Wall time of a 16-variant sweep (the MLP on digits, --quick) through the subprocess launcher and
through the Ray launcher on a local cluster of 1 and then 2 nodes of one CPU each, started here
(`ray start`, loopback). Not a test: it prints figures.

    python benchmarks/ray_sweep.py [--full]

--full drops --quick (the sweep then takes minutes). On one 2-core machine two 1-CPU nodes share
the cores that a single run would use, so the figure says what Ray costs and overlaps (each
variant's process start and imports), not what a cluster of separate machines gains: there,
each node brings its own cores and memory bandwidth, and the sweep's wall time divides by about
the number of nodes, less the reference variant that runs first and alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = """
name: ray-sweep
model: {name: mlp, hidden: [64]}
measure: {batch_sizes: [1, 32]}
variants:
  - name: fp32
  - name: int8
    compress: [int8_dynamic]
  - name: bf16
    compress: [bf16]
  - name: pruned
    compress: [{method: magnitude, sparsity: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99]}]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_node(*args: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(["ray", "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def nodes_alive(address: str) -> int:
    done = subprocess.run(["ray", "status", "--address", address], capture_output=True, text=True)
    return done.stdout.count("node_") if done.returncode == 0 else 0


def wait_nodes(address: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while nodes_alive(address) < count:
        if time.monotonic() > deadline:
            sys.exit(f"the Ray cluster at {address} did not reach {count} nodes in 120 s")
        time.sleep(1)


def timed_run(scenario: Path, out: Path, cache: Path, quick: bool, *extra: str) -> float:
    command = [sys.executable, "-m", "suite", "run", str(scenario), "--out", str(out), "--cache-dir", str(cache),
               *(["--quick"] if quick else []), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full timing plans instead of --quick")
    args = parser.parse_args()
    quick = not args.full
    with tempfile.TemporaryDirectory(prefix="ray-sweep-") as tmp:
        root = Path(tmp)
        scenario, cache = root / "sweep.yaml", root / "cache"
        scenario.write_text(SWEEP)
        timed_run(scenario, root / "warm", cache, quick, "--only", "fp32")  # trains once: every run loads it
        local = timed_run(scenario, root / "subprocess", cache, quick, "--launcher", "subprocess")
        port = free_port()
        address = f"127.0.0.1:{port}"
        nodes = [start_node("--head", "--port", str(port), "--include-dashboard=false")]
        try:
            wait_nodes(address, 1)
            one = timed_run(scenario, root / "ray1", cache, quick, "--launcher", "ray", "--address", address)
            nodes.append(start_node("--address", address))
            wait_nodes(address, 2)
            two = timed_run(scenario, root / "ray2", cache, quick, "--launcher", "ray", "--address", address)
        finally:
            for node in reversed(nodes):
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=60)
    mode = "--quick" if quick else "full timing plans"
    print(f"16 variants (MLP on digits, {mode}), {os.cpu_count()} cores on this machine, wall time:")
    print(f"  subprocess launcher (one variant at a time, all cores):  {local:6.1f} s")
    print(f"  ray, 1 node of 1 CPU:                                    {one:6.1f} s  ({one / local:.2f}x the subprocess run)")
    print(f"  ray, 2 nodes of 1 CPU each:                              {two:6.1f} s  ({two / one:.2f}x the 1-node run)")


if __name__ == "__main__":
    main()
