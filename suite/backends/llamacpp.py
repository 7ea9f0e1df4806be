"""llama.cpp through llama-cpp-python: the peer users of small LMs compare against. It runs the
model's own GGUF file natively (SmolLM2's Q4_1 weights stay 4-bit, in llama.cpp's own kernels),
so compression steps cannot reach it: the scenario refuses them. Generative decoders only, one
sequence at a time (llama-cpp-python's Llama decodes one sequence: larger batch sizes are not
timed, and say so). Greedy: the argmax of the last position's logits, as suite.lm.Decoder does.

An optional extra (`pip install -e '.[llamacpp]'`): llama-cpp-python is a source distribution
that compiles llama.cpp with cmake and gcc (minutes); `CMAKE_ARGS="-DGGML_NATIVE=ON"` builds it
for this CPU's instruction set, which `describe()` records (llama.cpp's system info line).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import Field

from suite.backends.base import HostDecoderBackend
from suite.config.params import Params
from suite.errors import SuiteError
from suite.lm import DecoderContract


class LlamaCppParams(Params):
    context: int = Field(1024, ge=16, le=131072)  # positions llama.cpp allocates its KV cache for
    threads: int | None = Field(None, ge=1, le=1024)  # None: the scenario's threads (torch's)


class LlamaCppBackend(HostDecoderBackend):
    name = "llamacpp"
    Params = LlamaCppParams
    description = "llama.cpp (llama-cpp-python) on the model's own GGUF file; decoders, batch 1"
    takes = ("torch",)
    runs_model_file = True  # compression steps cannot change what it runs

    def available(self) -> str | None:
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed (pip install -e '.[llamacpp]'; it compiles llama.cpp, minutes)"
        return None

    def version(self) -> str:
        import llama_cpp

        return llama_cpp.__version__

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> LlamaCppDecoder:
        import llama_cpp
        import torch

        path = getattr(model, "gguf_file", None)
        if path is None:
            raise SuiteError("backend llamacpp runs a model's own GGUF file: use model smollm2 or "
                             "{name: gguf, path: FILE.gguf}")
        if cache not in ("auto", "dynamic"):
            raise SuiteError(f"backend llamacpp: generate.cache {cache!r}: llama.cpp keeps its own f16 KV cache; "
                             "use 'auto'")
        threads = self.params.threads or torch.get_num_threads()
        decoder = LlamaCppDecoder(model, path, threads, self.params.context)
        self.info = {"file": str(path).rsplit("/", 1)[-1], "threads": threads, "context": self.params.context,
                     "compressed_weights": "the GGUF file's own types",
                     "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}
        return decoder



class LlamaCppDecoder(DecoderContract):
    """suite.lm.Decoder's interface over one llama.cpp context: start / prefill / step for timed
    requests (batch 1), generate and logits for quality (sequences one after another)."""

    max_batch = 1

    def __init__(self, model: Any, path: str, threads: int, context: int):
        from llama_cpp import Llama

        self.model = model  # the float model: its config, for positions and the KV cache's shape
        self.cache_kind = "llama.cpp f16"
        self.settings = {"model_path": str(path), "n_ctx": context, "n_batch": context, "n_threads": threads,
                         "n_threads_batch": threads, "verbose": False}
        try:
            self.llm = Llama(**self.settings)
        except (ValueError, RuntimeError) as exc:
            raise SuiteError(f"backend llamacpp: {path}: llama.cpp could not load it ({exc})") from None
        self.vocab = self.llm.n_vocab()
        self.file_bytes = Path(path).stat().st_size
        self.weights_read_bytes = self.file_bytes  # per token, the tokenizer's few MB aside (SmolLM2's head is tied)
        self._scorer: Any = None

    def start(self, batch: int, max_len: int) -> None:
        if batch != 1:
            raise SuiteError(f"backend llamacpp: batch {batch}: llama-cpp-python decodes one sequence at a time")
        if max_len > self.llm.n_ctx():
            raise SuiteError(f"backend llamacpp: a request of {max_len} positions is longer than its context "
                             f"({self.llm.n_ctx()}): raise backend.context")
        self.llm.reset()

    def _next(self, ids: list[int]) -> Any:
        import llama_cpp
        import numpy as np
        import torch

        self.llm.eval(ids)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.vocab,))
        return torch.tensor([[int(logits.argmax())]])

    def prefill(self, ids: Any) -> Any:
        return self._next(ids[0].tolist())

    def step(self, tokens: Any) -> Any:
        return self._next([int(tokens[0, 0])])

    def generate(self, ids: Any, new_tokens: int) -> Any:
        import torch

        rows = []
        for row in ids:
            self.start(1, len(row) + new_tokens)
            tokens = [self.prefill(row[None])]
            for _ in range(new_tokens - 1):
                tokens.append(self.step(tokens[-1]))
            rows.append(torch.cat(tokens, dim=1))
        return torch.cat(rows)

    def logits(self, ids: Any) -> Any:
        """Logits at every position (a second context that keeps them all), float32, host."""
        import numpy as np
        import torch
        from llama_cpp import Llama

        if self._scorer is None:
            self._scorer = Llama(**self.settings, logits_all=True)
        out = []
        for row in ids:
            self._scorer.reset()
            self._scorer.eval(row.tolist())
            out.append(torch.from_numpy(np.array(self._scorer.scores[:len(row)], dtype=np.float32)))
        return torch.stack(out)

    def cache_bytes(self) -> int:
        """What llama.cpp allocates for keys and values: f16, every layer, all `context` positions."""
        config = self.model.config
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return 2 * config.num_hidden_layers * kv_heads * head_dim * self.llm.n_ctx() * 2
