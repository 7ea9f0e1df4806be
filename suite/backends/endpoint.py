"""A generative decoder behind an OpenAI-compatible HTTP server: one given by `url`, or one suite
starts from `command` for the variant (the model as the compression steps left it, saved as a
Hugging Face folder for "{model}"; or the model's own GGUF file for "{gguf}", which compression
steps do not reach, so a variant with them is refused; a free port for "{port}"; "{python}" this
interpreter), on loopback, and stops after it (suite.measure.endpoint.Server: its own process
group, killed if this process dies; its output appended to the variant's log).

What goes through the server: every timed request (streamed, one at a time: time to first
token and the gaps between tokens by this process's clock, tokens counted with the model's
tokenizer), the greedy tokens and texts compared with the reference variant (prompts sent as the
text of their tokens, answers tokenized again: a tokenizer whose decode and encode do not round
trip shows as disagreement), and the load sweeps (`concurrency` users, then Poisson `rates`).
What does not: perplexity and the KL divergence, which need every position's logits that these
APIs do not return; they are read from the model given to the server, in this process (with
`url`, the scenario's model, which the server is trusted to serve).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from suite.backends.base import HostDecoderBackend
from suite.config.params import NestedError, Params
from suite.errors import SuiteError
from suite.lm import Decoder, DecoderContract

INSTALL = "pip install -c constraints.txt -e '.[serve]'"
MAX_EXTRA = 16  # fields of extra_body
LOG_LINES = 200  # of the server's log, appended to the variant's


class EndpointParams(Params):
    url: str | None = Field(None, pattern=r"^https?://[^\s/]+(:\d+)?/?$", max_length=200)
    command: tuple[str, ...] | None = Field(None, min_length=1, max_length=64)
    port: int | None = Field(None, ge=1, le=65535)  # the command's port; None: a free one
    ready_path: str = Field("/health", pattern=r"^/\S*$", max_length=200)  # answers 200 once ready
    startup_s: float = Field(300.0, gt=0, le=3600)
    api: Literal["completions", "chat"] = "completions"
    served_model: str | None = Field(None, max_length=500)  # the requests' "model"; None: the folder
    # Fields added to every request's body; "{new_tokens}" in a text is replaced (a server's own way
    # of decoding every token asked: transformers serve's generation_config min_new_tokens,
    # llama.cpp's ignore_eos).
    extra_body: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=MAX_EXTRA)
    timeout_s: float = Field(120.0, gt=0, le=3600)  # one request, whole
    concurrency: tuple[int, ...] = Field((1, 2, 4), min_length=1, max_length=16)  # closed-loop users
    rates: tuple[float, ...] = Field((), max_length=16)  # Poisson arrivals per second (open loop)
    max_connections: int = Field(16, ge=1, le=1024)  # the open loop's
    # The rate search's time, all its trials: each halving of the rate doubles a trial's (its
    # arrivals take server_requests / rate, server_min_s at least), and a trial that would not fit
    # is not started.
    search_s: float = Field(600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _one_server(self) -> EndpointParams:
        if (self.url is None) == (self.command is None):
            raise NestedError(("url",), "give either url (a running server) or command (one suite starts)")
        if self.port is not None and self.command is None:
            raise NestedError(("port",), "port is the started command's: with url, the url names it")
        for i, users in enumerate(self.concurrency):
            if not 1 <= users <= 1024:
                raise NestedError(("concurrency", i), "users between 1 and 1024")
        for i, rate in enumerate(self.rates):
            if not 0 < rate <= 10_000:
                raise NestedError(("rates", i), "requests per second above 0, at most 10,000")
        return self


class EndpointBackend(HostDecoderBackend):
    Params = EndpointParams
    name = "endpoint"
    description = "an OpenAI-compatible HTTP server (given by url, or started from a command), streamed"
    # Saved as a Hugging Face folder: float weights of any dtype (a quantized tensor subclass is refused
    # when the folder is written).
    takes = ("torch", "torch_only", "eager_only")

    @classmethod
    def runs_file_with(cls, params: EndpointParams) -> bool:
        return any("{gguf}" in word for word in params.command or ())

    def available(self) -> str | None:
        if importlib.util.find_spec("aiohttp") is None:
            return f"aiohttp is not installed ({INSTALL})"
        return None

    def version(self) -> str:
        import aiohttp

        return f"aiohttp {aiohttp.__version__}"

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> EndpointDecoder:
        from suite.measure.endpoint import Api, Server

        p = self.params
        if cache != "auto":
            raise SuiteError(f"backend endpoint: generate.cache {cache!r}: the server keeps its own KV cache; use 'auto'")
        server, folder, gguf = None, "", ""
        if p.command is not None:
            gguf = own_gguf(model) if self.runs_file_with(p) else ""
            if not gguf or any("{model}" in w for w in (*p.command, p.served_model or "")):
                folder = str(saved_folder(model, tokenizer))
            words = [w.replace("{python}", sys.executable).replace("{gguf}", gguf) for w in p.command]
            server = Server(words, p.ready_path, p.startup_s, Path(tempfile.mkdtemp(prefix="suite-server-")) / "server.log",
                            model=folder, port=p.port or 0, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            try:
                server.start()  # its log's last lines are in the error, if it does not start
            except BaseException:
                shutil.rmtree(server.log.parent, ignore_errors=True)
                raise
        url = server.url if server else p.url.rstrip("/")
        api = Api(url, p.api, (p.served_model or folder or gguf).replace("{model}", folder), dict(p.extra_body),
                  p.timeout_s)
        self.info = {"url": url if server is None else "http://127.0.0.1:{port}", "api": p.api,
                     "server": " ".join(server.command) if server else "given by url",
                     **({"server_pid": server.process.pid} if server else {}),
                     "logits": "from the model given to the server, in this process (the API returns none)" if not gguf
                     else "from the float model the GGUF file reads as, in this process (the server runs the file's "
                          "own types; the API returns no logits)"}
        try:
            return EndpointDecoder(model, tokenizer, api, server, p)
        except BaseException:
            if server is not None:
                server.stop()
            raise


def own_gguf(model: Any) -> str:
    """The GGUF file the model was read from ("{gguf}" in a command)."""
    path = getattr(model, "gguf_file", None)
    if path is None:
        raise SuiteError("backend endpoint: command names {gguf}, the model's own GGUF file, and this model was not "
                         "read from one: use model smollm2 or {name: gguf, path: FILE.gguf}, or {model} (a folder)")
    return str(path)


def class_layout(model: Any) -> dict:
    """The model's weights as its Hugging Face class lays them out, for a server that loads that
    class: a Linear that stands in for the class's Conv1D (GPT-2 here, models/nets/gpt2.py) keeps
    its weight as [out, in] where Conv1D keeps [in, out], so such a weight is transposed back."""
    import torch

    with torch.device("meta"):
        fresh = dict(type(model)(model.config).named_modules())
    conv = {f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and type(fresh.get(name)).__name__ == "Conv1D"}
    return {key: value.t().contiguous() if key in conv else value for key, value in model.state_dict().items()}


def saved_folder(model: Any, tokenizer: Any) -> Path:
    """The model and its tokenizer as a Hugging Face folder (save_pretrained), cached under a key of
    the weights' bytes, the config and the tokenizer."""
    import hashlib
    import json

    from suite.build.weights import built_folder, hash_tensors
    from suite.lm import tokenizer_id

    digest = hashlib.sha256()
    if not hash_tensors(model, digest):
        raise SuiteError("backend endpoint: the model's weights are not plain tensors (a compression step quantized "
                         "them): a server loads a Hugging Face folder of float weights")
    # "class layout": folders saved before class_layout held GPT-2's projections transposed.
    digest.update(json.dumps([type(model).__name__, model.config.to_json_string(), tokenizer_id(tokenizer, ""),
                              "class layout"]).encode())

    def save(out: Path) -> None:
        model.save_pretrained(out, state_dict=class_layout(model))
        tokenizer.save_pretrained(out)

    return built_folder("endpoint", "Hugging Face folder for a server", digest.hexdigest()[:24], save)[0]


