"""Results: immutable dataclasses, versioned JSON (written atomically) and CSV.

Schema history. A field added with a default needs no new version; a change that removes,
renames or reshapes a field bumps SCHEMA_VERSION and adds a step to MIGRATIONS, which turns a file
of the version before into this one, so that a stored baseline or an interrupted run from an
older suite still loads (pyperf's loader does the same):
  1: first version: the contract of the foundation issue. Fields added since, with defaults so
     that older files still load: latency/throughput `seq_len`, run `selection`, variant
     `fidelity`, latency `timer` and `end_to_end`, variant `stderr_tail`, `energy_reason`,
     `gpu_memory`, `harness_overhead_us`, `load`; latency `p90_bound_ms`, `p99_bound_ms`, `others`; variant `phases`;
     latency / throughput `metric` and variant `generation` (generative decoders); variant `node`.
  2: the variant's records are typed (suite.records: weights, compression steps, fidelity,
     energy, load, node; phases are seconds by name). The offline load mode's
     `samples_per_s_by_batch_size` ({"8": 1234.5}: batch sizes as strings) became `by_batch_size`
     ([{"batch_size": 8, "samples_per_s": 1234.5}]); a variant without weights has null, not {}.
     A saved variant (variants/<key>.json) now
     carries its schema_version too (none: version 1). Added since, with a default: variant
     `profile` (where the time goes), `task` (the model's task).
  3: a shape is timed in several processes (suite.measure.processes): a latency row's
     `ci95_p50_ms` is the interval across them (it was the bootstrap interval within the one
     process), its samples are all processes' in order, and `processes` lists each process's
     round, sample count, median and within-process interval. A version-2 row becomes one
     process, its interval kept as that process's. Added since, with a default: load `stopped`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.config.params import checked
from suite.errors import SuiteError, first_line, quote
from suite.measure.stats import LatencyStats
from suite.records import RECORDS, CompressRecord, Energy, Fidelity, Load, Node, Profile, Search, Weights, as_record

SCHEMA_VERSION = 3


@dataclass(frozen=True, kw_only=True)
class LatencyResult(LatencyStats):
    """The statistics of one batch size, with the raw samples they derive from."""

    batch_size: int
    samples_ms: tuple[float, ...]
    loops: int = 1  # calls per sample; > 1 only for calls too short to time one by one
    warmup_calls: int = 0
    stopped_by: str = "enough"
    seq_len: int | None = None  # token inputs padded or cut to this length; None: as the dataset gives them
    # "perf_counter": host clock, synchronized; "cuda_events": device time on the CUDA stream,
    # inputs already on the device. On a GPU `end_to_end` adds the host clock's figures from host
    # inputs to host outputs, copies included.
    timer: str = "perf_counter"
    end_to_end: dict | None = None
    # What other processes did while these samples were taken (suite.measure.neighbours): their
    # CPU seconds, share of one core, the load average; None in results from before it was kept.
    others: dict | None = None
    # What one sample is: "call", one forward pass on a batch; for generative decoders (seq_len is
    # then the prompt length) "ttft", a prefill up to the first new token; "tpot", one decode step
    # (time per output token); "request", a prompt and all its new tokens.
    metric: str = "call"
    # One entry per process that timed this shape, in the order of its samples in `samples_ms`:
    # {"round": 1.., "n": samples, "p50_ms": its median, "ci95_p50_ms": [low, high] within it}.
    # With two or more, `ci95_p50_ms` is the interval across processes (suite.measure.processes).
    processes: tuple[dict, ...] = ()

    @property
    def shape(self) -> str:
        return shape_label(self.batch_size, self.seq_len, self.metric)

    @property
    def across_processes(self) -> bool:
        """Whether `ci95_p50_ms` covers the differences between processes (two or more timed it)."""
        return len(self.processes) >= 2


@dataclass(frozen=True)
class ThroughputResult:
    batch_size: int
    samples_per_s: float  # inputs per second; decoders: tokens per second (ttft: prompt tokens)
    seq_len: int | None = None
    metric: str = "call"

    @property
    def shape(self) -> str:
        return shape_label(self.batch_size, self.seq_len, self.metric)


METRIC_ORDER = ("call", "ttft", "tpot", "request")


def shape_label(batch_size: int, seq_len: int | None, metric: str = "call") -> str:
    """'b=8', or 'b=8 s=128' when the row is for one sequence length; decoders' rows
    'tpot b=8 p=128' (p: the prompt length)."""
    if metric == "call":
        return f"b={batch_size}" + ("" if seq_len is None else f" s={seq_len}")
    return f"{metric} b={batch_size}" + ("" if seq_len is None else f" p={seq_len}")


# A warning about one shape starts with its label (shape_label), after "process N: " where a later
# process of the variant said it (suite.measure.processes).
SHAPE_PREFIX = re.compile(r"^(?:process (?P<process>\d+): )?(?P<shape>(?:(?:ttft|tpot|request) )?b=\d+(?: [sp]=\d+)?): ")


def measured_shapes(variants: tuple[VariantResult, ...]) -> list[str]:
    """The labels of every input shape any variant was timed at, by metric, sequence length, batch size."""
    def order(metric: str) -> int:
        return METRIC_ORDER.index(metric) if metric in METRIC_ORDER else len(METRIC_ORDER)

    rows = {(order(row.metric), row.metric, row.seq_len or 0, row.batch_size): row.shape
            for v in variants for row in v.latency}
    return [rows[key] for key in sorted(rows)]


@dataclass(frozen=True)
class VariantResult:
    name: str
    model: str
    backend: str
    compress: tuple[dict, ...] = ()
    status: str = "ok"  # "ok" | "failed" | "skipped"
    error: str | None = None
    error_type: str | None = None  # "SuiteError" (bad input) or the exception type of a crash
    accuracy: float | None = None
    accuracy_reason: str | None = None  # why accuracy is null: "untrained", no labels, ...
    agreement: float | None = None
    agreement_with: str | None = None  # the variant whose predictions `agreement` compares to
    fidelity: Fidelity | None = None  # outputs against agreement_with's
    size_bytes: int | None = None
    params: int | None = None  # weights stored: parameters, or the quantized weights that replaced them
    peak_rss_bytes: int | None = None
    latency: tuple[LatencyResult, ...] = ()
    throughput: tuple[ThroughputResult, ...] = ()
    energy: Energy | None = None  # meter, idle baseline and per-shape joules; None: see energy_reason
    energy_reason: str | None = None
    gpu_memory: dict | None = None  # peak allocated / reserved on the GPU
    harness_overhead_us: float | None = None  # the harness's own cost per timed call (a no-op timed)
    load: Load | None = None  # the load mode's result (offline: best throughput; server: highest rate)
    warnings: tuple[str, ...] = ()
    dataset: dict | None = None
    backend_info: dict = field(default_factory=dict)  # version, device, ...
    weights: Weights | None = None  # where the weights came from: trained, cache, checkpoint, ...
    compress_records: tuple[CompressRecord, ...] = ()
    seconds: float | None = None  # wall time spent on this variant, training included
    phases: dict[str, float] | None = None  # where those seconds went: {phase: seconds} (suite.phases)
    stderr_tail: str | None = None  # the last lines its process wrote, when that process died
    # The machine that measured it, when a launcher ran it on another (ray): node id, host, CPU
    # model, cores, the CPUs it owned, GPUs, start and end (epoch seconds).
    node: Node | None = None
    # Generative decoders (suite.tasks.generate): settings, perplexity, greedy fidelity, generated texts,
    # KV cache bytes, the machine's limits and the share of them each figure reached.
    generation: dict | None = None
    # The model's task (suite.tasks: "classify", "generate"); None in files from before it was kept.
    task: str | None = None
    # Where the time goes (measure.profile): work, roofline position and operators at each shape.
    profile: Profile | None = None
    # An accuracy-aware search's goal, trials and choice (suite.build.search); None for other variants.
    search: Search | None = None

    def __post_init__(self) -> None:
        """Records handed over as plain dicts (by the code that measured them) become typed ones."""
        for name, cls in RECORDS.items():
            object.__setattr__(self, name, as_record(cls, getattr(self, name)))
        records = tuple(as_record(CompressRecord, r) for r in self.compress_records)
        object.__setattr__(self, "compress_records", records)

    @property
    def perplexity(self) -> float | None:
        """A decoder's perplexity on the held-out text; None for other models."""
        return ((self.generation or {}).get("perplexity") or {}).get("perplexity")


