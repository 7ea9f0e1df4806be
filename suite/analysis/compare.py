"""The one place where two runs are compared, for `suite compare`, the stored-baseline `suite
gate` and the page comparing many runs (suite.report.comparison), so they cannot disagree on the
same pair: variants matched by name and input shape (and checked to be the same thing), each
pair's latency ratio with its interval (across processes where both sides were timed in several,
suite.measure.processes; else a bootstrap of the samples with Mann-Whitney's test), and the
verdict by the one rule (suite.measure.significance); and the
fingerprint fields that must agree before two runs' latencies mean anything side by side (the
machine: the run's, or the node that measured the variant)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from suite.errors import SuiteError, quote
from suite.measure import neighbours
from suite.measure.processes import compare_rows
from suite.measure.significance import ALPHA, Comparison
from suite.results import RunResult, VariantResult

# What must be equal for two runs' latencies to be compared: the hardware and the software that
# runs the model. (Clocks, governor, platform string and git commit may differ: that is the point.)
MUST_MATCH = ("cpu", "cores", "gpu", "torch")
# What a page of many runs also shows of each run's environment, to tell them apart.
SHOWN = (*MUST_MATCH, "python", "platform", "git_commit")


@dataclass(frozen=True)
class Row:
    variant: str
    shape: str
    base_ms: float
    candidate_ms: float
    comparison: Comparison
    # What other processes did while the samples were taken (a busy side's, where one was busy).
    others: dict | None = None

    def busy_warning(self) -> str | None:
        if not neighbours.busy(self.others):
            return None
        return neighbours.warning(f"{self.variant} {self.shape}", self.others) + "; decided on those samples"

    def cells(self, alpha: float = ALPHA) -> list[str]:
        """The table row shown by `suite compare` / `suite gate` and written to their Markdown."""
        c = self.comparison
        return [self.variant, self.shape, f"{self.base_ms:.4g}", f"{self.candidate_ms:.4g}", f"{c.ratio:.3f}",
                f"{c.ci_low:.3f} – {c.ci_high:.3f}", f"{c.p_value:.2g}", c.verdict(alpha)]

    def to_dict(self, alpha: float = ALPHA) -> dict:
        return {"variant": self.variant, "shape": self.shape, "base_ms": self.base_ms,
                "candidate_ms": self.candidate_ms, **asdict(self.comparison), "verdict": self.comparison.verdict(alpha),
                "others": self.others, "busy_warning": self.busy_warning()}


def compare_runs(base: RunResult, candidate: RunResult, percentile: int = 50) -> list[Row]:
    """Every (variant, input shape) measured in both runs, compared by `compare_rows`; SuiteError
    when a variant of the same name is another thing on the other side (model, its parameters,
    dataset, compression, backend): that would compare two different models."""
    check_same_variants(base, candidate)
    rows = []
    theirs = latency_rows(candidate)
    for (name, shape), mine in latency_rows(base).items():
        other = theirs.get((name, shape))
        if other is not None:
            rows.append(Row(name, shape, percentile_of(mine, percentile), percentile_of(other, percentile),
                            compare_rows(mine, other, f"p{percentile}_ms"),
                            busier(other.others, mine.others)))
    return rows


def latency_rows(run: RunResult) -> dict[tuple[str, str], Any]:
    """{(variant, input shape): its latency row}, in the run's order."""
    return {(v.name, row.shape): row for v in run.variants for row in v.latency}


def identity(run: RunResult, v: VariantResult) -> dict:
    """What a variant is, from its run's scenario: model and parameters, dataset, compression steps
    with theirs, backend with its settings (where --backend moved it: the backend's name alone)."""
    spec = next((s for s in run.scenario.get("variants", ()) if isinstance(s, dict) and s.get("name") == v.name), {})
    backend = spec.get("backend") if isinstance(spec.get("backend"), dict) else {}
    return {"model": spec.get("model") or run.scenario.get("model") or {"name": v.model},
            "dataset": spec.get("dataset") or run.scenario.get("dataset") or "the model's default",
            "compression": [dict(step) for step in v.compress],
            "backend": backend if backend.get("name") == v.backend else {"name": v.backend}}