class EndpointDecoder(DecoderContract):
    """suite.lm.Decoder's interface over an OpenAI-compatible server: requests streamed one at a
    time (max_batch 1: batches are the load sweep's concurrent users), greedy tokens from the
    answers' text, logits from the model in this process."""

    max_batch = 1

    def __init__(self, model: Any, tokenizer: Any, api: Any, server: Any, params: EndpointParams):
        self.model, self.tokenizer, self.api, self.server, self.params = model, tokenizer, api, server, params
        self.cache_kind = "the server's own"
        self.timed_requests = 0  # each timed request's prompt is turned by one more token
        self.local = Decoder(model.eval(), "cpu", "dynamic")  # logits only

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_text(self, ids: Any) -> str:
        return self.tokenizer.decode(ids.tolist() if hasattr(ids, "tolist") else ids)

    def _api(self, new_tokens: int) -> Any:
        from dataclasses import replace

        extra = {k: v.replace("{new_tokens}", str(new_tokens)) if isinstance(v, str) else v
                 for k, v in self.api.extra.items()}
        return replace(self.api, extra=extra)

    def _answers(self, prompts: list[str], new_tokens: int) -> list:
        from suite.measure.endpoint import run_load

        answers, _ = run_load(self._api(new_tokens), prompts, new_tokens, len(prompts), 1)
        failed = next((a.error for a in answers if a.error is not None), None)
        if failed is not None:
            raise SuiteError(f"backend endpoint: {self.api.url}: {failed}{self._server_state()}")
        return answers

    def _server_state(self) -> str:
        if self.server is not None and not self.server.alive():
            return f" (the server exited with code {self.server.process.poll()}; {self.server.tail()})"
        return ""

    def _tokens(self, texts: list[str], new_tokens: int) -> Any:
        """Texts tokenized again, cut or filled with -1 (never a token) to `new_tokens` each."""
        import torch

        rows = [self.tokenizer.encode(text, add_special_tokens=False)[:new_tokens] for text in texts]
        return torch.tensor([row + [-1] * (new_tokens - len(row)) for row in rows], dtype=torch.int64)

    def generate(self, ids: Any, new_tokens: int) -> Any:
        """Greedy tokens: each prompt sent as its text, one at a time; each answer tokenized again."""
        answers = self._answers([self.prompt_text(row) for row in ids], new_tokens)
        return self._tokens([a.text for a in answers], new_tokens)

    def retokenized(self, tokens: Any) -> Any:
        """Another decoder's greedy tokens through the same round trip as this one's (text, then
        tokens again): a byte-level tokenizer's partial characters come back otherwise."""
        import numpy as np

        rows = [self.tokenizer.decode([t for t in row.tolist() if t >= 0]) for row in tokens]
        return np.asarray(self._tokens(rows, tokens.shape[1]))

    def timed_request(self, prompt: Any, new_tokens: int) -> tuple[float, list[float]]:
        """One streamed request: (time to first token, each later token's time), seconds. A server
        sends its text in chunks of one or several tokens (a streamer holds a partial character
        back, an event loop sends what piled up at once), so each later token gets the request's
        time per output token (suite.measure.endpoint.Timed). Each request's prompt is the one
        given turned by one more token than the last's (its tokens from the k-th on, then the first
        k): the same length, starting at another token, so that a server that keeps the last
        prompt's KV cache for a prompt that begins the same (llama.cpp's) computes each prefill, as
        the model in this process does, rather than answering a repeated prompt from its cache."""
        from suite.measure.endpoint import timed

        row = list(prompt[0].tolist() if hasattr(prompt[0], "tolist") else prompt[0])
        turn = self.timed_requests % len(row)
        self.timed_requests += 1
        answer = self._answers([self.prompt_text(row[turn:] + row[:turn])], new_tokens)[0]
        figures = timed(answer, self.count)
        if figures.tpot is None or figures.tpot <= 0:
            raise SuiteError(f"backend endpoint: {self.api.url} answered {figures.tokens} token(s): no time per "
                             "output token to measure (new_tokens below 2, or a server that stopped early)")
        return figures.ttft, [figures.tpot] * (figures.tokens - 1)

    def load_sweep(self, prompts: Any, new_tokens: int, requests: int, min_s: float, ttft_bound_ms: float | None,
                   tpot_bound_ms: float | None, rate_steps: int, seed: int) -> dict:
        """`requests` requests at each point: the closed loop with each of `concurrency` users, then
        the open loop at each of `rates`; with both bounds, the highest Poisson rate whose p99 TTFT
        and TPOT meet them, bisected in `rate_steps` trials of `requests` or more (arrivals over
        `min_s` seconds at least) within search_s seconds (suite.measure.endpoint.search_rate)."""
        from suite.measure.endpoint import client_cost, run_load, search_rate, summary

        p, texts, api = self.params, [self.prompt_text(row) for row in prompts], self._api(new_tokens)
        points = [("concurrency", users, None, users) for users in p.concurrency]
        points += [("rate", rate, rate, p.max_connections) for rate in p.rates]
        out = []
        for kind, value, rate, connections in points:
            answers, seconds = run_load(api, texts, new_tokens, requests, connections, rate, seed)
            out.append({kind: value, **summary(answers, seconds, self.count, ttft_bound_ms, tpot_bound_ms, new_tokens)})
        searched = None
        if ttft_bound_ms is not None and tpot_bound_ms is not None:
            def run_at(rate: float, draw: int, count: int) -> tuple[list, float]:
                return run_load(api, texts, new_tokens, count, p.max_connections, rate, seed + 1 + draw)

            served = max(point["requests_per_s"] or 0.0 for point in out)
            searched = search_rate(run_at, served, self.count, ttft_bound_ms, tpot_bound_ms, rate_steps, requests,
                                   p.search_s, new_tokens, min_s)
        with tempfile.TemporaryDirectory(prefix="suite-client-") as scratch:
            client = client_cost(Path(scratch) / "trivial.log")
        return {"url": self.api.url, "api": self.api.kind, "new_tokens": new_tokens, "prompt_tokens": int(prompts.shape[1]),
                "requests_per_point": requests, "ttft_bound_ms": ttft_bound_ms, "tpot_bound_ms": tpot_bound_ms,
                "points": out, "search": searched, "client": client}

    def logits(self, ids: Any) -> Any:
        return self.local.logits(ids)

    def start(self, batch: int, max_len: int) -> None:
        raise SuiteError("backend endpoint: the server decodes whole requests (timed_request)")

    def cache_bytes(self) -> int | None:
        return None  # the server's, not visible from here

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            lines = self.server.log.read_text(errors="replace").splitlines()[-LOG_LINES:]
            sys.stderr.write(f"--- the server's log, its last {LOG_LINES} lines at most ---\n" + "\n".join(lines) + "\n")
            shutil.rmtree(self.server.log.parent, ignore_errors=True)
            self.server = None
