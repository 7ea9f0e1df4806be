"""Launcher `ray`: each variant a task on a node of a Ray cluster, owning all of that node's CPUs
while it runs (so two measurements never share cores). The task measures the variant in a child
process, forked from a fork server that the node's Ray worker keeps (suite.run.isolation: a fresh
process per variant, torch imported once per worker, the time-out and memory limit enforced on
the node, a crash captured with its log), as the subprocess launcher does on one machine.

The task is given what it needs as values: the run folder's scenario.yaml and run.json, and the
saved results and outputs of the variants it is compared with. It measures the variant in a run
folder of its own on the worker (suite.run.bench.variant_in_folder) and returns the files it wrote;
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
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from suite.config.scenario import Variant
from suite.errors import SuiteError, first_line
from suite.registry import MODELS
from suite.results import VariantResult
from suite.run.bench import base_result
from suite.run.launchers import Launch
from suite.run.run_folder import LOGITS, key
from suite.run.run_plan import RunOptions
from suite.tasks.base import agreement_reference

INSTALL = "pip install -c constraints.txt -e '.[ray]'"
POLL_S = 0.5
HEAD_GRACE_S = 120.0  # the node enforces isolation.timeout_s; the head gives up this much later


# Set (by fleet mode, on Ctrl-C) to stop every launcher of this process at its next poll.
STOP = threading.Event()


# What tasks built (suite.run.shipping): (manifest, bundle ref) pairs, one list per Ray session of
# this process (a reference is valid only there) and cache folder (the files' paths are relative
# to it), shared by the launchers that use both (fleet mode's nodes).
SHIPPED: dict[tuple[str, str], list[tuple[dict, Any]]] = {}
SHIPPED_LOCK = threading.Lock()


def shipped_in(ray: Any, cache_dir: Path | None) -> list[tuple[dict, Any]]:
    with SHIPPED_LOCK:
        return SHIPPED.setdefault((ray.get_runtime_context().get_job_id(), str(cache_dir or "")), [])


def connect(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` (None: RAY_ADDRESS, a cluster
    started on this machine, else a new local one); once per process."""
    if importlib.util.find_spec("ray") is None:
        raise SuiteError(f"--launcher ray needs Ray: {INSTALL}")
    import ray

    answering(address)  # a TCP connection: cheap, and an address given now is checked whatever came before
    if ray.is_initialized():  # (again, from a fleet's thread: Ray would warn about signal handlers)
        return ray
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    except Exception as exc:  # Ray raises a bare Exception for a node that did not start in time
        where = f"--address {address}: cannot connect to a Ray cluster" if address else (
            "--launcher ray: no Ray cluster could be reached or started here")
        raise SuiteError(f"{where} ({type(exc).__name__}: {first_line(exc)})") from None
    return ray


ANSWER_S = 10.0  # Ray itself waits for an address that does not answer, retrying for many minutes
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # and empty SETTINGS


def answering(address: str | None) -> None:
    """Refuse in one line, within ANSWER_S, the address Ray would connect to where no Ray cluster
    answers: --address, else RAY_ADDRESS, else the cluster last started on this machine (Ray's
    own lookup: a stale record of one that has stopped made Ray retry for many minutes). Not
    answering: a name that does not resolve, a closed port, or a server that is not gRPC (Ray's
    GCS and its client server speak gRPC: HTTP/2, which answers the client's preface with its
    SETTINGS frame). None, or "local": Ray starts a new cluster here, and nothing is checked."""
    import os

    option = "--address" if address else "RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else None
    target = address_to_use(address)
    if target in (None, "", "auto", "local"):
        return
    where = (f"{option} {target[:200]}" if option else
             f"--launcher ray: the Ray cluster last started on this machine ({target[:200]}, Ray's record of it)")
    host, sep, port = target.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SuiteError(f"{where}: not HOST:PORT (or ray://HOST:PORT)")
    why = no_answer(host.strip("[]"), int(port))
    if why is not None:
        hint = "" if option else "; start one (ray start --head), or give --address"
        raise SuiteError(f"{where}: no Ray cluster answered within {ANSWER_S:g} s ({why}){hint}")


