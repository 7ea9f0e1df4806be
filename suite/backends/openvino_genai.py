"""OpenVINO GenAI for generative decoders: the causal LM, as the variant's compression steps left
it, converted by OpenVINO's PyTorch frontend (`openvino.convert_model`) with its past keys and
values as inputs and outputs; its weights compressed by NNCF where the settings ask (int8 with a
scale per output channel; int4 in groups, symmetric or asymmetric, with the data-aware AWQ,
scale estimation and GPTQ calibrated on the training split); then made stateful as optimum-intel
exports decoders (the KV cache held inside the model as variables, a `beam_idx` input), with the
tokenizer converted by openvino-tokenizers. `openvino_genai.LLMPipeline` decodes it.

Timing: a request is one `LLMPipeline.generate` call (greedy, `ignore_eos`, exactly the new
tokens asked); its time to first token and the time of each later token are the pipeline's own
(its raw performance metrics: the first token's time from the call's start, and the times at
which each next token came), its whole request the wall time around the call. Perplexity and
the KL divergence read every position's logits from the same model file compiled by OpenVINO
with the same properties (the pipeline gives no logits). The KV cache's precision and the
inference precision are settings; both are read back from the compiled model and recorded.

Built models are cached (in the run's cache folder) under a key of the weights' bytes, the
config, the settings, the calibration tokens and the versions. An optional extra
(`pip install -e '.[ovgenai]'`), in the default test install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import Field, model_validator

from suite.backends.base import HostDecoderBackend
from suite.config.params import NestedError, Params
from suite.errors import SuiteError
from suite.lm import DecoderContract

INSTALL = "pip install -c constraints.txt -e '.[ovgenai]'"
NNCF_MODES = {"int8": "INT8_ASYM", "int4_sym": "INT4_SYM", "int4_asym": "INT4_ASYM"}
KV_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "u8": 1}
LOGITS_CHUNK = 32  # tokens per call when every position's logits are read


class OpenVinoGenaiParams(Params):
    # Weight compression by NNCF: none (fp32), int8 (a scale and zero point per output channel),
    # int4 in groups of group_size along the input channels (sym: a scale per group; asym: and a zero point).
    weights: Literal["fp32", "int8", "int4_sym", "int4_asym"] = "fp32"
    group_size: int = Field(64, ge=-1, le=4096)  # int4: weights per scale; -1: one per output channel
    ratio: float = Field(1.0, gt=0.0, le=1.0)  # int4: the share of layers in int4 (the rest int8, NNCF's choice)
    # Data-aware int4 (calibrated on the training split): activation-aware scaling (AWQ), scales
    # fitted to the layer's outputs (scale estimation), second-order rounding (GPTQ).
    awq: bool = False
    scale_estimation: bool = False
    gptq: bool = False
    # Layers left in float: regular expressions searched in the converted model's node names (its
    # layers keep their torch names: "lm_head" is the output head, "layers\\.0\\." the first block).
    keep_float: tuple[str, ...] = ()
    calibration_samples: int = Field(32, ge=1, le=1024)  # windows of the training split
    calibration_tokens: int = Field(128, ge=8, le=4096)  # tokens per window
    kv_cache_precision: Literal["f32", "f16", "bf16", "u8"] = "f32"  # OpenVINO's CPU default is u8
    inference_precision: Literal["f32", "bf16", "f16"] = "f32"  # CPUs with bf16 default to it
    threads: int | None = Field(None, ge=1, le=1024)  # None: the scenario's threads (torch's)

    @model_validator(mode="after")
    def _data_aware_is_int4(self) -> OpenVinoGenaiParams:
        for i, pattern in enumerate(self.keep_float):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise NestedError(("keep_float", i), f"not a regular expression ({exc})") from None
        if self.keep_float and self.weights == "fp32":
            raise NestedError(("keep_float",), "names layers to leave in float, but weights is fp32")
        if self.group_size == 0:
            raise NestedError(("group_size",), "-1 or a positive count of weights per scale")
        aware = [name for name in ("awq", "scale_estimation", "gptq") if getattr(self, name)]
        if aware and not self.weights.startswith("int4"):
            raise NestedError((aware[0],), "data-aware compression applies to int4 weights "
                              f"(weights: int4_sym or int4_asym), not {self.weights}")
        if self.awq and self.gptq:
            raise ValueError("awq and gptq: NNCF applies one of them")
        return self

    def data_aware(self) -> bool:
        return self.awq or self.scale_estimation or self.gptq


class OpenVinoGenaiBackend(HostDecoderBackend):
    name = "openvino_genai"
    Params = OpenVinoGenaiParams
    description = "OpenVINO GenAI (LLMPipeline; NNCF weight compression); decoders, CPU"
    takes = ("torch",)

    def available(self) -> str | None:
        for module in ("openvino_genai", "openvino_tokenizers", "nncf"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed ({INSTALL})"
        return None

    def version(self) -> str:
        import openvino_genai

        return openvino_genai.__version__

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> OpenVinoGenaiDecoder:
        import openvino
        import torch

        if cache != "auto":
            raise SuiteError(f"backend openvino_genai: generate.cache {cache!r}: OpenVINO keeps its own KV cache "
                             "(inside the stateful model; its precision: kv_cache_precision); use 'auto'")
        settings = self.settings()
        if self.params.data_aware() and train_ids is None:
            raise SuiteError("backend openvino_genai: data-aware compression needs the dataset's training split")
        calibration = (windows(train_ids, self.params.calibration_tokens, self.params.calibration_samples)
                       if self.params.data_aware() else None)
        folder, note = built(model, tokenizer, settings, calibration)
        threads = self.params.threads or torch.get_num_threads()
        properties = {"INFERENCE_PRECISION_HINT": self.params.inference_precision,
                      "KV_CACHE_PRECISION": self.params.kv_cache_precision, "INFERENCE_NUM_THREADS": threads,
                      "PERFORMANCE_HINT": "LATENCY"}
        decoder = OpenVinoGenaiDecoder(folder, model.config, properties)
        self.info = {**settings, "threads": threads, "openvino": openvino.__version__, "build": note,
                     "compressed_weights": None if self.params.weights == "fp32" else self.params.weights,
                     **decoder.compiled_precisions()}
        return decoder

    def settings(self) -> dict[str, Any]:
        """The weight compression's settings (those that apply to it only) and the precisions."""
        p = self.params
        out: dict[str, Any] = {"weights": p.weights, **({"keep_float": list(p.keep_float)} if p.keep_float else {})}
        if p.weights.startswith("int4"):
            out.update(group_size=p.group_size, ratio=p.ratio, awq=p.awq, scale_estimation=p.scale_estimation,
                       gptq=p.gptq)
            if p.data_aware():
                out.update(calibration_samples=p.calibration_samples, calibration_tokens=p.calibration_tokens)
        return {**out, "kv_cache_precision": p.kv_cache_precision, "inference_precision": p.inference_precision}


