"""Launcher `ray`: each variant a task on a node of a Ray cluster, owning all of that node's CPUs
while it runs (so two measurements never share cores). The task measures the variant in a child
process, forked from a fork server that the node's Ray worker keeps (suite.isolation: a fresh
process per variant, torch imported once per worker, the time-out and memory limit enforced on
the node, a crash captured with its log), as the subprocess launcher does on one machine.

The task is given what it needs as values: the run folder's scenario.yaml and run.json, and the
saved results and outputs of the variants it is compared with. It measures the variant in a run
folder of its own on the worker (suite.bench.variant_in_folder) and returns the files it wrote;
the head writes them into its run folder as each task finishes, so Ctrl-C and --resume work as
with the other launchers. Variants that others are compared with run first. A variant that
crashes, hangs or runs out of memory on its node, a task whose worker or node dies, or one that
the head has not heard of in isolation.timeout_s plus HEAD_GRACE_S, is recorded as failed with
the reason, and the run goes on. Each result carries the node that measured it (`node`).

Paths in the scenario (the user's files, the cache folder) must mean the same on every node: one
machine, or a shared file system. An optional extra: pip install -c constraints.txt -e '.[ray]'.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from suite.bench import Bench, agreement_reference, base_result
from suite.errors import SuiteError, first_line
from suite.results import VariantResult
from suite.run_folder import key
from suite.scenario import Variant

INSTALL = "pip install -c constraints.txt -e '.[ray]'"
POLL_S = 0.5
HEAD_GRACE_S = 120.0  # the node enforces isolation.timeout_s; the head gives up this much later


class RayLauncher:
    def __init__(self, bench: Bench):
        if importlib.util.find_spec("ray") is None:
            raise SuiteError(f"--launcher ray needs Ray: {INSTALL}")
        import ray

        self.bench, self.ray = bench, ray
        address = bench.options.address
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False,
                     ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SuiteError(f"--address {address}: cannot connect to a Ray cluster ({first_line(exc)})") from None
        self.nodes = {node["NodeID"]: int(node["Resources"]["CPU"]) for node in ray.nodes()
                      if node["Alive"] and node["Resources"].get("CPU", 0) >= 1}
        if not self.nodes:
            raise SuiteError("--launcher ray: the cluster has no node with a CPU")
        self.task = ray.remote(max_retries=0)(measure_on_node)

    def run(self, variants: list[Variant], started: Any) -> Iterator[VariantResult]:
        """The references first (others' agreement needs their outputs), then all the others."""
        scenario = self.bench.scenario
        references = {agreement_reference(scenario, v, scenario.model_of(v)) for v in variants}
        yield from self.spread([v for v in variants if v.name in references], started)
        yield from self.spread([v for v in variants if v.name not in references], started)

    def spread(self, variants: list[Variant], started: Any) -> Iterator[VariantResult]:
        """Each variant on a free node, as many at once as there are nodes."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        waiting, free, running = list(variants), list(self.nodes), {}
        timeout = self.bench.scenario.isolation.timeout_s + HEAD_GRACE_S
        try:
            while waiting or running:
                free = self.alive(free) if waiting else free
                if waiting and not free and not running:  # every node died
                    for variant in waiting:
                        yield self.failed(variant, "Crash", "no node of the Ray cluster is alive", 0.0)
                    return
                while waiting and free:
                    variant, node = waiting.pop(0), free.pop(0)
                    started(variant)
                    strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
                    ref = self.task.options(num_cpus=self.nodes[node], scheduling_strategy=strategy).remote(
                        self.files_for(variant), variant.name)
                    running[ref] = (variant, node, time.monotonic())
                ready, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    variant, node, since = running.pop(ref)
                    free.append(node)
                    yield self.received(ref, variant, since)
                for ref, (variant, node, since) in list(running.items()):
                    if time.monotonic() - since > timeout:
                        self.ray.cancel(ref, force=True)
                        running.pop(ref)
                        free.append(node)
                        yield self.failed(variant, "Timeout", f"no answer from its node in {timeout:g} s "
                                          "(isolation.timeout_s and the head's grace)", time.monotonic() - since)
        finally:  # interrupted: nothing goes on measuring on the cluster
            for ref in running:
                self.ray.cancel(ref, force=True)

    def alive(self, nodes: list[str]) -> list[str]:
        """Those of `nodes` the cluster still has (a dead node's tasks would wait for it forever)."""
        living = {node["NodeID"] for node in self.ray.nodes() if node["Alive"]}
        return [node for node in nodes if node in living]

    def files_for(self, variant: Variant) -> dict[str, bytes]:
        """The run folder's files the variant's task needs: the run's start, and the saved results
        and outputs of the variant it is compared with."""
        folder = self.bench.folder.path
        scenario = self.bench.scenario
        reference = key(agreement_reference(scenario, variant, scenario.model_of(variant)))
        wanted = ["scenario.yaml", "run.json", "limits.json", f"variants/{reference}.json",
                  f"outputs/{reference}.npy"]
        return {name: (folder / name).read_bytes() for name in wanted if (folder / name).is_file()}

    def received(self, ref: Any, variant: Variant, since: float) -> VariantResult:
        """The task's result written into the head's run folder, or a failed one (`since`: when the
        task was submitted)."""
        import ray.exceptions

        try:
            files = self.ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return self.failed(variant, type(cause).__name__, f"{type(cause).__name__}: {first_line(cause)}",
                               time.monotonic() - since)
        except ray.exceptions.RayError as exc:  # the worker or its node died, or the task was cancelled
            return self.failed(variant, "Crash", f"the variant's Ray task ended: {type(exc).__name__}: "
                               f"{first_line(exc)}", time.monotonic() - since)
        from suite.results import atomic_write_bytes

        folder = self.bench.folder
        for name, data in files.items():  # its result, outputs and log, into the head's run folder
            atomic_write_bytes(folder.path / name, data)
        result = folder.finished(variant.name)
        if result is None:
            return self.failed(variant, "Crash", "the variant's Ray task saved no result", time.monotonic() - since)
        return result

    def failed(self, variant: Variant, error_type: str, reason: str, seconds: float) -> VariantResult:
        self.bench.bars.log(f"{variant.name}: failed: {reason}")
        return replace(base_result(self.bench.scenario, variant), status="failed", error=reason,
                       error_type=error_type, seconds=round(seconds, 3))


def measure_on_node(files: dict[str, bytes], name: str) -> dict[str, bytes]:
    """The Ray task: the variant measured in a child process in a run folder of its own, on this
    node; the files it wrote there (its result with the node's fingerprint, its outputs,
    limits.json, its log)."""
    import os
    import socket
    import tempfile

    import ray

    from suite.environment import cpu_model, gpu_details
    from suite.launchers import in_child
    from suite.progress import Bars
    from suite.run_folder import RunFolder
    from suite.run_plan import variant_of_run

    with tempfile.TemporaryDirectory(prefix="suite-ray-") as tmp:
        folder = RunFolder(Path(tmp))
        for relative, data in files.items():
            (folder.path / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder.path / relative).write_bytes(data)
        scenario, _, variant, _ = variant_of_run(folder, name)
        began = time.time()
        result = in_child(folder, scenario, variant, Bars(plain=True))
        context = ray.get_runtime_context()
        node = {"node_id": context.get_node_id(), "host": socket.gethostname(), "cpu": cpu_model(),
                "cores": os.cpu_count(), "cpus_owned": context.get_assigned_resources().get("CPU"),
                "gpus": gpu_details().get("count", 0), "started": began, "ended": time.time()}
        folder.save_variant(replace(result, node=node))
        made = [folder.path / "limits.json", folder.log_file(name), folder.path / "variants" / f"{key(name)}.json",
                folder.path / "outputs" / f"{key(name)}.npy"]
        return {str(path.relative_to(folder.path)): path.read_bytes() for path in made if path.is_file()}