@dataclass(frozen=True)
class RunResult:
    suite_version: str
    created: str  # ISO-8601 UTC
    scenario: dict
    environment: dict
    variants: tuple[VariantResult, ...]
    quick: bool = False  # figures from a --quick run: a smoke test, not a benchmark
    selection: dict | None = None  # the scenario's `select`: recommended variant, those over budget
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["variants"] = [variant_dict(v) for v in self.variants]
        data, _ = finite(data)
        return {"schema_version": data.pop("schema_version"), **data}


def variant_dict(result: VariantResult) -> dict[str, Any]:
    """A variant as JSON-ready data that always loads back: a NaN or infinite figure (a meter that
    wrapped, outputs that overflowed) becomes null, and a latency or throughput row with one is
    left out (its statistics derive from its samples), each with a warning saying where, so
    writing never fails a run and the run folder stays resumable. A record's unset (None) fields
    are left out: they load back as None."""
    data = dataclasses.asdict(result)
    for name in (*RECORDS, "compress_records"):
        data[name] = compact(getattr(result, name))
    notes = []
    for key in ("latency", "throughput"):
        bad = [row for row in data[key] if finite(row)[1]]
        if bad:
            data[key] = [row for row in data[key] if row not in bad]
            shapes = ", ".join(shape_label(row["batch_size"], row.get("seq_len"), row.get("metric", "call"))
                               for row in bad)
            notes.append(f"{key} at {shapes} left out: its figures were not finite")
    data, where = finite(data)
    if where:
        more = f" and {len(where) - 5} more" if len(where) > 5 else ""
        notes.append(f"non-finite figures written as null: {', '.join(where[:5])}{more}")
    data["warnings"] = [*data["warnings"], *notes]
    return data