def windows(train_ids: Any, length: int, count: int) -> Any:
    """`count` windows of `length` tokens spread over the training split (int64, count x length);
    a split shorter than one window repeats."""
    import torch

    ids = train_ids if len(train_ids) >= length else train_ids.repeat(-(-length // len(train_ids)))
    starts = torch.linspace(0, len(ids) - length, count).long()
    return torch.stack([ids[s:s + length] for s in starts.tolist()])


def built(model: Any, tokenizer: Any, settings: dict, calibration: Any) -> tuple[Path, str]:
    """The converted (and compressed) model's folder, from the cache or built now."""
    from suite.build.weights import built_folder, hash_tensors, source_hash
    from suite.formats.onnx_model import package_version
    from suite.lm import tokenizer_id

    digest = hashlib.sha256()
    if not hash_tensors(model, digest):
        raise SuiteError("backend openvino_genai: the model's weights are not plain tensors (a compression step "
                         "quantized them); OpenVINO converts float weights: compress them with its `weights` setting")
    if calibration is not None:
        digest.update(calibration.numpy().tobytes())
    parts = [type(model).__name__, model.config.to_json_string(), tokenizer_id(tokenizer, ""),
             {k: v for k, v in settings.items() if not k.endswith("_precision")},  # runtime properties, not the file
             *(package_version(p) for p in ("openvino", "openvino-genai", "openvino-tokenizers", "nncf", "transformers")),
             source_hash(sys.modules[__name__])]
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return built_folder("openvino_genai", "OpenVINO GenAI model", digest.hexdigest()[:24],
                        lambda out: build(model, tokenizer, settings, calibration, out))


class WithPast:
    """The causal LM's forward over flat tensors, as the converter traces it: (input_ids,
    attention_mask, position_ids, key 0, value 0, key 1, ...) -> (logits, key 0, value 0, ...)."""

    def __new__(cls, model: Any, layers: int) -> Any:
        import torch
        from transformers import DynamicCache

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, *past: Any) -> tuple:
                cache = DynamicCache(config=self.model.config)
                for i in range(layers):  # filled in place: update() would start from an empty tensor
                    layer = cache.layers[i]
                    layer.keys, layer.values, layer.is_initialized = past[2 * i], past[2 * i + 1], True
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 past_key_values=cache, use_cache=True)
                return (out.logits, *(t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)))

        return Module().eval()


