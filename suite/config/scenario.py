"""Scenario files: YAML (safe loader only) validated into a frozen Scenario.

Every error is one line naming the file and the key path, e.g.
`scenarios/x.yaml: variants[1].backend: unknown backend 'onnxrt' (did you mean onnxruntime?)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    NonNegativeFloat,
    PlainSerializer,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from suite.config import safe_yaml
from suite.config.params import NestedError, Params, existing_path, first_error, format_loc
from suite.config.search_spec import SearchSpec, spec_conflict
from suite.config.sweep import DEFAULT_MAX_VARIANTS, LIMIT_MAX_VARIANTS, expand_variants
from suite.errors import ScenarioError, first_line, quote
from suite.registry import BACKENDS, DATASETS, METHODS, MODELS, TASKS, Registry, UnknownName, did_you_mean


@dataclass(frozen=True)
class PluginRef:
    """A named plugin with its validated parameters (the plugin's own Params object)."""

    name: str
    params: Params
    checkpoint: Path | None = None  # models only: weights to load instead of training

    def dump(self, key: str = "name") -> dict[str, Any]:
        extra = {"checkpoint": str(self.checkpoint)} if self.checkpoint else {}
        return {key: self.name, **self.params.model_dump(mode="json"), **extra}


def _parse_ref(value: Any, registry: Registry, key: str) -> tuple[str, dict, tuple]:
    """Split a plugin reference (a name, or a mapping with `key`) into name, fields, name loc."""
    if isinstance(value, str):
        return value, {}, ()
    if not isinstance(value, dict):
        raise NestedError((), f"expected a {registry.kind} name or a mapping with {key!r}")
    fields = dict(value)
    if key not in fields:
        raise NestedError((key,), "required key is missing")
    name = fields.pop(key)
    if not isinstance(name, str):
        raise NestedError((key,), f"expected a {registry.kind} name (got {name!r})")
    return name, fields, (key,)


def _validate_ref(value: Any, registry: Registry, key: str, info: ValidationInfo,
                  reserved: tuple = ()) -> tuple[str, Params, dict]:
    """Validate a reference against its plugin's Params; `reserved` keys are returned, not validated."""
    name, fields, name_loc = _parse_ref(value, registry, key)
    try:
        registry.check(name)
    except UnknownName as exc:
        raise NestedError(name_loc, str(exc)) from None
    params_cls = registry.get(name).Params
    try:
        params = params_cls.model_validate({k: v for k, v in fields.items() if k not in reserved},
                                           context=info.context)
    except ValidationError as exc:
        raise NestedError(*first_error(exc)) from None
    return name, params, {k: v for k, v in fields.items() if k in reserved}


def _ref_type(registry: Registry, key: str = "name") -> Any:
    def validate(value: Any, info: ValidationInfo) -> PluginRef:
        if isinstance(value, PluginRef):
            return value
        name, params, _ = _validate_ref(value, registry, key, info)
        return PluginRef(name, params)

    return Annotated[PluginRef, PlainValidator(validate), PlainSerializer(lambda ref: ref.dump(key))]


def _validate_model_ref(value: Any, info: ValidationInfo) -> PluginRef:
    if isinstance(value, PluginRef):
        return value
    name, params, reserved = _validate_ref(value, MODELS, "name", info, reserved=("checkpoint",))
    if reserved.get("checkpoint") is None:
        return PluginRef(name, params)
    try:
        return PluginRef(name, params, checkpoint=existing_path(reserved["checkpoint"], info))
    except ValueError as exc:
        raise NestedError(("checkpoint",), str(exc)) from None


ModelRef = Annotated[PluginRef, PlainValidator(_validate_model_ref), PlainSerializer(PluginRef.dump)]
DatasetRef = _ref_type(DATASETS)
BackendRef = _ref_type(BACKENDS)
StepRef = _ref_type(METHODS, key="method")


# What one input batch may hold, so that a typo (10**30) is refused here rather than found out
# by an allocation: 65,536 samples, 65,536 tokens a sequence, 1,024 threads.
BatchSize = Annotated[int, Field(gt=0, le=1 << 16)]
SeqLen = Annotated[int, Field(gt=0, le=1 << 16)]
MAX_SAMPLES = 10_000_000  # raw samples of one shape kept in memory and in results.json


class Train(Params):
    """Overrides of the model's own training recipe; unset fields keep the recipe's value."""

    epochs: int | None = Field(None, gt=0, le=100_000)
    batch_size: BatchSize | None = None
    lr: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None
    patience: PositiveInt | None = None
    # Caps for a smoke test (what --quick sets): epochs of training and fine-tuning, and batches
    # per epoch, of calibration too. None: the recipe's, uncapped.
    max_epochs: int | None = Field(None, gt=0, le=100_000)
    max_batches: int | None = Field(None, gt=0, le=100_000)


DEFAULT_TEXT_PROMPTS = ("The for statement is used to", "A class definition defines")


# Latency bounds after MLPerf Inference's Llama-2-70B scenarios: (p99 time to first token, p99 time
# per output token), ms: "server", and "interactive", its tighter one.
BOUND_PRESETS = {"server": (2000.0, 200.0), "interactive": (450.0, 40.0)}


class Generate(Params):
    """How generative decoders are measured (other models ignore this block): greedy decoding of
    `new_tokens` tokens after prompts of each length (no early stop, so every variant does the
    same work), at each of measure.batch_sizes; perplexity on the test text; greedy fidelity to
    the reference variant; and the text each variant writes after `texts`."""

    prompt_lens: tuple[SeqLen, ...] = Field((32, 128), min_length=1)
    new_tokens: int = Field(32, ge=2, le=4096)
    # KV cache: "dynamic" grows with each token; "static" is allocated once, at prompt + new tokens
    # rounded up to a multiple of 256 (what torch.compile needs); "fp8" grows, its keys and values
    # stored in float8 e4m3 with one scale per tensor set at the prefill (transformers'
    # QuantizedCache, backend fp8; eager only). "auto": the backend's choice (eager dynamic, compile static).
    cache: Literal["auto", "dynamic", "static", "fp8"] = "auto"
    perplexity_context: SeqLen = 256  # tokens per scored window
    perplexity_tokens: int = Field(8192, ge=2, le=MAX_SAMPLES)  # test tokens scored, at most
    fidelity_prompts: int = Field(8, ge=1, le=4096)
    fidelity_prompt_len: SeqLen = 32
    fidelity_tokens: int = Field(32, ge=1, le=4096)  # greedy tokens compared with the reference's
    texts: tuple[Annotated[str, Field(min_length=1, max_length=2000)], ...] = Field(DEFAULT_TEXT_PROMPTS,
                                                                                     max_length=16)
    text_tokens: int = Field(40, ge=1, le=4096)
    # mode server for decoders (after MLPerf's LLM server rules): requests of the shortest prompt
    # length arrive as a Poisson process; the highest rate whose p99 time to first token and p99
    # time per output token stay within these bounds.
    ttft_bound_ms: PositiveFloat | None = None
    tpot_bound_ms: PositiveFloat | None = None
    bounds: Literal["server", "interactive"] | None = None  # both bounds from BOUND_PRESETS
    server_requests: int = Field(64, ge=1, le=100_000)  # requests per trial rate; per load point of a server (backend endpoint)
    # Each trial rate's arrivals span at least this long (more requests than server_requests at a
    # high rate; MLPerf's min_duration): a few requests at a high rate end before a queue builds,
    # and would meet any bound.
    server_min_s: float = Field(10.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _preset_bounds(self) -> Generate:
        if self.bounds is None:
            return self
        ttft, tpot = BOUND_PRESETS[self.bounds]
        if (self.ttft_bound_ms, self.tpot_bound_ms) not in ((None, None), (ttft, tpot)):  # (its own dump loads back)
            raise NestedError(("bounds",), "give either a preset (bounds) or ttft_bound_ms and tpot_bound_ms, not both")
        object.__setattr__(self, "ttft_bound_ms", ttft)
        object.__setattr__(self, "tpot_bound_ms", tpot)
        return self

    def longest_request(self) -> tuple[int, str]:
        """The most positions one request asks for, and which settings ask it (a text prompt is
        cut to fit, keeping at least one token of it)."""
        prompt = max(self.prompt_lens)
        timed = f"a prompt of {prompt} tokens and {self.new_tokens} new ones (prompt_lens, new_tokens)"
        fidelity = (f"fidelity prompts of {self.fidelity_prompt_len} tokens and {self.fidelity_tokens} new ones "
                    "(fidelity_prompt_len, fidelity_tokens)")
        texts = f"{self.text_tokens} new tokens after a text prompt (text_tokens)"
        return max((prompt + self.new_tokens, timed), (self.fidelity_prompt_len + self.fidelity_tokens, fidelity),
                   (1 + self.text_tokens, texts))


PROCESSES = 3  # chosen with benchmarks/aa.py and the main job's cost (docs/measurement.md)
MAX_PROCESSES = 100


class Measure(Params):
    batch_sizes: tuple[BatchSize, ...] = Field((1,), min_length=1)
    # Token inputs only: measure latency with the test inputs padded or cut to each length
    # (every batch size at every length). None: at the dataset's own length.
    seq_lens: tuple[SeqLen, ...] | None = Field(None, min_length=1)
    warmup_s: NonNegativeFloat = 0.5
    warmup_calls: int = Field(3, gt=0, le=1_000_000)  # at least this many warm-up calls, however long warmup_s is
    min_samples: int = Field(100, gt=0, le=MAX_SAMPLES)
    max_samples: int = Field(5000, gt=0, le=MAX_SAMPLES)
    # 1 s in all, shared by the processes: the interval of the median is as wide as the processes'
    # medians are apart (5-19 % here), while one process's samples pin its own median to +/-0.5 %
    # in far less time; more seconds do not narrow it, more processes do.
    min_time_s: NonNegativeFloat = 1.0
    max_time_s: PositiveFloat = 30.0
    # Processes that time each shape (suite.measure.processes), interleaved with the other
    # variants' in rounds; the samples and times above are shared among them. 1: the interval
    # of the median is that one process's, blind to what changes between processes.
    processes: int = Field(PROCESSES, gt=0, le=MAX_PROCESSES)
    # Shortest timed sample; calls faster than this are looped. None: derived from the timer.
    min_sample_ms: PositiveFloat | None = None
    threads: int | None = Field(None, gt=0, le=1024)
    # Batch size of the accuracy pass over the test set. None: the largest timed batch size, so
    # that a backend building one graph per input shape (torch.compile with dynamic: false, a
    # TensorRT profile) builds none for the accuracy pass alone. The last batch is filled up to
    # full size (its extra outputs dropped) for the same reason.
    eval_batch_size: BatchSize | None = None
    # Load mode, after MLPerf LoadGen: single_stream (latency percentiles per shape), offline (also
    # the best throughput over batch sizes), server (also the highest Poisson arrival rate whose
    # p99 latency, queueing included, stays within latency_bound_ms; found in rate_steps trials).
    mode: Literal["single_stream", "offline", "server"] = "single_stream"
    latency_bound_ms: PositiveFloat | None = None
    rate_steps: int = Field(6, gt=0, le=100)
    server_queries: int | None = Field(None, gt=0, le=MAX_SAMPLES)  # per trial rate; None: enough for p99
    # What this machine costs per hour (any currency): a server's cost per million output tokens at
    # the highest request rate that meets generate.ttft_bound_ms and tpot_bound_ms (backend endpoint).
    cost_per_hour: PositiveFloat | None = None
    # Energy, where a hardware counter can be read: an idle baseline, then each shape run back to
    # back for this long (at least 10 update periods of the counter).
    idle_baseline_s: NonNegativeFloat = 1.0
    energy_window_s: PositiveFloat = 2.0
    # Where the time goes, after the timed samples (suite.measure.profiling): FLOPs and weight bytes of a
    # call, its share of the machine's compute and bandwidth roofs, and the backend profiler's
    # per-operator table at each shape. Off in --quick runs.
    profile: bool = True
    generate: Generate = Generate()

    @model_validator(mode="after")
    def _server_has_a_bound(self) -> Measure:
        decoder_bounds = self.generate.ttft_bound_ms is not None and self.generate.tpot_bound_ms is not None
        if self.mode == "server" and self.latency_bound_ms is None and not decoder_bounds:
            raise NestedError(("latency_bound_ms",), "mode server needs a latency bound: the p99 to meet "
                              "(generative decoders: generate.ttft_bound_ms and generate.tpot_bound_ms)")
        if self.mode == "server" and 1 not in self.batch_sizes:
            raise NestedError(("batch_sizes",), "mode server serves one query at a time: include batch size 1")
        return self

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Measure:
        if self.min_samples > self.max_samples:
            raise NestedError(("min_samples",), f"{self.min_samples} exceeds max_samples ({self.max_samples})")
        if self.min_time_s > self.max_time_s:
            raise NestedError(("min_time_s",), f"{self.min_time_s} exceeds max_time_s ({self.max_time_s})")
        return self


class Select(Params):
    """Recommend the fastest variant within the budget, by `by` at one input shape: accuracy at
    most `max_accuracy_drop` below its fp32 reference (0.01 = one point); for generative decoders,
    any of: a mean KL divergence from the reference's next-token distributions of at most
    `max_kld_mean`, the same top token at `min_top1_agreement` of positions at least, perplexity
    at most `max_perplexity_increase` above the reference's (0.02 = 2 % higher), greedy agreement
    with it of at least `min_greedy_agreement`."""

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0)
    max_kld_mean: float | None = Field(None, ge=0.0, le=100.0)
    min_top1_agreement: float | None = Field(None, ge=0.0, le=1.0)
    max_perplexity_increase: float | None = Field(None, ge=0.0, le=1000.0)
    min_greedy_agreement: float | None = Field(None, ge=0.0, le=1.0)
    by: Literal["p50_ms", "p90_ms", "p99_ms", "mean_ms"] = "p50_ms"
    # The timed figure: "call" (one forward pass); for decoders "tpot" (time per output token),
    # "ttft" (time to first token) or "request" (prompt and all new tokens).
    metric: Literal["call", "ttft", "tpot", "request"] = "call"
    batch_size: BatchSize = 1
    seq_len: SeqLen | None = None  # with measure.seq_lens (decoders: prompt_lens): the length to compare at

    @model_validator(mode="after")
    def _has_a_budget(self) -> Select:
        if self.max_accuracy_drop is None and self.max_perplexity_increase is None and self.max_kld_mean is None:
            raise NestedError(("max_accuracy_drop",), "select needs a budget: max_accuracy_drop, or "
                              "max_kld_mean or max_perplexity_increase for generative decoders")
        return self


class Variant(Params):
    name: str = Field(min_length=1)
    model: ModelRef | None = None
    dataset: DatasetRef | None = None
    backend: BackendRef = Field("eager", validate_default=True)
    compress: tuple[StepRef, ...] = ()
    # Overrides of the scenario's measure block, key by key (merged before validation).
    measure: Measure | None = None
    # An accuracy-aware search over its compression steps' settings (suite.build.search).
    search: SearchSpec | None = None

    @model_validator(mode="after")
    def _formats_fit(self) -> Variant:
        # Without a model of its own, the scenario checks its formats against the scenario's model.
        conflict = ((format_conflict(self, self.model) if self.model is not None else None)
                    or (spec_conflict(self) if self.search else None))
        if conflict:
            raise NestedError(*conflict)
        return self


# The forms a model takes between compression steps and backends. Each method says which it
# starts from and which it makes; each backend, which it runs.
FORMATS = {"torch": "a torch model", "torch_only": "a torch model that ONNX export cannot take",
           "eager_only": "a torch model that neither ONNX export nor torch.compile can take",
           "onnx": "an ONNX model", "onnx_int8": "an int8 ONNX model"}


def format_conflict(variant: Variant, model: PluginRef | None) -> tuple[tuple, str] | None:
    """Where and why the variant's model (in the form it is built in: ModelSpec.format), steps and
    backend do not fit together. `model` None: a torch model (the scenario's, checked there again)."""
    made, maker = (MODELS.get(model.name).format if model is not None else "torch"), None
    whence = f"model {model.name!r} is one" if model is not None else None  # what made the form, in words
    backend = BACKENDS.get(variant.backend.name)
    if variant.compress and backend.runs_file_with(variant.backend.params):
        return ("compress",), (f"backend {variant.backend.name!r} runs the model's own file, which compression "
                               "steps do not change: drop them")
    for i, step in enumerate(variant.compress):
        spec = METHODS.get(step.name)
        if made not in spec.takes:
            return ("compress", i, "method"), f"{step.name!r} cannot start from {FORMATS[made]}, " + (
                f"which {maker!r} makes" if whence is None else whence)
        made, whence, maker = spec.makes, None, step.name
    if made not in backend.takes:
        runs = [name for name in BACKENDS.names() if made in BACKENDS.get(name).takes]
        return ("backend",), (f"backend {variant.backend.name!r} cannot run {FORMATS[made]}, "
                              + (f"which compress step {maker!r} makes" if whence is None else
                                 f"and {whence} (backends that run it: {', '.join(runs)})"))
    return None


def shape_conflict(variant: Variant, model: PluginRef, measure: Measure) -> tuple[tuple, str] | None:
    """Where the variant asks for a batch size, or a sequence length of token ids, that its model's
    file fixes otherwise (ModelSpec.fixed_axes)."""
    fixed = MODELS.get(model.name).fixed_axes
    axes = fixed(model.params) if fixed is not None else ()
    batch = axes[0] if axes else None
    asked = [(("measure", "batch_sizes"), size) for size in measure.batch_sizes]
    asked += [(("measure", "eval_batch_size"), measure.eval_batch_size)] if measure.eval_batch_size else []
    asked += [(("search", "batch_size"), variant.search.batch_size)] if variant.search and variant.search.batch_size else []
    for where, size in asked if batch else ():
        if size != batch:
            return where, f"{size}: model {model.name!r} has a fixed batch size of {batch} (its file says so): use {batch}"
    length = axes[1] if len(axes) == 2 else None  # (batch, seq) token ids
    for size in (measure.seq_lens or ()) if length else ():
        if size != length:
            return ("measure", "seq_lens"), (f"{size}: model {model.name!r} takes sequences of {length} tokens only "
                                             f"(its file fixes that axis): use {length}")
    return None


def task_conflict(variant: Variant, model: PluginRef, dataset: PluginRef | None,
                  measure: Measure | None = None) -> tuple[tuple, str] | None:
    """Where and why the variant's data, settings, compression steps or backend do not fit its
    model's task (the task's own settings: suite.tasks, `conflict`)."""
    task = MODELS.get(model.name).task
    what = f"model {model.name!r} is {TASKS.get(task).description}"
    if dataset is not None and DATASETS.get(dataset.name).task != task:
        return ("dataset",), (f"{what}, but dataset {dataset.name!r} is for "
                              f"{TASKS.get(DATASETS.get(dataset.name).task).description}")
    found = TASKS.get(task).conflict(what, model, variant, variant.measure or measure)
    if found:
        return found
    for i, step in enumerate(variant.compress):
        if task not in METHODS.get(step.name).tasks:
            return ("compress", i, "method"), f"{what}: method {step.name!r} does not apply to it"
    if task not in BACKENDS.get(variant.backend.name).tasks:
        runs = [name for name in BACKENDS.names() if task in BACKENDS.get(name).tasks]
        return ("backend",), f"{what}: backend {variant.backend.name!r} does not run it (backends that do: {', '.join(runs)})"
    return None


class Fidelity(Params):
    """How closely a variant's outputs must follow its reference (the fp32 baseline) before the
    results warn: top-1 agreement and the worst cosine similarity of output vectors."""

    min_agreement: float = Field(0.99, ge=0.0, le=1.0)
    min_cosine: float = Field(0.99, ge=-1.0, le=1.0)
    # Generative decoders, teacher-forced on the held-out text: the mean KL divergence of the
    # next-token distributions from the reference's (nats), the share of positions with the same
    # top token, and perplexity at most this much above the reference's (0.05: 5 % higher).
    max_kld_mean: float = Field(0.05, ge=0.0, le=100.0)
    min_top1_agreement: float = Field(0.9, ge=0.0, le=1.0)
    max_perplexity_increase: float = Field(0.05, ge=0.0, le=1000.0)
    # The share of free-running greedy tokens equal to the reference's: None, information only.
    min_greedy_agreement: float | None = Field(None, ge=0.0, le=1.0)


class Isolation(Params):
    """Each variant in its own process, so that a crash, a hang or a runaway allocation fails
    that variant alone; the time-out and memory limit apply to the whole variant process
    (training and compression included)."""

    subprocess: bool = True
    timeout_s: PositiveFloat = 3600.0
    max_memory_mb: PositiveFloat | None = None  # resident memory of the variant's process
    # --launcher ray: train the checkpoints the variants need first, as tasks of this many CPUs that
    # Ray packs several to a node (training is not timed); None: each variant's whole-node task
    # trains what it needs (once per cluster all the same: what a task builds is shipped to the others).
    pack_untimed_cpus: int | None = Field(None, ge=1, le=4096)

    @model_validator(mode="after")
    def _above_the_floor(self) -> Isolation:
        if self.max_memory_mb is not None and self.max_memory_mb < MEMORY_FLOOR_MB:
            raise NestedError(("max_memory_mb",), f"{self.max_memory_mb:g} is below the floor: a variant's process "
                              f"holds about {PROCESS_RSS_MB} MiB (torch and the libraries it preloads, measured) "
                              f"before it loads anything; set at least {MEMORY_FLOOR_MB}")
        return self


# Resident memory of a variant's process when it starts (forked from the fork server, which has
# imported torch, numpy, scipy, scikit-learn, transformers and torchao): 326 MiB measured with
# every extra installed (`isolation.max_memory_mb: 50` reported "used 326 MiB").
PROCESS_RSS_MB = 330
MEMORY_FLOOR_MB = 350


class Scenario(Params):
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(0, ge=0)
    model: ModelRef | None = None
    dataset: DatasetRef | None = None
    train: Train = Train()
    measure: Measure = Measure()
    baseline: str | None = None
    select: Select | None = None
    fidelity: Fidelity = Fidelity()
    isolation: Isolation = Isolation()
    variants: tuple[Variant, ...] = Field(min_length=1)
    max_variants: int = Field(DEFAULT_MAX_VARIANTS, ge=1, le=LIMIT_MAX_VARIANTS)  # with sweeps expanded
    _source: str = PrivateAttr("<scenario>")

    @property
    def source(self) -> str:
        """The file this scenario was read from, for messages."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _merge_measure_overrides(cls, data: Any) -> Any:
        """A variant's `measure` keys override the scenario's; the rest are inherited."""
        if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
            return data
        shared = data.get("measure") if isinstance(data.get("measure"), dict) else {}
        variants = [{**v, "measure": {**shared, **v["measure"]}}
                    if isinstance(v, dict) and isinstance(v.get("measure"), dict) else v
                    for v in data["variants"]]
        return {**data, "variants": variants}

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [v.name for v in self.variants]
        for i, variant in enumerate(self.variants):
            if variant.name in names[:i]:
                raise NestedError(("variants", i, "name"), f"duplicate variant name {variant.name!r}")
            if variant.model is None and self.model is None:
                raise NestedError(("variants", i, "model"), "no model: set one here or at the top level")
            model = self.model_of(variant)
            if MODELS.get(model.name).dataset is None and not (variant.dataset or self.dataset):
                raise NestedError(("variants", i, "dataset"),
                                  f"model {model.name!r} has no default dataset: name one here or at the top level")
            conflict = (format_conflict(variant, model) or shape_conflict(variant, model, self.measure_of(variant))
                        or task_conflict(variant, model, variant.dataset or self.dataset, self.measure_of(variant)))
            if conflict:
                where = conflict[0] if conflict[0][0] == "measure" and variant.measure is None else ("variants", i, *conflict[0])
                raise NestedError(where, conflict[1])
        if self.baseline is not None and self.baseline not in names:
            raise NestedError(("baseline",), f"unknown variant {self.baseline!r}{did_you_mean(self.baseline, names)}")
        return self

    def model_of(self, variant: Variant) -> PluginRef:
        return variant.model or self.model  # type: ignore[return-value]

    def measure_of(self, variant: Variant) -> Measure:
        return variant.measure or self.measure


def load(path: str | Path, origin: str | Path | None = None) -> Scenario:
    """Read and validate one scenario file; raise ScenarioError (one line) on any problem.

    `origin`: the file this text first came from (a run folder keeps a copy); relative paths
    resolve against its folder and messages name it."""
    origin = Path(origin or path)
    file = str(origin)
    data = _read_yaml(Path(path))
    if not isinstance(data, dict):
        raise ScenarioError(file, "", "expected a mapping of keys at the top level")
    data.setdefault("name", origin.stem)
    indices: list[int] = []
    if isinstance(data.get("variants"), list):
        try:
            data["variants"], indices = expand_variants(data["variants"], variant_cap(data))
        except NestedError as exc:
            raise ScenarioError(file, format_loc(exc.loc), exc.message) from None
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": origin.parent})
    except ValidationError as exc:
        loc, message = first_error(exc)
        if len(loc) > 1 and loc[0] == "variants" and isinstance(loc[1], int) and indices:
            loc = ("variants", indices[loc[1]], *loc[2:])  # the index in the file, not after sweeps
        raise ScenarioError(file, format_loc(loc), message) from None
    scenario._source = file
    return scenario


def variant_cap(data: dict) -> int:
    """The scenario's `max_variants`, checked before the sweeps it bounds are counted."""
    cap = data.get("max_variants", DEFAULT_MAX_VARIANTS)
    if type(cap) is not int or not 1 <= cap <= LIMIT_MAX_VARIANTS:
        raise NestedError(("max_variants",), f"expected a whole number from 1 to {LIMIT_MAX_VARIANTS:,} "
                                             f"(got {quote(cap)})")
    return cap


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ScenarioError(str(path), "", "file not found" if not path.exists() else "not a file")
    if path.stat().st_size > safe_yaml.MAX_FILE_BYTES:
        raise ScenarioError(str(path), "", f"larger than {safe_yaml.MAX_FILE_BYTES // 1024} KiB: not a scenario file")
    try:
        return safe_yaml.load(path.read_text(encoding="utf-8"))
    except safe_yaml.YamlLimit as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise ScenarioError(str(path), format_loc(exc.path), where + exc.message) from None
    except yaml.reader.ReaderError as exc:
        code = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ScenarioError(str(path), "", f"invalid YAML: character {exc.position + 1}: unacceptable "
                                           f"character {code}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise ScenarioError(str(path), "", f"invalid YAML: {where}{problem}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "", f"not UTF-8 text ({exc.reason})") from None
