"""ONNX Runtime for generative decoders, through onnxruntime-genai: its model builder converts the
causal LM (as the variant's compression steps left it) to an ONNX graph with past key/values, in
fp32 or with int4 / int8 weights (MatMulNBits, block-wise scales), and its Generator runs that
graph with the KV cache held in one buffer of the request's length. The builder converts the
architectures it knows (Llama, SmolLM, Mistral, Qwen, Phi, Gemma, ...; not GPT-2): another fails
the variant with the builder's reason.

Prefill and each decode step are one forward pass of the graph and a greedy pick, as on every
backend (the Generator picks the argmax of the last logits, as suite.lm.Decoder does; the
prompt's logits are read for perplexity). Compression steps that leave a plain float torch model
(magnitude pruning) run before the conversion; the others are refused. Built models are cached (in the
run's cache folder) under a key of the weights' bytes, the config, the settings and the versions.

An optional extra (`pip install -e '.[ortgenai]'`), in the default test install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import Field

from suite.backends.base import HostDecoderBackend
from suite.config.params import Params
from suite.errors import SuiteError
from suite.lm import DecoderContract

INSTALL = "pip install -c constraints.txt -e '.[ortgenai]'"


class OrtGenaiParams(Params):
    precision: Literal["fp32", "int8", "int4"] = "fp32"  # int8 / int4: weight-only, block-wise scales
    block_size: Literal[16, 32, 64, 128, 256] = 32  # int8 / int4: weights per scale
    symmetric: bool = True  # int8 / int4: a scale per block; false: a scale and a zero point (uint)
    # int8 / int4: what the matrix products compute in. 4: activations quantized to int8 (the
    # builder's CPU default); 3 bf16, 2 fp16, 1 fp32; None: the builder's default.
    accuracy_level: Literal[1, 2, 3, 4] | None = None
    threads: int | None = Field(None, ge=1, le=1024)  # None: the scenario's threads (torch's)


class OrtGenaiBackend(HostDecoderBackend):
    name = "ort_genai"
    Params = OrtGenaiParams
    description = "ONNX Runtime through onnxruntime-genai (model builder, Generator); decoders, CPU"
    takes = ("torch",)

    def available(self) -> str | None:
        if importlib.util.find_spec("onnxruntime_genai") is None:
            return f"onnxruntime-genai is not installed ({INSTALL})"
        return None

    def version(self) -> str:
        import onnxruntime_genai

        return onnxruntime_genai.__version__

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> OrtGenaiDecoder:
        import onnxruntime
        import torch

        if cache != "auto":
            raise SuiteError(f"backend ort_genai: generate.cache {cache!r}: onnxruntime-genai keeps its own KV "
                             "cache (one buffer of the request's length); use 'auto'")
        settings = self.settings()
        folder, note = built(model, tokenizer, settings)
        threads = self.params.threads or torch.get_num_threads()
        self.info = {**settings, "threads": threads, "onnxruntime": onnxruntime.__version__, "build": note,
                     "compressed_weights": None if self.params.precision == "fp32" else self.params.precision}
        return OrtGenaiDecoder(folder, model.config, threads)

    def settings(self) -> dict[str, Any]:
        """The builder's precision and options (the quantization ones only where they apply)."""
        if self.params.precision == "fp32":
            return {"precision": "fp32"}
        options: dict[str, Any] = {"block_size": self.params.block_size, "is_symmetric": self.params.symmetric}
        if self.params.accuracy_level is not None:
            options["accuracy_level"] = self.params.accuracy_level
        return {"precision": self.params.precision, **options}



def built(model: Any, tokenizer: Any, settings: dict) -> tuple[Path, str]:
    """The builder's output folder for this model and settings, from the cache or built now."""
    from suite.build.weights import built_folder, hash_tensors, source_hash
    from suite.formats.onnx_model import package_version
    from suite.lm import tokenizer_id

    digest = hashlib.sha256()
    if not hash_tensors(model, digest):
        raise SuiteError("backend ort_genai: the model's weights are not plain tensors (a compression step "
                         "quantized them); the builder converts float weights: set its precision instead")
    parts = [type(model).__name__, model.config.to_json_string(), tokenizer_id(tokenizer, ""), settings,
             package_version("onnxruntime-genai"), package_version("transformers"), source_hash(sys.modules[__name__])]
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return built_folder("ort_genai", "onnxruntime-genai model", digest.hexdigest()[:24],
                        lambda out: build(model, tokenizer, settings, out))