def compact(value: Any) -> Any:
    """A record as JSON data without its None fields (a dict inside it kept whole)."""
    if dataclasses.is_dataclass(value):
        return {f.name: compact(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None}
    if isinstance(value, (list, tuple)):
        return [compact(v) for v in value]
    return value


def finite(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """`value` with every NaN or infinity replaced by None, and the key paths of those replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "(value)"]
    if isinstance(value, dict):
        pairs = [(k, finite(v, f"{path}.{k}" if path else str(k))) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, [p for _, (_, found) in pairs for p in found]
    if isinstance(value, (list, tuple)):
        items = [finite(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in items], [p for _, found in items for p in found]
    return value, []


def discard(*paths: Path) -> None:
    """Remove damaged files of suite's own (cache entries, saved trials), whatever they became (a
    link, a file, a folder)."""
    import shutil

    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif os.path.lexists(path):
                path.unlink()
        except OSError as exc:
            raise SuiteError(f"{path}: damaged, and it cannot be removed ({exc.strerror})") from None


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, text, "w")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, data, "wb")


def _atomic_write(path: Path, content: str | bytes, mode: str) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: say which file could not be written, not the temporary one
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_json(run: RunResult, path: Path) -> None:
    atomic_write_text(path, json.dumps(run.to_dict(), indent=1, allow_nan=False) + "\n")


def load_json(path: str | Path) -> RunResult:
    """Read a results.json (or the one inside a run folder); anything that is not one, damaged
    or foreign, is a one-line SuiteError naming the file and, where it can, the field."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = read_json(path)
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: not a suite results file (the JSON is a {type(data).__name__}, not an object)")
    return run_from_dict(migrated(data, data.get("schema_version"), path), path)


def migrated(data: dict, version: Any, path: Path | str) -> dict:
    """A results file's data (or a saved variant's: data without `variants`) brought from `version` to
    SCHEMA_VERSION, one step of MIGRATIONS at a time; SuiteError for a version this suite does
    not know (a newer suite's, or not a suite file at all)."""
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        newer = type(version) is int and version > SCHEMA_VERSION
        raise SuiteError(f"{path}: schema_version {quote(version, 40)} is not one this suite reads (1 to "
                         f"{SCHEMA_VERSION}): " + ("written by a newer suite: upgrade suite to read it" if newer
                                                   else "not a suite results file"))
    data = dict(data)
    for step in range(version, SCHEMA_VERSION):
        variants = data.get("variants")
        if isinstance(variants, list):
            data["variants"] = [MIGRATIONS[step](v) if isinstance(v, dict) else v for v in variants]
        else:  # a saved variant on its own
            data = MIGRATIONS[step](data)
    data["schema_version"] = SCHEMA_VERSION
    return data


def v1_to_v2(variant: dict) -> dict:
    """Offline load mode: {"8": rate} keyed by batch size as text -> [{batch_size, samples_per_s}];
    no weights record: {} -> null."""
    if variant.get("weights") == {}:
        variant = {**variant, "weights": None}
    load = variant.get("load")
    if not isinstance(load, dict) or not isinstance(load.get("samples_per_s_by_batch_size"), dict):
        return variant
    rates = load["samples_per_s_by_batch_size"]
    # ASCII digits only: "²" is a digit to str.isdigit, and int() refuses it (the type check then names the field)
    rows = [{"batch_size": int(k) if re.fullmatch(r"[0-9]{1,9}", str(k)) else k, "samples_per_s": v}
            for k, v in rates.items()]
    load = {k: v for k, v in load.items() if k != "samples_per_s_by_batch_size"}
    return {**variant, "load": {**load, "by_batch_size": rows}}


def v2_to_v3(variant: dict) -> dict:
    """Each latency row: one process, whose within-process interval was the row's interval."""
    rows = variant.get("latency")
    if not isinstance(rows, list):
        return variant
    return {**variant, "latency": [one_process(row) if isinstance(row, dict) else row for row in rows]}


def one_process(row: dict) -> dict:
    samples = row.get("samples_ms")
    return {**row, "processes": [{"round": 1, "n": len(samples) if isinstance(samples, list) else row.get("n"),
                                  "p50_ms": row.get("p50_ms"), "ci95_p50_ms": row.get("ci95_p50_ms")}]}


# MIGRATIONS[n]: a variant's data at schema version n -> version n + 1.
MIGRATIONS = {1: v1_to_v2, 2: v2_to_v3}


# The largest JSON file suite reads (a results.json of 4,793 variants is 30 MB): parsing takes
# about 10x its size in memory, and a report of it seconds per 30 MB.
MAX_JSON_BYTES = 128 << 20


def read_json(path: Path) -> Any:
    """The JSON in `path` (NaN and Infinity refused: suite never writes them); SuiteError if
    unreadable, not a regular file (a FIFO would block the read for ever) or past MAX_JSON_BYTES."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        info = path.stat()
    except FileNotFoundError:
        raise SuiteError(f"{path}: file not found") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a file"
        raise SuiteError(f"{path}: not a regular file ({kind})")
    if info.st_size > MAX_JSON_BYTES:
        raise SuiteError(f"{path}: {info.st_size / 2**20:,.0f} MiB, more than the {MAX_JSON_BYTES >> 20} MiB suite "
                         "reads as one JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except FileNotFoundError:
        raise SuiteError(f"{path}: file not found") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:
        raise SuiteError(f"{path}: not valid JSON ({first_line(exc, 80)})") from None


def run_from_dict(data: dict, path: Path | str = "results") -> RunResult:
    """A RunResult from data of this schema version (migrated() brings older data to it)."""
    run = checked(RunResult, data, path)
    for i, v in enumerate(run.variants):
        check_samples(v, f"{path}: variants[{i}]")
    return run


def variant_from_dict(data: dict, path: Path | str = "variant") -> VariantResult:
    """A saved variant (variants/<key>.json), from any schema version this suite reads."""
    data = migrated(data, data.get("schema_version", 1), path)
    data.pop("schema_version")
    variant = checked(VariantResult, data, path)
    check_samples(variant, str(path))
    return variant


def check_samples(v: VariantResult, where: str) -> None:
    """Statistics are derived from the raw samples: each timed shape must have some, all finite and
    above 0 (a sample is timed long enough to read: 0 ms is no measurement, and a ratio to it infinite)."""
    for j, row in enumerate(v.latency):
        if not row.samples_ms or not all(math.isfinite(x) and x > 0 for x in row.samples_ms):
            raise SuiteError(f"{where}.latency[{j}].samples_ms: expected a non-empty list of finite times (> 0 ms)")
        counts = [p.get("n") for p in row.processes]
        if row.processes and (not all(type(n) is int and n > 0 for n in counts) or sum(counts) != len(row.samples_ms)):
            raise SuiteError(f"{where}.latency[{j}].processes: each process's n must be a count above 0, and "
                             f"together they must number the samples ({len(row.samples_ms)})")


CSV_COLUMNS = ("variant", "model", "backend", "status", "metric", "batch_size", "seq_len", "p50_ms", "p90_ms", "p95_ms",
               "p99_ms", "mean_ms", "std_ms", "cv", "ci95_p50_lo_ms", "ci95_p50_hi_ms", "n", "processes",
               "samples_per_s", "accuracy", "agreement", "max_abs_error", "cosine_min", "size_bytes", "params",
               "peak_rss_bytes")


def csv_rows(run: RunResult) -> list[dict[str, Any]]:
    """One row per variant and batch size; a variant without latency gets one row."""
    rows = []
    for v in run.variants:
        common = {"variant": v.name, "model": v.model, "backend": v.backend, "status": v.status,
                  "accuracy": v.accuracy, "agreement": v.agreement, **{k: getattr(v.fidelity, k, None) for k in
                                                                        ("max_abs_error", "cosine_min")},
                  "size_bytes": v.size_bytes,
                  "params": v.params, "peak_rss_bytes": v.peak_rss_bytes}
        throughput = {t.shape: t.samples_per_s for t in v.throughput}
        for lat in v.latency or (None,):
            figures = {} if lat is None else {
                **{k: getattr(lat, k) for k in ("metric", "batch_size", "seq_len", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
                                                "mean_ms", "std_ms", "cv", "n")},
                "ci95_p50_lo_ms": lat.ci95_p50_ms[0], "ci95_p50_hi_ms": lat.ci95_p50_ms[1],
                "processes": len(lat.processes) or 1, "samples_per_s": throughput.get(lat.shape)}
            rows.append({**common, **figures})
    return rows


def save_csv(run: RunResult, path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(csv_rows(run), columns=list(CSV_COLUMNS))
    atomic_write_text(path, frame.to_csv(index=False))
