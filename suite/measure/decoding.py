"""Timing a generative decoder: whole requests (a prompt, then a fixed number of new tokens),
each split into its prefill (time to first token, TTFT) and its decode steps (time per output
token, TPOT: each token after the first), after MLPerf's LLM metrics. Raw samples are kept.

Requests repeat, after one warm-up request, until the plan's min_samples decode steps and
min_time_s are reached, or max_samples / max_time_s: a request is never cut in the middle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suite.lm import DecoderContract
from suite.measure.timing import Clock, TimingPlan


@dataclass(frozen=True)
class Requests:
    prefill_s: tuple[float, ...]  # one per request: the prompt through to the first new token
    step_s: tuple[float, ...]  # every decode step of every request
    request_s: tuple[float, ...]  # one per request: prefill and every step
    warmup_requests: int
    stopped_by: str
    cache_bytes: int | None  # the key/value cache at the end of a request (None: not visible here)


def one_request(decoder: DecoderContract, prompt: Any, new_tokens: int, sync: Callable[[], None],
                clock: Clock) -> tuple[float, list[float]]:
    """(prefill seconds, seconds of each later step) of one greedy request; a decoder that times
    its own requests (`timed_request`: a pipeline that runs a whole request in one call) times it."""
    if decoder.timed_request is not None:
        sync()
        return decoder.timed_request(prompt, new_tokens)
    decoder.start(prompt.shape[0], prompt.shape[1] + new_tokens)
    sync()
    start = clock()
    token = decoder.prefill(prompt)
    sync()
    stamps = [clock()]
    for _ in range(new_tokens - 1):
        token = decoder.step(token)
        sync()
        stamps.append(clock())
    return stamps[0] - start, [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def time_requests(decoder: DecoderContract, prompt: Any, new_tokens: int, sync: Callable[[], None], plan: TimingPlan,
                  clock: Clock, on_request: Callable[[int], None] | None = None) -> Requests:
    warmups, started = 0, clock()
    while warmups < max(1, plan.warmup_calls) and (warmups == 0 or clock() - started < plan.warmup_s):
        one_request(decoder, prompt, new_tokens, sync, clock)
        warmups += 1
    prefills, steps, requests = [], [], []
    start = clock()
    while True:
        prefill, step = one_request(decoder, prompt, new_tokens, sync, clock)
        prefills.append(prefill)
        steps += step
        requests.append(prefill + sum(step))
        if on_request:
            on_request(len(steps))
        elapsed = clock() - start
        if len(steps) >= plan.min_samples and elapsed >= plan.min_time_s:
            stop = "enough"
        elif len(steps) >= plan.max_samples:
            stop = "max_samples"
        elif elapsed >= plan.max_time_s:
            stop = "max_time_s"
        else:
            continue
        return Requests(tuple(prefills), tuple(steps), tuple(requests), warmups, stop, decoder.cache_bytes())