def build(model: Any, tokenizer: Any, settings: dict, out: Path) -> None:
    """Save the model as a Hugging Face folder and run the builder on it (in a child process: it
    prints much and holds a second copy of the weights while it works)."""
    from safetensors.torch import save_model

    source = out / ".source"
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.architectures = [type(model).__name__]  # the builder picks its converter by this name
    config.save_pretrained(source)
    save_model(model, str(source / "model.safetensors"))  # tied tensors once
    tokenizer.save_pretrained(source)
    options = [f"{key}={str(value).lower()}" for key, value in settings.items() if key != "precision"]
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(out),
               "-p", settings["precision"], "-e", "cpu", "-c", str(out / ".cache"),
               *(["--extra_options", *options] if options else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    (out / "builder.log").write_text(done.stdout[-20000:] + done.stderr[-20000:])
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(out / ".cache", ignore_errors=True)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line.split(":")[0]), lines[-1] if lines else "")
        raise SuiteError(f"backend ort_genai: the onnxruntime-genai builder cannot convert "
                         f"{type(model).__name__} ({reason[:300]})")


def read_bytes(path: Path) -> int:
    """Bytes of the graph's weights one decode step reads: every initializer but those only looked
    up (by Gather ops, a row per token: the int8 build keeps a float embedding table for them)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    users: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    total = 0
    for tensor in graph.initializer:
        if users.get(tensor.name) and all(op.startswith("Gather") for op in users[tensor.name]):
            continue
        total += math.prod(tensor.dims) * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total


class OrtGenaiDecoder(DecoderContract):
    """suite.lm.Decoder's interface over onnxruntime-genai's Generator, one per request (`start`).
    Greedy (do_sample false): the argmax of the last position's logits, as suite.lm.Decoder picks.
    The Generator runs the forward pass of a chosen token lazily, at the next call: so prefill is
    the prompt's forward pass and a pick, and each step one token's forward pass and a pick."""

    def __init__(self, folder: Path, config: Any, threads: int):
        import onnxruntime_genai as og

        self.model = SimpleNamespace(config=config)  # positions and layers, for the suite's checks
        self.cache_kind = "onnxruntime-genai (one buffer of the request's length)"
        self.folder = folder
        settings = og.Config(str(folder))
        settings.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        try:
            self.og_model = og.Model(settings)
        except Exception as exc:  # onnxruntime-genai raises RuntimeError and its own types
            raise SuiteError(f"backend ort_genai: {folder}: onnxruntime-genai could not load it ({exc})") from None
        genai = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
        self.layers = genai["num_hidden_layers"]
        self.present = genai["outputs"]["present_key_names"], genai["outputs"]["present_value_names"]
        self.file_bytes = sum(path.stat().st_size for path in folder.glob("*.onnx*"))
        self.weights_read_bytes = read_bytes(folder / genai["filename"])
        self.generator: Any = None

    def start(self, batch: int, max_len: int) -> None:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.og_model)
        params.set_search_options(max_length=max_len, batch_size=batch, do_sample=False)
        self.generator = og.Generator(self.og_model, params)

    def _append(self, ids: Any) -> Any:
        """Logits of every appended position, (batch, len, vocab), float32 numpy."""
        import numpy as np

        self.generator.append_tokens(np.ascontiguousarray(ids.numpy(), dtype=np.int32))
        return self.generator.get_output("logits")

    def _next(self) -> Any:
        """The Generator's greedy choice (the argmax of the last logits), (batch, 1) int64."""
        import torch

        self.generator.generate_next_token()
        return torch.from_numpy(self.generator.get_next_tokens()).long().unsqueeze(1)

    def prefill(self, ids: Any) -> Any:
        self.generator.append_tokens(ids.numpy().astype("int32"))  # the prompt's forward pass
        return self._next()  # picks from the prompt's logits; no forward pass

    def step(self, tokens: Any) -> Any:
        """The forward pass of `tokens`, which the Generator holds already: it appended the tokens
        it chose (onnxruntime-genai takes a batch's prompt once, and the rest from its own choices)."""
        return self._next()

    def generate(self, ids: Any, new_tokens: int) -> Any:
        import torch

        self.start(ids.shape[0], ids.shape[1] + new_tokens)
        tokens = [self.prefill(ids)]
        for _ in range(new_tokens - 1):
            tokens.append(self.step(tokens[-1]))
        return torch.cat(tokens, dim=1)

    def logits(self, ids: Any) -> Any:
        import torch

        self.start(ids.shape[0], ids.shape[1])
        return torch.from_numpy(self._append(ids).astype("float32", copy=True))

    def cache_bytes(self) -> int:
        """The key and value buffers the Generator holds now (every layer's are the same shape)."""
        if self.generator is None:
            return 0
        keys, values = self.present
        return self.layers * (self.generator.get_output(keys % 0).nbytes + self.generator.get_output(values % 0).nbytes)