def cache_shapes(model: Any) -> list[tuple[int, ...]]:
    """The (heads, head size) of each layer's keys and values: read from one token through the model."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=torch.zeros(1, 1, dtype=torch.int64), use_cache=True)
    return [tuple(t.shape[1::2]) for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]


def build(model: Any, tokenizer: Any, settings: dict, calibration: Any, out: Path) -> None:
    """Convert, compress and make stateful; write the model, the tokenizer's models and configs."""
    import openvino as ov
    import torch

    shapes = cache_shapes(model)
    layers = len(shapes) // 2
    past = [torch.zeros(1, heads, 3, size) for heads, size in shapes]
    example = (torch.zeros(1, 4, dtype=torch.int64), torch.ones(1, 7, dtype=torch.int64),
               torch.arange(3, 7).unsqueeze(0), *past)
    inputs = ["input_ids", "attention_mask", "position_ids",
              *(f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value"))]
    outputs = ["logits", *(f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value"))]
    try:
        with torch.inference_mode(False), torch.no_grad():
            converted = ov.convert_model(WithPast(model, layers), example_input=example)
    except Exception as exc:  # the frontend raises its own types
        raise SuiteError(f"backend openvino_genai: OpenVINO cannot convert {type(model).__name__} "
                         f"({str(exc).strip().splitlines()[0][:300]})") from None
    for port, name in zip(converted.inputs, inputs, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, outputs, strict=True):
        port.get_tensor().set_names({name})
    if settings["weights"] != "fp32":
        converted = compressed(converted, settings, calibration, shapes)
    stateful(converted, inputs[3:], outputs[1:])
    ov.save_model(converted, out / "openvino_model.xml", compress_to_fp16=False)
    write_tokenizer(tokenizer, out)
    config = model.config.to_dict()
    (out / "config.json").write_text(json.dumps(config, indent=1, default=str))
    eos = getattr(tokenizer, "eos_token_id", None)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": eos, "do_sample": False}))
    (out / "suite.json").write_text(json.dumps({"cache_shapes": shapes, "settings": settings}))


def compressed(converted: Any, settings: dict, calibration: Any, shapes: list) -> Any:
    """NNCF's weight compression of the stateless model (data-aware: its prefill over the windows)."""
    import nncf
    import numpy as np

    options: dict[str, Any] = {"mode": getattr(nncf.CompressWeightsMode, NNCF_MODES[settings["weights"]])}
    if settings["weights"].startswith("int4"):
        options.update(group_size=settings["group_size"], ratio=settings["ratio"], awq=settings["awq"],
                       scale_estimation=settings["scale_estimation"], gptq=settings["gptq"])
    if settings.get("keep_float"):
        # NNCF matches a pattern against the whole node name: each is searched within it instead.
        options["ignored_scope"] = nncf.IgnoredScope(patterns=[f".*(?:{p}).*" for p in settings["keep_float"]])
    if calibration is not None:
        def inputs(window: Any) -> dict:
            n = len(window)
            return {"input_ids": window.numpy()[None], "attention_mask": np.ones((1, n), np.int64),
                    "position_ids": np.arange(n, dtype=np.int64)[None],
                    **{f"past_key_values.{i // 2}.{'key' if i % 2 == 0 else 'value'}":
                       np.zeros((1, heads, 0, size), np.float32) for i, (heads, size) in enumerate(shapes)}}

        options.update(dataset=nncf.Dataset(list(calibration), inputs), subset_size=len(calibration))
    try:
        return nncf.compress_weights(converted, **options)
    except Exception as exc:  # NNCF raises its own types for settings that do not fit the model
        raise SuiteError(f"backend openvino_genai: NNCF could not compress the weights "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]})") from None


def stateful(converted: Any, past: list[str], present: list[str]) -> None:
    """The KV cache moved inside the model, as optimum-intel's export does: a `beam_idx` input
    reorders the cache's rows, each past/present pair becomes a variable, and the variables
    start as empty caches of the batch's size."""
    import numpy as np
    import openvino as ov
    from openvino import opset13
    from openvino._offline_transformations import apply_make_stateful_transformation

    batch = converted.input("input_ids").get_partial_shape()[0]
    beam_idx = opset13.parameter(name="beam_idx", dtype=ov.Type.i32, shape=ov.PartialShape([batch]))
    beam_idx.output(0).get_tensor().add_names({"beam_idx"})
    converted.add_parameters([beam_idx])
    for name in past:
        port = converted.input(name)
        users = port.get_target_inputs()
        gathered = opset13.gather(port, beam_idx, opset13.constant(0))
        for user in users:
            user.replace_source_output(gathered.output(0))
    converted.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(converted, dict(zip(past, present, strict=True)))
    ids = converted.input("input_ids")
    rows = opset13.gather(opset13.shape_of(ids, output_type="i64"), opset13.constant([0]), opset13.constant(0))
    for op in converted.get_ops():
        if op.get_type_name() == "ReadValue":
            dims = [d.min_length for d in op.get_output_partial_shape(0)]
            parts = [rows] + [opset13.constant(np.array([d], dtype=np.int64)) for d in dims[1:]]
            zeros = opset13.broadcast(opset13.constant(0.0, dtype=op.get_output_element_type(0)),
                                      opset13.concat(parts, axis=0))
            op.set_arguments([zeros])
    converted.validate_nodes_and_infer_types()


def write_tokenizer(tokenizer: Any, out: Path) -> None:
    """The tokenizer and detokenizer as OpenVINO models (the pipeline loads them; suite passes
    token ids, so a tokenizer openvino-tokenizers cannot convert is left out, and said)."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    try:
        encoder, decoder = convert_tokenizer(tokenizer, with_detokenizer=True)
    except Exception as exc:  # openvino-tokenizers raises its own types
        (out / "tokenizer.txt").write_text(f"not converted: {type(exc).__name__}: {exc}\n")
        return
    ov.save_model(encoder, out / "openvino_tokenizer.xml")
    ov.save_model(decoder, out / "openvino_detokenizer.xml")


def read_bytes(model: Any) -> int:
    """Bytes of weights one decode step reads: every constant of more than 1,024 values, but those
    only looked up (whose every use, through the de-compression ops, is a Gather: an embedding
    table read a row per token)."""
    passing = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze"}

    def ends(port_owner: Any, seen: int = 0) -> set[str]:
        found: set[str] = set()
        for output in port_owner.outputs():
            for target in output.get_target_inputs():
                node = target.get_node()
                kind = node.get_type_name()
                found |= ends(node, seen + 1) if kind in passing and seen < 6 else {kind}
        return found

    total = 0
    for op in model.get_ops():
        if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).is_static:
            shape = op.get_output_shape(0)
            size = 1
            for d in shape:
                size *= d
            if size > 1024 and ends(op) != {"Gather"}:
                total += op.get_byte_size()
    return total


class OpenVinoGenaiDecoder(DecoderContract):
    """suite.lm.Decoder's interface over openvino_genai.LLMPipeline (timed requests, greedy text)
    and the same model compiled by OpenVINO (logits, and prefill / step for the contract)."""

    def __init__(self, folder: Path, config: Any, properties: dict):
        import openvino as ov
        import openvino_genai as og

        self.model = SimpleNamespace(config=config)  # positions and layers, for the suite's checks
        self.folder, self.properties = folder, properties
        self.cache_kind = f"OpenVINO stateful ({properties['KV_CACHE_PRECISION']})"
        try:
            self.pipeline = og.LLMPipeline(str(folder), "CPU", ATTENTION_BACKEND="SDPA", **properties)
            self.compiled = ov.Core().compile_model(folder / "openvino_model.xml", "CPU", properties)
        except Exception as exc:  # OpenVINO raises RuntimeError and its own types
            raise SuiteError(f"backend openvino_genai: {folder}: OpenVINO could not load it ({exc})") from None
        self.request = self.compiled.create_infer_request()
        self.shapes = [tuple(s) for s in json.loads((folder / "suite.json").read_text())["cache_shapes"]]
        self.file_bytes = sum(path.stat().st_size for path in folder.glob("openvino_model.*"))
        self.weights_read_bytes = read_bytes(ov.Core().read_model(folder / "openvino_model.xml"))
        self.position, self.batch = 0, 0

    def compiled_precisions(self) -> dict:
        """The precisions the compiled model reports (what OpenVINO really runs)."""
        return {f"compiled_{name.lower()}": self.compiled.get_property(name).to_string()
                for name in ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION")}

    def _config(self, new_tokens: int) -> Any:
        import openvino_genai as og

        config = og.GenerationConfig()
        config.max_new_tokens = config.min_new_tokens = new_tokens
        config.ignore_eos, config.do_sample = True, False
        return config

    def _generate(self, ids: Any, new_tokens: int) -> Any:
        import numpy as np
        import openvino as ov
        import openvino_genai as og

        ids = np.ascontiguousarray(ids.numpy(), dtype=np.int64)
        inputs = og.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        self.batch, self.position = ids.shape[0], ids.shape[1] + new_tokens - 1  # the last token is not fed back
        return self.pipeline.generate(inputs, self._config(new_tokens))

    def generate(self, ids: Any, new_tokens: int) -> Any:
        import torch

        return torch.tensor(self._generate(ids, new_tokens).tokens, dtype=torch.int64).reshape(ids.shape[0], new_tokens)

    def timed_request(self, prompt: Any, new_tokens: int) -> tuple[float, list[float]]:
        """One request through the pipeline: (time to first token, each later token's time), in
        seconds, by the pipeline's own clock (its raw metrics: the first token's time from the
        call's start, then the time each next token came)."""
        raw = self._generate(prompt, new_tokens).perf_metrics.raw_metrics
        stamps = [t / 1e3 for t in raw.m_new_token_times]  # when each new token came, in ms
        return raw.m_times_to_first_token[0] / 1e6, [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # µs

    def start(self, batch: int, max_len: int) -> None:
        self.request.reset_state()
        self.position, self.batch = 0, batch

    def _run(self, ids: Any) -> Any:
        import numpy as np

        n = ids.shape[1]
        logits = self.request.infer({
            "input_ids": np.ascontiguousarray(ids.numpy(), dtype=np.int64),
            "attention_mask": np.ones((ids.shape[0], self.position + n), np.int64),
            "position_ids": np.arange(self.position, self.position + n, dtype=np.int64)[None].repeat(ids.shape[0], 0),
            "beam_idx": np.arange(ids.shape[0], dtype=np.int32)})["logits"]
        self.position += n
        return logits

    def prefill(self, ids: Any) -> Any:
        import torch

        return torch.from_numpy(self._run(ids)[:, -1:].argmax(-1)).long()

    def step(self, tokens: Any) -> Any:
        return self.prefill(tokens)

    def logits(self, ids: Any) -> Any:
        """Every position's logits, the window fed LOGITS_CHUNK tokens at a time through the
        stateful model: later chunks read the keys and values of earlier ones from the KV cache, at
        its precision (in one call, attention would read them before they are cached)."""
        import numpy as np
        import torch

        self.start(ids.shape[0], ids.shape[1])
        chunks = [self._run(ids[:, i:i + LOGITS_CHUNK]) for i in range(0, ids.shape[1], LOGITS_CHUNK)]
        return torch.from_numpy(np.concatenate(chunks, axis=1).astype("float32", copy=False))

    def cache_bytes(self) -> int:
        """The keys and values of the last request (batch x its length), at the cache's precision:
        from the model's shapes (the pipeline does not expose its cache; u8 adds a scale and zero
        point per token and head, not counted)."""
        per_token = sum(heads * size for heads, size in self.shapes)
        return self.batch * self.position * per_token * KV_BYTES[self.properties["KV_CACHE_PRECISION"]]

