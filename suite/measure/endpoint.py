"""An OpenAI-compatible HTTP endpoint measured as the serving tools measure one (vLLM's `bench
serve`, AIPerf, GuideLLM): streaming requests (server-sent events) from an asyncio client with a
bounded number of connections, each request's time to first token, the gaps between its tokens,
its time per output token and its whole time, under a fixed number of concurrent users (closed
loop) or requests arriving as a Poisson process (open loop: time queued for a connection counts);
tokens counted with the model's tokenizer, not stream chunks. Also a server started from a
command, in a process group of its own that dies with this process. Knows no server by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import SuiteError

POLL_S = 0.25  # readiness polling interval
STOP_S = 10.0  # SIGTERM to SIGKILL


def free_port() -> int:
    """A port nothing listens on now, on loopback (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # in the server's process, before it runs the command
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    """A server started from `command` (its words; "{port}" and "{model}" replaced), run without a
    shell in a session of its own (so that stopping it stops its children) and sent SIGTERM if
    this process dies first; ready once GET `ready_path` answers 200 within `startup_s`; its output
    in `log`. A context manager: stopped (SIGTERM, then SIGKILL after STOP_S) on leaving, however
    it is left."""

    command: Sequence[str]
    ready_path: str
    startup_s: float
    log: Path
    model: str = ""
    port: int = 0
    env: dict | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def start(self) -> None:
        if self.port and port_in_use(self.port):
            raise SuiteError(f"server: port {self.port} is in use on 127.0.0.1 (leave port out for a free one)")
        self.port = self.port or free_port()
        words = [w.replace("{port}", str(self.port)).replace("{model}", self.model) for w in self.command]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            try:
                self.process = subprocess.Popen(words, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True, preexec_fn=_die_with_parent,
                                                env={**os.environ, **(self.env or {})})
            except OSError as error:
                raise SuiteError(f"server: cannot start {words[0]!r}: {error.strerror or error}") from None
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise SuiteError(f"server: exited with code {code} before it was ready ({self.tail()})")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(self.url + self.ready_path, timeout=POLL_S * 4) as answer:
                    if answer.status == 200:
                        return
            time.sleep(POLL_S)
        raise SuiteError(f"server: not ready after {self.startup_s:g} s (startup_s): GET {self.ready_path} "
                         f"never answered 200 ({self.tail()})")

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            text = []
        last = " | ".join(line.strip() for line in text[-lines:])
        return f"its log {self.log}: {last[-300:]}" if last else f"its log {self.log} is empty"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_S), (signal.SIGKILL, STOP_S)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group's stragglers


@dataclass(frozen=True)
class Api:
    """How requests are made: `url` (the server's root), `kind` ("completions": a text prompt;
    "chat": the prompt as one user message), `model` (the name sent), `extra` (fields added to
    every request's body, e.g. a server's own way of not stopping at the end-of-text token),
    `timeout_s` (one request, whole)."""

    url: str
    kind: str = "completions"
    model: str = ""
    extra: dict = field(default_factory=dict)
    timeout_s: float = 120.0

    def body(self, prompt: str, new_tokens: int) -> tuple[str, dict]:
        body = {"model": self.model, "max_tokens": new_tokens, "temperature": 0.0, "stream": True,
                "stream_options": {"include_usage": True}, **self.extra}
        if self.kind == "chat":
            return "/v1/chat/completions", {**body, "messages": [{"role": "user", "content": prompt}]}
        return "/v1/completions", {**body, "prompt": prompt}


@dataclass(frozen=True)
class Answer:
    """One streamed request: when it was due and sent (seconds from the load's start), when each
    chunk of text came (seconds after sending) and the text; `error`, why it failed (None: it
    ended as the protocol says); the output tokens the server counted, where it said."""

    due: float
    sent: float
    chunks: tuple[tuple[float, str], ...]
    error: str | None = None
    usage_tokens: int | None = None  # the output tokens the server counted (its usage event), where it sent one
    ended: float | None = None  # when the stream ended (seconds after sending); None: the last chunk's time

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)


def chunk_text(event: dict, kind: str) -> str:
    """The text an event adds (completions: choices[0].text; chat: choices[0].delta.content)."""
    choices = event.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    if kind == "chat":
        return (first.get("delta") or {}).get("content") or ""
    return first.get("text") or ""