def differences(mine: Any, theirs: Any, where: str) -> list[str]:
    """Where two identities differ. A key on one side only is a setting added (or dropped) with its
    default since the other run, not a difference; of a file, only its name counts (clones differ)."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [d for k in mine.keys() & theirs.keys() for d in differences(mine[k], theirs[k], f"{where}.{k}")]
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) for d in differences(a, b, f"{where}[{i}]")]
    if where.rsplit(".", 1)[-1] in ("path", "checkpoint") and isinstance(mine, str) and isinstance(theirs, str):
        mine, theirs = Path(mine).name, Path(theirs).name
    return [] if mine == theirs else [f"{where}: {quote(mine, 60)} vs {quote(theirs, 60)}"]


def check_same_variants(base: RunResult, candidate: RunResult) -> None:
    theirs = {v.name: v for v in candidate.variants}
    for v in base.variants:
        if v.name in theirs and v.latency and theirs[v.name].latency:
            found = differences(identity(base, v), identity(candidate, theirs[v.name]), v.name)
            if found:
                raise SuiteError(f"variant {v.name!r} is not the same thing in the two runs ({'; '.join(found[:3])}): "
                                 "compare runs of one scenario, or give the variants different names")


def busier(*records: dict | None) -> dict | None:
    """The first record of a busy machine among `records`, else the first there is."""
    return next((r for r in records if neighbours.busy(r)), next((r for r in records if r), None))


def percentile_of(row, percentile: int) -> float:
    return getattr(row, f"p{percentile}_ms")


def env_differences(base: RunResult, candidate: RunResult) -> list[str]:
    """What differs that matters: hardware, torch, and for each matched variant the version of its
    backend and the machine that measured it (a Ray node's CPU, cores and GPUs)."""
    found = [f"{key}: {base.environment.get(key)!r} vs {candidate.environment.get(key)!r}" for key in MUST_MATCH
             if base.environment.get(key) != candidate.environment.get(key)]
    theirs = {v.name: v for v in candidate.variants}
    for v in base.variants:
        other = theirs.get(v.name)
        if other is None or v.status != "ok" or other.status != "ok":
            continue
        mine, their = v.backend_info.get("version"), other.backend_info.get("version")
        if (v.backend, mine) != (other.backend, their):
            found.append(f"{v.name}: backend {v.backend} {mine} vs {other.backend} {their}")
        machines = machine(base, v), machine(candidate, other)
        if (v.node or other.node) and machines[0] != machines[1]:  # else the run-wide keys above say it
            found.append(f"{v.name}: measured on {describe(machines[0])} vs {describe(machines[1])}")
    return found


def machine(run: RunResult, v: VariantResult) -> tuple:
    """The hardware that measured a variant, its node's where a launcher sent it to one, else its
    run's: (CPU model, cores, whether it had a GPU)."""
    if v.node is not None:
        return v.node.cpu, v.node.cores, v.node.gpus > 0
    return run.environment.get("cpu"), run.environment.get("cores"), bool(run.environment.get("gpu"))


def describe(found: tuple) -> str:
    cpu, cores, gpu = found
    return f"{cpu} ({cores} cores{', a GPU' if gpu else ''})"


def check_same_machine(base: RunResult, candidate: RunResult, allow_mismatch: bool) -> list[str]:
    """The differences (for a warning) when allowed; a SuiteError naming them when not."""
    differences = env_differences(base, candidate)
    if differences and not allow_mismatch:
        raise SuiteError("the two runs' environments differ in what matters for latency ("
                         + "; ".join(differences) + "): compare runs from one machine and software "
                         "stack, or pass --allow-env-mismatch")
    return differences