def address_to_use(address: str | None) -> str | None:
    """The address ray.init(address) connects to: Ray's own lookup (RAY_ADDRESS, then the record
    `ray start` leaves of the last cluster started here); None: it starts a new one."""
    import os

    try:
        from ray._private.services import get_ray_address_from_environment

        return get_ray_address_from_environment(address, None)
    except ConnectionError as exc:  # "auto" and no cluster found
        raise SuiteError(f"--address {address}: {first_line(exc)}") from None
    except Exception:  # a Ray whose private lookup moved: the address as given
        return address or os.environ.get("RAY_ADDRESS") or None


def no_answer(host: str, port: int) -> str | None:
    """Why no gRPC server answers at host:port within ANSWER_S; None where one does."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=ANSWER_S) as sock:
            sock.settimeout(ANSWER_S)
            sock.sendall(HTTP2_PREFACE)
            frame = sock.recv(9)
    except socket.gaierror as exc:
        return f"the name does not resolve: {exc.strerror}"
    except TimeoutError:
        return "no answer"
    except OSError as exc:  # refused, unreachable
        return exc.strerror or type(exc).__name__
    return None if len(frame) == 9 and frame[3] == 4 else "it answered, but not as a Ray cluster: no gRPC there"


def cpu_nodes(ray: Any, labels: dict[str, str] | None = None) -> dict[str, dict]:
    """{node id: its entry in ray.nodes()} for the live nodes with a CPU (and `labels`, where given)."""
    return {node["NodeID"]: node for node in ray.nodes()
            if node["Alive"] and node["Resources"].get("CPU", 0) >= 1
            and all((node.get("Labels") or {}).get(k) == v for k, v in (labels or {}).items())}


class RayLauncher:
    @staticmethod
    def check(options: RunOptions) -> None:
        """Connect before the run folder is made: an address that does not answer leaves none."""
        connect(options.address)

    def __init__(self, run: Launch):
        self.run_of = run
        self.ray = ray = connect(run.address)
        nodes = cpu_nodes(ray)
        if not nodes:
            raise SuiteError("--launcher ray: the cluster has no node with a CPU")
        pinned = run.node  # fleet mode: this run is one node's
        self.nodes = {node: int(found["Resources"]["CPU"]) for node, found in nodes.items()
                      if pinned is None or node == pinned}
        self.task = ray.remote(max_retries=0, num_returns=3)(measure_on_node)
        self.shipped = shipped_in(ray, run.cache_dir)

    def run(self, variants: list[Variant], started: Any) -> Iterator[VariantResult]:
        """The checkpoints first where the scenario packs untimed work, then the references (others'
        agreement needs their outputs), then all the others."""
        scenario = self.run_of.scenario
        if scenario.isolation.pack_untimed_cpus and variants:
            self.train_first(variants)
        references = {agreement_reference(scenario, v, scenario.model_of(v)) for v in variants}
        yield from self.spread([v for v in variants if v.name in references], started)
        yield from self.spread([v for v in variants if v.name not in references], started)

    def again(self, variants: list[Variant], round_: int, started: Any) -> Iterator[VariantResult]:
        """Each variant's `round_`-th process, spread over the nodes like the first ones."""
        yield from self.spread(variants, started, round_)

    def spread(self, variants: list[Variant], started: Any, round_: int = 1) -> Iterator[VariantResult]:
        """Each variant (its `round_`-th process) on a free node, as many at once as there are nodes."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        waiting, free, running = list(variants), list(self.nodes), {}
        timeout = self.run_of.scenario.isolation.timeout_s + HEAD_GRACE_S
        try:
            while waiting or running:
                free = self.alive(free) if waiting else free
                if waiting and not free and not running:  # every node died
                    gone = (f"node {self.run_of.node} is no longer in the Ray cluster"
                            if self.run_of.node else "no node of the Ray cluster is alive")
                    for variant in waiting:
                        yield self.failed(variant, "Crash", gone, 0.0)
                    return
                while waiting and free:
                    variant, node = waiting.pop(0), free.pop(0)
                    started(variant)
                    strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
                    ref, *built = self.task.options(num_cpus=self.nodes[node], scheduling_strategy=strategy).remote(
                        self.files_for(variant, round_), variant.name, self.shipped_now(), round_)
                    running[ref] = (variant, node, time.monotonic(), built)
                if STOP.is_set():
                    raise KeyboardInterrupt
                ready, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    variant, node, since, built = running.pop(ref)
                    free.append(node)
                    self.keep_shipped(*built)
                    yield self.received(ref, variant, since, round_)
                for ref, (variant, node, since, _) in list(running.items()):
                    if time.monotonic() - since > timeout:
                        self.ray.cancel(ref, force=True)
                        running.pop(ref)
                        free.append(node)
                        yield self.failed(variant, "Timeout", f"no answer from its node in {timeout:g} s "
                                          "(isolation.timeout_s and the head's grace)", time.monotonic() - since)
        finally:  # interrupted: nothing goes on measuring on the cluster
            for ref in running:
                self.ray.cancel(ref, force=True)

    def train_first(self, variants: list[Variant]) -> None:
        """Each checkpoint the variants need trained before anything is timed, as tasks of
        isolation.pack_untimed_cpus CPUs each that Ray packs several to a node (training is not
        timed), or of a whole node where it is not set (fleet mode); what they build is shipped to
        the variants' tasks. A setup that fails to train here is logged and trains again in its
        first variant's task, which records the failure."""
        scenario, bars = self.run_of.scenario, self.run_of.bars
        setups: dict[str, Variant] = {}
        for v in variants:
            model_ref, dataset = scenario.model_of(v), v.dataset or scenario.dataset
            spec = MODELS.get(model_ref.name)
            if model_ref.checkpoint is None and spec.train is not None and not spec.provides_weights:
                setups.setdefault(json.dumps([model_ref.dump(), dataset and dataset.dump()], sort_keys=True), v)
        if not setups:
            return
        cpus = min(scenario.isolation.pack_untimed_cpus or 1 << 30, max(self.nodes.values()))
        task = self.ray.remote(max_retries=0, num_returns=2)(train_on_node)
        running = {}
        for v in setups.values():
            manifest, built = task.options(num_cpus=cpus).remote(self.files_for(v), v.name, cpus)
            running[manifest] = (v, built)
        deadline = time.monotonic() + scenario.isolation.timeout_s + HEAD_GRACE_S
        packed = "packed" if scenario.isolation.pack_untimed_cpus else "a whole node each"
        what = f"training {len(running)} model(s) before timing, {cpus} CPU(s) each, {packed}"
        bars.log(what)
        with bars.task(what, total=len(running)) as progress:
            try:
                while running and time.monotonic() < deadline:
                    if STOP.is_set():
                        raise KeyboardInterrupt
                    ready, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_S)
                    for manifest in ready:
                        v, built = running.pop(manifest)
                        failure = self.keep_shipped(manifest, built)
                        if failure:
                            bars.log(f"{v.name}: training on the cluster failed ({failure}); it trains in its own task")
                        progress.update(len(setups) - len(running))
            finally:
                for manifest in running:  # out of time, or interrupted
                    self.ray.cancel(manifest, force=True)

    def keep_shipped(self, manifest_ref: Any, bundle_ref: Any) -> str | None:
        """Keep a finished task's bundle of built files in the object store, for the tasks after it;
        why not, for a task that failed."""
        import ray.exceptions

        try:
            manifest = self.ray.get(manifest_ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            return f"{type(cause).__name__}: {first_line(cause)}"
        if manifest:
            with SHIPPED_LOCK:
                self.shipped.append((manifest, bundle_ref))
        return None

    def shipped_now(self) -> list[tuple[dict, Any]]:
        with SHIPPED_LOCK:
            return list(self.shipped)

    def alive(self, nodes: list[str]) -> list[str]:
        """Those of `nodes` the cluster still has (a dead node's tasks would wait for it forever)."""
        living = {node["NodeID"] for node in self.ray.nodes() if node["Alive"]}
        return [node for node in nodes if node in living]

    def files_for(self, variant: Variant, round_: int = 1) -> dict[str, bytes]:
        """The run folder's files the variant's task needs: the run's start, and the saved results
        and outputs of the variant it is compared with, and its search's saved trials; for a later
        process, the variant as its first process built it."""
        folder = self.run_of.folder.path
        scenario = self.run_of.scenario
        if round_ > 1:
            wanted = ["scenario.yaml", "run.json", f"built/{key(variant.name)}.pt"]
        else:
            reference = key(agreement_reference(scenario, variant, scenario.model_of(variant)))
            wanted = ["scenario.yaml", "run.json", "limits.json", f"variants/{reference}.json",
                      f"outputs/{reference}.npy", f"outputs/{reference}{LOGITS}", f"search/{key(variant.name)}.json"]
        return {name: (folder / name).read_bytes() for name in wanted if (folder / name).is_file()}

    def received(self, ref: Any, variant: Variant, since: float, round_: int = 1) -> VariantResult:
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

        folder = self.run_of.folder
        for name, data in files.items():  # its result, outputs and log, into the head's run folder
            atomic_write_bytes(folder.path / name, data)
        result = folder.round_result(variant.name, round_)
        if result is None:
            return self.failed(variant, "Crash", "the variant's Ray task saved no result", time.monotonic() - since)
        return result

    def failed(self, variant: Variant, error_type: str, reason: str, seconds: float) -> VariantResult:
        self.run_of.bars.log(f"{variant.name}: failed: {reason}")
        return replace(base_result(self.run_of.scenario, variant), status="failed", error=reason,
                       error_type=error_type, seconds=round(seconds, 3))


def measure_on_node(files: dict[str, bytes], name: str, shipped: list, round_: int = 1) -> tuple[dict, dict, dict]:
    """The Ray task: the variant measured (its `round_`-th process) in a child process in a run
    folder of its own, on this node, after the files other tasks built that this node's cache lacks are laid down; the files
    it wrote in the run folder (its result with the node's fingerprint, its outputs, limits.json,
    its log), and the manifest and bundle of what it added to the cache (suite.run.shipping)."""
    import os
    import socket
    import tempfile

    import ray

    from suite.build.weights import cache_root
    from suite.measure.environment import cpu_model, gpu_details
    from suite.progress import Bars
    from suite.run import shipping
    from suite.run.launchers import in_child
    from suite.run.run_plan import variant_of_run

    with tempfile.TemporaryDirectory(prefix="suite-ray-") as tmp:
        folder = unpacked(files, Path(tmp))
        scenario, options, variant, _ = variant_of_run(folder, name)
        root = cache_root(options.cache_dir)  # this node's
        shipping.lay_down(root, shipped, ray.get)
        before = shipping.snapshot(root)
        began = time.time()
        result = in_child(folder, scenario, variant, Bars(plain=True), round_)
        context = ray.get_runtime_context()
        node = {"node_id": context.get_node_id(), "host": socket.gethostname(), "cpu": cpu_model(),
                "cores": os.cpu_count(), "cpus_owned": context.get_assigned_resources().get("CPU"),
                "gpus": gpu_details().get("count", 0), "started": began, "ended": time.time(),
                "labels": {str(k): str(v) for k, v in (context.get_node_labels() or {}).items()}}
        folder.save_round(replace(result, node=node), round_)
        made = [folder.path / "limits.json", folder.log_file(name), folder.round_file(name, 1),
                folder.path / "outputs" / f"{key(name)}.npy", folder.path / "outputs" / f"{key(name)}{LOGITS}",
                folder.path / "search" / f"{key(name)}.json",
                folder.path / "built" / f"{key(name)}.pt"] if round_ == 1 else [folder.round_file(name, round_)]
        return ({str(path.relative_to(folder.path)): path.read_bytes() for path in made if path.is_file()},
                *shipping.bundle(root, before))


def train_on_node(files: dict[str, bytes], name: str, cpus: int) -> tuple[dict, dict]:
    """A packed Ray task (isolation.pack_untimed_cpus): the checkpoint variant `name` needs,
    trained (or found) in this node's cache with `cpus` threads; the manifest and bundle of what
    it added there."""
    import tempfile

    import torch

    from suite.build.building import Builder
    from suite.build.weights import cache_root
    from suite.progress import Bars
    from suite.run import shipping
    from suite.run.run_plan import use_sys_path, variant_of_run

    with tempfile.TemporaryDirectory(prefix="suite-ray-") as tmp:
        folder = unpacked(files, Path(tmp))
        use_sys_path(folder)
        scenario, options, variant, _ = variant_of_run(folder, name)
        root = cache_root(options.cache_dir)  # this node's
        before = shipping.snapshot(root)
        torch.set_num_threads(cpus)
        builder = Builder(scenario, Bars(plain=True), cpus, options.cache_dir)
        model_ref = scenario.model_of(variant)
        builder.trained_model(model_ref, builder.dataset(variant, model_ref))
        return shipping.bundle(root, before)


def unpacked(files: dict[str, bytes], path: Path) -> Any:
    """A run folder at `path` holding `files` (relative path -> bytes)."""
    from suite.run.run_folder import RunFolder

    folder = RunFolder(path)
    for relative, data in files.items():
        (folder.path / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder.path / relative).write_bytes(data)
    return folder

