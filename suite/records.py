"""The typed records a variant's result holds (suite.results.VariantResult): where its weights
came from, what each compression step did, its fidelity to the reference, energy, the load mode's
result and the node that measured it. Each field's type is checked when a results file loads;
the code that measures may hand a plain dict, which `VariantResult` turns into its record (so
a result in memory and one read back from disk are the same thing).

Settings and free text stay dicts where their keys belong to a plugin (a method's `params`, a
layer table's columns, the energy meter's description), not to the results schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Training:
    """How the weights were trained here (suite.build.training; decoders report perplexity)."""

    epochs_run: int
    best_epoch: int
    seconds: float
    stopped_early: bool = False
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_perplexity: float | None = None
    context: int | None = None  # decoders: the training windows' length and steps per epoch
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class Weights:
    """Where a variant's weights came from."""

    source: Literal["trained", "cache", "checkpoint", "provided", "untrained"]
    path: str | None = None  # the checkpoint read or written
    training: Training | None = None  # trained, or trained earlier and cached
    by: dict | None = None  # provided: the model reference that made them (its own weights)
    init_seed: int | None = None  # untrained: the seed of the random initialization


@dataclass(frozen=True)
class Footprint:
    size_bytes: int
    weights: int
    sparsity: float


@dataclass(frozen=True)
class CompressRecord:
    """One compression step: its method and settings, the model before and after, a per-layer
    table (columns as the model's format gives them) and notes."""

    method: str
    params: dict
    before: Footprint
    after: Footprint
    layers: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()
    # A method that can leave layers in float (keep_float): the layers it quantized, by name.
    quantized_layers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Fidelity:
    """Outputs against the reference variant's. Classifiers: the largest absolute difference and
    the cosine similarity of output vectors. Decoders: teacher-forced on the held-out text, the
    KL divergence of each next-token distribution from the reference's (suite.lm.divergence), the
    share of positions with the same top token and the change in the next token's probability;
    greedy tokens equal to the reference's (information: one early near-tie changes the rest of
    a sequence); perplexity against the reference's."""

    max_abs_error: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None
    greedy_agreement: float | None = None
    first_divergence_mean: float | None = None
    identical_sequences: int | None = None
    prompts: int | None = None
    new_tokens: int | None = None
    perplexity_increase: float | None = None
    kld_mean: float | None = None
    kld_mean_se: float | None = None  # from the spread of the windows' means
    kld_median: float | None = None
    kld_p90: float | None = None
    kld_p95: float | None = None
    kld_p99: float | None = None
    kld_max: float | None = None
    top1_agreement: float | None = None
    top1_agreement_se: float | None = None
    delta_p_mean: float | None = None  # the next token's probability, this variant's less the reference's
    delta_p_mean_se: float | None = None
    kld_positions: int | None = None
    kld_windows: int | None = None
    kld_top_k: int | None = None  # the reference's most likely tokens kept per position (the rest: one outcome)
    kld_reference_tail: float | None = None  # the reference's mean probability outside those


@dataclass(frozen=True)
class EnergyRow:
    batch_size: int
    window_s: float
    calls: int
    mean_power_w: float
    net_power_w: float
    joules_per_call: float
    joules_per_inference: float
    seq_len: int | None = None


@dataclass(frozen=True)
class Energy:
    """Energy per call and per inference at each shape, net of the idle baseline."""

    meter: str
    idle_power_w: float
    idle_baseline_s: float
    rows: tuple[EnergyRow, ...] = ()


@dataclass(frozen=True)
class BatchThroughput:
    batch_size: int
    samples_per_s: float


@dataclass(frozen=True)
class ServerTrial:
    """One arrival rate tried by the server mode. Classifiers: queries, their p50 / p99 latency
    from arrival; decoders: requests, with `ttft` and `tpot` figures ({p50_ms, p99_ms,
    p99_bound_ms, n, met}). `p99_bound_ms` is None when too few were served for a p99 claim."""

    rate_qps: float
    seconds: float
    met: bool
    p99_bound_ms: float | None = None
    queries: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int | None = None
    ttft: dict | None = None
    tpot: dict | None = None


@dataclass(frozen=True)
class Load:
    """The load mode's result. offline: the best throughput over batch sizes; server: the highest
    Poisson arrival rate whose p99 (classifiers: latency; decoders: TTFT and TPOT) meets its bound."""

    mode: Literal["offline", "server"]
    best_batch_size: int | None = None
    samples_per_s: float | None = None
    by_batch_size: tuple[BatchThroughput, ...] = ()
    percentile: int | None = None
    max_rate_qps: float | None = None
    latency_bound_ms: float | None = None
    ttft_bound_ms: float | None = None
    tpot_bound_ms: float | None = None
    trials: tuple[ServerTrial, ...] = ()
    prompt_len: int | None = None  # decoders' server mode: the requests' prompt and new tokens
    new_tokens: int | None = None
    batch_size: int | None = None
    stopped: str | None = None  # server: why the search stopped (its steps, a light load missed)