def finished(event: dict) -> bool:
    """An event that ends the answer: a choice with its finish_reason (some servers, transformers
    serve among them, send no [DONE] after it)."""
    choices = event.get("choices") or []
    return bool(choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"))


async def stream(session: Any, api: Api, prompt: str, new_tokens: int, due: float, origin: float) -> Answer:
    """One request, its stream read event by event; never raises for the server's faults."""
    import aiohttp

    path, body = api.body(prompt, new_tokens)
    sent = time.perf_counter() - origin
    chunks: list[tuple[float, str]] = []
    usage: int | None = None

    def failed(why: str) -> Answer:
        return Answer(due, sent, tuple(chunks), why)

    try:
        async with session.post(api.url + path, json=body, timeout=aiohttp.ClientTimeout(total=api.timeout_s)) as reply:
            if reply.status != 200:
                text = (await reply.text(errors="replace"))[:200].replace("\n", " ")
                return failed(f"HTTP {reply.status}: {text}")
            ended = False
            async for raw in reply.content:
                line = raw.decode(errors="replace").strip()
                if not line or line.startswith(":") or not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    return failed(f"answered an event that is not JSON: {data[:80]!r}")
                if not isinstance(event, dict) or "error" in event:
                    return failed(f"answered an error: {str(event.get('error') if isinstance(event, dict) else event)[:200]}")
                text = chunk_text(event, api.kind)
                if text:
                    chunks.append((time.perf_counter() - origin - sent, text))
                ended = ended or finished(event)
                counted = (event.get("usage") or {}).get("completion_tokens")
                usage = counted if isinstance(counted, int) and counted >= 0 else usage
            if not ended:
                return failed(f"the stream stopped mid-answer after {len(chunks)} chunks of text "
                              "(no finish_reason, no [DONE])")
            end = time.perf_counter() - origin - sent
    except TimeoutError:
        return failed(f"no whole answer within {api.timeout_s:g} s (timeout_s)")
    except aiohttp.ClientConnectorError as error:
        return failed(f"cannot connect to {api.url}: {error.os_error.strerror if error.os_error else error}")
    except aiohttp.ClientError as error:
        return failed(f"the connection failed: {type(error).__name__}: {str(error)[:200]}")
    if not chunks:
        return failed("answered no text")
    return Answer(due, sent, tuple(chunks), usage_tokens=usage, ended=end)


async def _load(api: Api, prompts: Sequence[str], new_tokens: int, requests: int, concurrency: int,
                rate: float | None, seed: int) -> tuple[list[Answer], float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    answers: list[Answer] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        origin = time.perf_counter()
        if rate is None:  # closed loop: `concurrency` users, each sending its next request when answered
            queue = iter(range(requests))

            async def user() -> None:
                for i in queue:
                    due = time.perf_counter() - origin
                    answers.append(await stream(session, api, prompts[i % len(prompts)], new_tokens, due, origin))

            await asyncio.gather(*(user() for _ in range(concurrency)))
        else:  # open loop: arrivals of a Poisson process, each waiting for one of `concurrency` connections
            gaps = np.random.default_rng(seed).exponential(1.0 / rate, requests)
            tasks = []
            for i, due in enumerate(np.cumsum(gaps)):
                await asyncio.sleep(max(due - (time.perf_counter() - origin), 0.0))
                tasks.append(asyncio.ensure_future(
                    stream(session, api, prompts[i % len(prompts)], new_tokens, float(due), origin)))
            answers = list(await asyncio.gather(*tasks))
        seconds = time.perf_counter() - origin
    return answers, seconds


def run_load(api: Api, prompts: Sequence[str], new_tokens: int, requests: int, concurrency: int,
             rate: float | None = None, seed: int = 0) -> tuple[list[Answer], float]:
    """`requests` streamed requests (prompts in turn) under `concurrency` users (rate None) or
    arriving at `rate` per second with at most `concurrency` connections; the answers and the
    load's wall seconds."""
    return asyncio.run(_load(api, prompts, new_tokens, requests, concurrency, rate, seed))


def token_times(answer: Answer, count: Callable[[str], int]) -> tuple[int, list[float]]:
    """The answer's output tokens (as the server counted them where it said, else `count`, the
    model's tokenizer, of its whole text: never stream chunks) and, for each token after the first,
    its gap: each chunk's gap from the one before shared among the tokens it added (`count` of the
    text so far less that before it), so that a chunk of several tokens is not one long gap."""
    tokens, gaps, before, previous, text = 0, [], 0, None, ""
    for at, piece in answer.chunks:
        text += piece
        tokens = count(text)
        added = tokens - before
        if previous is not None and added > 0:
            gaps += [(at - previous) / added] * added
        elif previous is None and added > 1:
            gaps += [0.0] * (added - 1)  # tokens that came with the first: no gap measurable
        before, previous = max(tokens, before), at
    return (answer.usage_tokens if answer.usage_tokens else tokens), gaps


@dataclass(frozen=True)
class Timed:
    """One successful answer's figures, in seconds: time to first token from when it was due
    (queueing included), time per output token after the first (from the first text to the
    stream's end over the tokens after the first, as vLLM's bench serve counts it: a server that
    sends several tokens at once still has one), the whole request from when it was due to the
    stream's end, its tokens and its gaps between tokens."""

    ttft: float
    tpot: float | None
    e2e: float
    tokens: int
    gaps: tuple[float, ...]


def timed(answer: Answer, count: Callable[[str], int]) -> Timed:
    tokens, gaps = token_times(answer, count)
    queued = answer.sent - answer.due
    first, last = answer.chunks[0][0], answer.ended if answer.ended is not None else answer.chunks[-1][0]
    return Timed(ttft=queued + first, tpot=(last - first) / (tokens - 1) if tokens > 1 else None,
                 e2e=queued + last, tokens=tokens, gaps=tuple(gaps))


def arrived_busy(answers: Sequence[Answer]) -> int:
    """How many requests arrived while an earlier one was still being answered: where a server
    answers one at a time, these are the ones that queued (their TTFT holds another's answer)."""
    busy_until, busy = float("-inf"), 0
    for answer in sorted(answers, key=lambda a: a.due):
        busy += answer.due < busy_until
        end = answer.sent + (answer.ended if answer.ended is not None else answer.chunks[-1][0])
        busy_until = max(busy_until, end)
    return busy


def summary(answers: Sequence[Answer], seconds: float, count: Callable[[str], int],
            ttft_bound_ms: float | None = None, tpot_bound_ms: float | None = None, asked: int | None = None) -> dict:
    """A load's figures: TTFT, inter-token gap, TPOT and end-to-end spreads (with the 99 %-confidence
    upper bound of p99 where there are samples enough, else None), output tokens/s and requests/s
    over the load's time, failures with their first reasons, the requests that arrived while
    another was being answered (arrived_busy), with `asked` the answers of fewer tokens (short: a
    server that cuts an answer when another request comes looks faster), each request's TTFT and
    TPOT in seconds (samples), and with both bounds the goodput: the requests per second that met both, and
    whether the load's p99s met them (its bound where there are samples enough, as the suite's
    server mode judges)."""
    from suite.measure.stats import p99_claim, spread_ms

    answered = [a for a in answers if a.error is None]
    done = [timed(a, count) for a in answered]
    errors = [a.error for a in answers if a.error is not None]
    out = {"requests": len(answers), "failed": len(errors), "reasons": sorted(set(errors))[:3],
           "seconds": seconds, "requests_per_s": len(done) / seconds if seconds else None,
           "output_tokens": sum(t.tokens for t in done),
           "output_tokens_per_s": sum(t.tokens for t in done) / seconds if seconds else None,
           "arrived_busy": arrived_busy(answered),
           "short": sum(t.tokens < asked for t in done) if asked else None,
           "ttft": spread_ms([t.ttft * 1e3 for t in done]), "itl": spread_ms([g * 1e3 for t in done for g in t.gaps]),
           "tpot": spread_ms([t.tpot * 1e3 for t in done if t.tpot is not None]),
           "e2e": spread_ms([t.e2e * 1e3 for t in done]),
           "samples": {"ttft": [t.ttft for t in done], "tpot": [t.tpot for t in done if t.tpot is not None]}}
    if ttft_bound_ms is not None and tpot_bound_ms is not None:
        good = sum(t.ttft * 1e3 <= ttft_bound_ms and (t.tpot is None or t.tpot * 1e3 <= tpot_bound_ms) for t in done)
        out["goodput_rps"] = good / seconds if seconds else None

        def met(name: str, bound: float) -> bool:
            spread = out[name]
            return spread is not None and p99_claim(spread) <= bound

        out["met"] = not errors and met("ttft", ttft_bound_ms) and (out["tpot"] is None or met("tpot", tpot_bound_ms))
    return out


def search_rate(run_at: Callable[[float, int, int], tuple[list[Answer], float]], served_rps: float,
                count: Callable[[str], int], ttft_bound_ms: float, tpot_bound_ms: float, steps: int,
                requests: int, search_s: float, asked: int | None = None, min_s: float = 0.0) -> dict:
    """Bisect the Poisson arrival rate between 0 and twice the best rate the closed loop served
    (`served_rps`) for the highest whose load meets both bounds (summary's `met`: no failure, p99
    TTFT and TPOT within them), each trial `run_at(rate, trial, n)` of n arrivals: `requests`, or
    more so that they span `min_s` seconds (load.trial_requests: a few requests at a high rate end
    before a queue builds, and would meet any bound), another draw of arrivals each (one draw's
    clusters would repeat, scaled, at every rate); each trial's summary kept. With `min_s` > 0 the
    bracket doubles while every trial meets the bounds (a batching server may take more than it
    was offered); without, it stays: a few requests would meet them at any rate. Stops where a
    trial at a tenth of the served rate misses (queueing adds little there) or before a trial
    whose arrivals alone would take the search past `search_s` seconds."""
    from suite.measure.load import LIGHT_LOAD, best_trial, bisect_rate, trial_requests

    start, draws = time.perf_counter(), itertools.count()

    def trial(rate: float) -> dict:
        answers, seconds = run_at(rate, next(draws), trial_requests(rate, requests, min_s))
        return {"rate": rate, **summary(answers, seconds, count, ttft_bound_ms, tpot_bound_ms, asked)}

    trials, stopped = bisect_rate(
        trial, 2.0 * served_rps, steps if served_rps > 0 else 0, LIGHT_LOAD * served_rps,
        lambda rate: time.perf_counter() - start + trial_requests(rate, requests, min_s) / rate <= search_s,
        grow=min_s > 0)
    best = best_trial(trials, "rate")
    return {"ttft_bound_ms": ttft_bound_ms, "tpot_bound_ms": tpot_bound_ms, "percentile": 99,
            "max_rate_rps": best["rate"] if best else None,
            "output_tokens_per_s": best["output_tokens_per_s"] if best else None, "trials": trials,
            "stopped": stopped, "search_s": search_s}


# A trivial endpoint, for the client's own cost: it answers every request at once with CHUNKS
# events of one word each, over a kept-alive connection, so that what a load measures against it
# is the client's (and loopback's) time, the floor under any server's figures.
CHUNKS = 16


async def _trivial(reader: Any, writer: Any) -> None:
    event = ("data: " + json.dumps({"choices": [{"text": " w", "finish_reason": None}]}) + "\n\n").encode()
    last = ("data: " + json.dumps({"choices": [{"text": "", "finish_reason": "length"}]}) + "\n\ndata: [DONE]\n\n").encode()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            if head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for data in [event] * CHUNKS + [last]:
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def trivial_server(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.start_server(_trivial, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def client_cost(log: Path, requests: int = 64, concurrency: int = 1) -> dict:
    """The client's own figures against the trivial endpoint in a process of its own (words
    counted as tokens): what no server can be measured below."""
    import sys

    with Server([sys.executable, "-m", "suite.measure.endpoint", "{port}"], "/health", 30.0, log) as server:
        run_load(Api(server.url), ["p"], CHUNKS, 4, concurrency)  # warm-up
        answers, seconds = run_load(Api(server.url), ["p"], CHUNKS, requests, concurrency)
    figures = summary(answers, seconds, lambda text: len(text.split()))
    return {key: figures[key] for key in ("requests", "failed", "ttft", "itl", "tpot", "requests_per_s")}


if __name__ == "__main__":
    import sys

    trivial_server(int(sys.argv[1]))