@dataclass(frozen=True)
class Node:
    """The machine that measured a variant when a launcher ran it on another (ray)."""

    node_id: str
    host: str
    cpu: str
    cores: int | None
    cpus_owned: float | None
    gpus: int
    started: float  # epoch seconds
    ended: float
    labels: dict | None = None

    @property
    def label(self) -> str:
        """'host (node 1a2b3c4d)': short enough for a table, unique within a cluster."""
        return f"{self.host} (node {self.node_id[:8]})"


@dataclass(frozen=True)
class OpRow:
    """One operator (or 'other (N operators)') of a profile, per model call."""

    op: str
    family: str  # convolution, matrix product, conversion, attention, normalization, other
    per_call: float  # times it ran per model call
    ms: float  # its own time per model call
    share: float  # of the time inside operators
    precision: str | None = None


@dataclass(frozen=True)
class OpTable:
    """The backend profiler's view of one shape (suite.measure.ops)."""

    profiler: str
    calls: int
    wall_ms: float  # per call, profiler on
    ops_ms: float  # per call, inside operators
    outside_share: float | None  # of the timed median, in no operator: overhead (a lower bound)
    by_family: dict[str, float]  # ms per call
    ops: tuple[OpRow, ...] = ()


@dataclass(frozen=True)
class ShapeProfile:
    """One timed shape: the work of a call, the rates achieved at its median, and the operators."""

    shape: str
    batch_size: int
    p50_ms: float
    seq_len: int | None = None
    flops: int | None = None
    achieved_gflops: float | None = None
    achieved_gbps: float | None = None
    compute_share: float | None = None
    bandwidth_share: float | None = None
    bound: str | None = None  # compute, memory, overhead or mixed (suite.measure.work)
    ops: OpTable | None = None
    metric: str = "call"  # a decoder's: ttft (the prefill) or tpot (one decode step)


@dataclass(frozen=True)
class Profile:
    """Where a variant's time goes (measure.profile), taken after its timed samples."""

    shapes: tuple[ShapeProfile, ...]
    weight_bytes: int | None  # read once per call
    flops_counted_on: str | None  # which model the FLOPs were counted on, or why not
    limits: dict  # the machine's measured limits (suite.measure.machine)
    top_modules: dict[str, int] | None = None  # FLOPs of the heaviest modules at batch 1
    ops_reason: str | None = None  # why there is no operator table


@dataclass(frozen=True)
class SearchTrial:
    """One trial of an accuracy-aware search (suite.build.search), measured on the validation split."""

    index: int
    phase: str  # reference (uncompressed), all quantized, sensitivity, fallback, bisect, grid
    meets: bool
    seconds: float
    replayed: bool = False  # read back from an interrupted run's saved trials
    kept_float: tuple[str, ...] | None = None
    value: Any = None  # bisect: the setting's value; grid: {setting: value}
    val_accuracy: float | None = None
    perplexity: float | None = None  # a decoder's, on the validation split
    kld_mean: float | None = None  # a decoder's KL divergence from the reference trial's next-token distributions
    top1_agreement: float | None = None  # a decoder's share of positions with the reference trial's top token
    agreement: float | None = None  # top-1 (a decoder: greedy tokens), with the reference trial's outputs
    speed_ms: float | None = None  # the search's `by` figure at its batch size (a short timing plan)
    error: str | None = None
    steps: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Search:
    """A variant's accuracy-aware search: its goal, the trials, the one chosen (whose settings the
    variant then ran with, measured in full on the test split)."""

    strategy: str
    goal: dict
    by: str
    split: str  # the trials' accuracy: "validation"
    met: bool  # False: the budget ran out first; the chosen trial is the closest to the goal
    stopped_by: str  # done, max_trials, max_time_s
    chosen: int
    seconds: float
    trials: tuple[SearchTrial, ...]
    batch_size: int | None = None
    kept_float: tuple[str, ...] | None = None
    value: Any = None
    replayed: int = 0
    # a rounding sensitivity: {"by": "weights" or "weights_and_inputs", "seconds": the pass's time,
    # "errors": {layer: relative output error}}
    ranking: dict | None = None


RECORDS: dict[str, Any] = {"weights": Weights, "fidelity": Fidelity, "energy": Energy, "load": Load,
                           "node": Node, "profile": Profile, "search": Search}


def as_record(cls: type, value: Any) -> Any:
    """`value` as a `cls` record (a dict is checked and converted; a record or None as it is)."""
    if value is None or isinstance(value, cls):
        return value
    from suite.config.params import checked

    return checked(cls, value, cls.__name__)
