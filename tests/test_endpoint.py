"""Backend endpoint (a decoder behind an OpenAI-compatible server) and suite.measure.endpoint: the
client's token times against hand-computed streams; goodput and the rate search; and every class
of fault (nothing listening, a port in use, a server that never becomes ready or exits, HTTP 500,
an event that is not JSON, a stream that stops mid-answer, a server that hangs or is killed
mid-load), each a one-line reason in bounded time with nothing left running. A real server
(`transformers serve` on SmolLM2, started and stopped by the run) is scenarios/serving.yaml's,
checked in tests/test_scenarios.py."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import time

import numpy as np
import pytest

from suite.errors import SuiteError
from suite.measure import endpoint
from suite.measure.endpoint import Answer, Api, Server, free_port, run_load, summary, token_times
from tests.conftest import llama_scenario

pytest.importorskip("aiohttp")


def words(text: str) -> int:  # a tokenizer for hand-computed figures: one token per word
    return len(text.split())


def test_token_times_share_a_chunk_gap_among_its_tokens_and_count_with_the_tokenizer():
    # Three chunks: "a" at 0.1 s, "b c" at 0.3 s (two tokens, 0.2 s: 0.1 s each), "d" at 0.35 s.
    answer = Answer(due=0.0, sent=0.5, chunks=((0.1, "a"), (0.3, " b c"), (0.35, " d")))
    tokens, gaps = token_times(answer, words)
    assert tokens == 4 and gaps == pytest.approx([0.1, 0.1, 0.05])
    t = endpoint.timed(answer, words)
    # Queued 0.5 s before it was sent (an open loop's arrival): counted in TTFT and end to end.
    assert t.ttft == pytest.approx(0.6) and t.e2e == pytest.approx(0.85) and t.tpot == pytest.approx(0.25 / 3)
    # TPOT and the whole request run to the stream's end where it was seen (vLLM's bench serve counts
    # so): all four tokens in one chunk at 0.1 s, the end at 0.4 s.
    burst = endpoint.timed(Answer(0.0, 0.0, ((0.1, "a b c d"),), ended=0.4), words)
    assert burst.tpot == pytest.approx(0.1) and burst.e2e == pytest.approx(0.4) and burst.gaps == (0.0, 0.0, 0.0)
    # The server's own count of output tokens, where its usage event gave one, over the tokenizer's.
    assert token_times(Answer(0.0, 0.0, ((0.1, "a b"),), usage_tokens=5), words)[0] == 5


def test_summary_counts_goodput_and_failures():
    fast = Answer(0.0, 0.0, ((0.01, "a"), (0.02, " b")))  # TTFT 10 ms, TPOT 10 ms
    slow = Answer(0.0, 0.0, ((0.5, "a"), (0.6, " b")))  # TTFT 500 ms
    failed = Answer(0.0, 0.0, (), "HTTP 500: boom")
    out = summary([fast, slow, failed], 2.0, words, ttft_bound_ms=100, tpot_bound_ms=50)
    assert out["requests"] == 3 and out["failed"] == 1 and out["reasons"] == ["HTTP 500: boom"]
    assert out["goodput_rps"] == pytest.approx(0.5) and out["requests_per_s"] == pytest.approx(1.0)
    assert out["output_tokens"] == 4 and out["output_tokens_per_s"] == pytest.approx(2.0)
    assert out["ttft"]["p50_ms"] == pytest.approx(255) and out["ttft"]["p99_bound_ms"] is None  # 2 samples: no claim
    assert out["met"] is False  # a failed request, and p99 TTFT above the bound


def test_the_rate_search_bisects_to_the_highest_rate_meeting_both_bounds():
    draws = []

    def run_at(rate, draw, n):  # a server that answers in 10 ms up to 12 requests/s, in 5 s above
        draws.append(draw)
        first = 0.01 if rate <= 12 else 5.0
        return [Answer(0.0, 0.0, ((first, "a"), (first + 0.01, " b")))] * 4, 1.0

    out = endpoint.search_rate(run_at, 10.0, words, ttft_bound_ms=100, tpot_bound_ms=50, steps=4, requests=4,
                               search_s=60)
    assert [t["rate"] for t in out["trials"]] == [10.0, 15.0, 12.5, 11.25]
    assert [t["met"] for t in out["trials"]] == [True, False, False, True]
    assert out["max_rate_rps"] == 11.25 and out["output_tokens_per_s"] == 8.0
    assert draws == [0, 1, 2, 3] and out["stopped"] == "4 trials (rate_steps)"  # another draw of arrivals each
    # A server that meets the bounds at every rate tried: the highest rate is said to be a floor.
    always = endpoint.search_rate(lambda rate, draw, n: run_at(0.0, draw, n), 10.0, words, 100, 50, 3, requests=4,
                                  search_s=60)
    assert [t["rate"] for t in always["trials"]] == [10.0, 15.0, 17.5] and "a floor, not the limit" in always["stopped"]
    # A miss at a tenth of what the closed loop served ends the search: lower rates would miss too.
    never = endpoint.search_rate(lambda rate, draw, n: ([Answer(0.0, 0.0, ((9.0, "a"),))], 1.0), 10.0, words, 100, 50, 20,
                                 requests=4, search_s=60)
    assert never["max_rate_rps"] is None and [t["rate"] for t in never["trials"]] == [10.0, 5.0, 2.5, 1.25, 0.625]
    assert never["stopped"].startswith("missed at 0.625/s, a light load")
    # A trial whose arrivals alone would not fit the search's time is not started: 40 arrivals at
    # 2.5/s take 16 s, past 15 s.
    short = endpoint.search_rate(lambda rate, draw, n: ([Answer(0.0, 0.0, ((9.0, "a"),))], 1.0), 10.0, words, 100, 50,
                                 20, requests=40, search_s=15)
    assert [t["rate"] for t in short["trials"]] == [10.0, 5.0] and "would not fit" in short["stopped"]


def test_the_cost_per_million_tokens_is_at_the_highest_rate_that_met_the_bounds():
    from suite.tasks.generate import served_cost

    # $0.10 an hour at 50 output tokens/s: 180,000 tokens an hour, $0.556 per million.
    found = {"search": {"max_rate_rps": 2.5, "output_tokens_per_s": 50.0}}
    assert served_cost(found, 0.10)["cost_per_million_tokens"] == pytest.approx(0.10 / 180_000 * 1e6)
    # No rate met the bounds, no search, or no cost per hour: no cost, and nothing divided by zero.
    for sweep, per_hour in (({"search": {"max_rate_rps": None, "output_tokens_per_s": None}}, 0.10),
                            ({"search": None}, 0.10), (found, None)):
        assert served_cost(sweep, per_hour) == {**sweep, "cost_per_hour": per_hour, "cost_per_million_tokens": None}


def one_at_a_time(service_s: float):
    """A simulated server that answers one request at a time, each in `service_s`: arrivals of a
    Poisson process queue behind each other (first text at half the answer, the rest at its end)."""
    def run_at(rate, draw, n):
        due = np.cumsum(np.random.default_rng(draw).exponential(1 / rate, n))
        free, answers = 0.0, []
        for arrival in due:
            start = max(arrival, free)
            free = start + service_s
            wait = start - arrival
            answers.append(Answer(float(arrival), float(arrival), ((wait + service_s / 2, "a"), (wait + service_s, " b"))))
        return answers, free

    return run_at


def test_a_trial_lasts_server_min_s_so_that_a_rate_the_server_cannot_sustain_misses_and_the_bracket_may_grow():
    """MLPerf's min_duration: 4 requests at 16/s to a server of 12.5/s end before a queue builds
    and meet a TTFT bound of 1 s; arrivals over 10 s (160) queue 3.5 a second and miss it."""
    burst = endpoint.search_rate(one_at_a_time(0.08), 16.0, words, 1000, 50, 1, requests=4, search_s=60)
    sustained = endpoint.search_rate(one_at_a_time(0.08), 16.0, words, 1000, 50, 1, requests=4, search_s=60, min_s=10)
    assert [(t["rate"], t["requests"], t["met"]) for t in burst["trials"]] == [(16.0, 4, True)]
    assert [(t["rate"], t["requests"], t["met"]) for t in sustained["trials"]] == [(16.0, 160, False)]
    assert sustained["trials"][0]["ttft"]["p99_ms"] > 1000 > burst["trials"][0]["ttft"]["p99_ms"]
    # Trials that last: the bracket doubles while every trial met (a batching server may take more
    # than its users offered). A server of 50/s found by a closed loop that served 10/s: 45.6/s,
    # where 4-request trials, the bracket fixed at 20/s, report a floor of 19.4/s.
    grown = endpoint.search_rate(one_at_a_time(0.02), 10.0, words, 1000, 50, 5, requests=4, search_s=600, min_s=10)
    assert [t["rate"] for t in grown["trials"]] == [10.0, 25.0, 52.5, 38.75, 45.625] and grown["max_rate_rps"] == 45.625
    assert [t["met"] for t in grown["trials"]] == [True, True, False, True, True]
    floor = endpoint.search_rate(one_at_a_time(0.02), 10.0, words, 1000, 50, 5, requests=4, search_s=600)
    assert floor["max_rate_rps"] == 19.375 and "a floor, not the limit" in floor["stopped"]
    # The search's time counts a trial's min_s: at 8/s, 10 s of arrivals do not fit 5 s.
    cut = endpoint.search_rate(one_at_a_time(0.08), 8.0, words, 1000, 50, 3, requests=4, search_s=5, min_s=10)
    assert cut["trials"] == [] and "would not fit" in cut["stopped"]
    # Requests per trial: server_requests at least, rate x min_s where more, at most MAX_TRIAL_REQUESTS.
    from suite.measure.load import MAX_TRIAL_REQUESTS, trial_requests

    assert [trial_requests(r, 64, 10) for r in (0.5, 6.45, 1e6)] == [64, 65, MAX_TRIAL_REQUESTS]


def test_requests_that_arrive_while_another_is_answered_are_counted():
    # Answers of 1 s each, due at 0, 0.5 (while the first is answered), 3 and 3.9 (while the third is).
    def answer(due):
        return Answer(due, due, ((0.1, "a"), (1.0, " b")), ended=1.0)

    assert endpoint.arrived_busy([answer(3.9), answer(0.0), answer(3.0), answer(0.5)]) == 2
    assert endpoint.arrived_busy([answer(0.0), answer(1.5), answer(3.0)]) == 0
    assert summary([answer(0.0), answer(0.5)], 2.0, words)["arrived_busy"] == 1
    # Answers of fewer tokens than asked (a server cutting one short when another comes) are counted.
    figures = summary([answer(0.0), Answer(1.0, 1.0, ((0.1, "a"),), ended=0.2)], 2.0, words, asked=2)
    assert figures["short"] == 1 and summary([answer(0.0)], 1.0, words)["short"] is None


class Fault(http.server.BaseHTTPRequestHandler):
    """What a broken server answers, chosen by the test through the class attribute `mode`."""

    mode = "ok"
    bodies: list[dict] = []  # each request's, as sent

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.mode != "never_ready" else 503)
        self.end_headers()

    def do_POST(self):
        Fault.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        if self.mode == "http_500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        event = json.dumps({"choices": [{"text": " word"}]})
        if self.mode == "not_json":
            self.wfile.write(b"data: <html>oops</html>\n\n")
        elif self.mode == "hang":
            self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.flush()
            time.sleep(5)
        elif self.mode == "cut":
            self.wfile.write(f"data: {event}\n\n".encode())  # then the connection closes: no [DONE]
        else:
            for _ in range(3):
                self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def fault_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fault)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    Fault.mode = "ok"
    Fault.bodies.clear()


class Numbered:
    """A tokenizer of numbered words: token i is the word "t<i>"."""

    def decode(self, ids):
        return " ".join(f"t{i}" for i in ids)

    def encode(self, text, add_special_tokens=False):
        return text.split()


def test_each_timed_request_starts_its_prompt_at_another_token(fault_server):
    """A server that keeps the last prompt's KV cache (llama.cpp's) would answer a repeated prompt
    from it: each timed request turns the prompt by one more token (same length, another start)."""
    from suite.backends.endpoint import EndpointDecoder, EndpointParams

    decoder = object.__new__(EndpointDecoder)  # no model: timed_request only talks to the server
    decoder.tokenizer, decoder.server, decoder.timed_requests = Numbered(), None, 0
    decoder.api = Api(f"http://127.0.0.1:{fault_server.server_address[1]}", timeout_s=5.0)
    decoder.params = EndpointParams(url=decoder.api.url)
    for _ in range(5):
        ttft, steps = decoder.timed_request([[0, 1, 2, 3]], 3)
        assert ttft > 0 and len(steps) == 2  # the fake server's three words
    prompts = [body["prompt"] for body in Fault.bodies]
    assert prompts == ["t0 t1 t2 t3", "t1 t2 t3 t0", "t2 t3 t0 t1", "t3 t0 t1 t2", "t0 t1 t2 t3"]


@pytest.mark.parametrize("mode, reason", [
    ("ok", None),
    ("http_500", "HTTP 500: internal error"),
    ("not_json", "answered an event that is not JSON"),
    ("cut", "the stream stopped mid-answer after 1 chunks"),
    ("hang", "no whole answer within 1 s (timeout_s)"),
])
def test_each_fault_of_a_server_is_a_reason_in_bounded_time(fault_server, mode, reason):
    Fault.mode = mode
    api = Api(f"http://127.0.0.1:{fault_server.server_address[1]}", timeout_s=1.0)
    started = time.monotonic()
    answers, _ = run_load(api, ["a prompt"], 3, requests=2, concurrency=2)
    assert time.monotonic() - started < 4
    if reason is None:
        assert [a.error for a in answers] == [None, None] and answers[0].text == " word word word"
    else:
        assert all(a.error.startswith(reason) for a in answers), answers


def test_nothing_listening_is_a_reason_not_an_exception():
    answers, _ = run_load(Api(f"http://127.0.0.1:{free_port()}"), ["p"], 2, requests=1, concurrency=1)
    assert answers[0].error.startswith("cannot connect to http://127.0.0.1:")


def test_a_poisson_load_counts_time_queued_for_a_connection(fault_server):
    api = Api(f"http://127.0.0.1:{fault_server.server_address[1]}")
    answers, seconds = run_load(api, ["p"], 3, requests=20, concurrency=1, rate=200.0, seed=1)
    assert len(answers) == 20 and all(a.error is None for a in answers)
    assert sorted(a.due for a in answers) == [a.due for a in answers] and seconds > answers[-1].due
    # One connection for arrivals 5 ms apart on average: later requests wait to be sent.
    assert max(a.sent - a.due for a in answers) > 0


def python_server(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_server_that_never_becomes_ready_or_exits_is_stopped_with_its_log(tmp_path):
    never = Server(python_server("import time; print('loading', flush=True); time.sleep(60)"), "/health", 1.0,
                   tmp_path / "never.log")
    started = time.monotonic()
    with pytest.raises(SuiteError, match=r"not ready after 1 s \(startup_s\).*loading"):
        never.start()
    assert time.monotonic() - started < 15 and gone(never.process.pid)
    dies = Server(python_server("import sys; print('no model here'); sys.exit(3)"), "/health", 30.0, tmp_path / "dies.log")
    with pytest.raises(SuiteError, match="exited with code 3 before it was ready.*no model here"):
        dies.start()
    with pytest.raises(SuiteError, match="cannot start 'no-such-server-program'"):
        Server(["no-such-server-program"], "/health", 5.0, tmp_path / "missing.log").start()


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path, fault_server):
    taken = fault_server.server_address[1]
    with pytest.raises(SuiteError, match=f"port {taken} is in use"):
        Server(python_server("pass"), "/health", 5.0, tmp_path / "log", port=taken).start()


def test_a_server_killed_mid_load_fails_the_rest_in_bounded_time(tmp_path):
    code = ("import http.server, sys, time\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def log_message(self, *a): pass\n"
            "    def do_GET(self): self.send_response(200); self.end_headers()\n"
            "    def do_POST(self):\n"
            "        self.rfile.read(int(self.headers['Content-Length']))\n"
            "        self.send_response(200); self.end_headers()\n"
            "        for _ in range(50):\n"
            "            self.wfile.write(b'data: {\"choices\": [{\"text\": \" w\"}]}\\n\\n'); self.wfile.flush()\n"
            "            time.sleep(0.05)\n"
            "        self.wfile.write(b'data: [DONE]\\n\\n')\n"
            "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n")
    with Server([sys.executable, "-c", code, "{port}"], "/", 20.0, tmp_path / "server.log") as server:
        threading.Timer(0.5, server.stop).start()
        started = time.monotonic()
        answers, _ = run_load(Api(server.url, timeout_s=10), ["p"], 50, requests=4, concurrency=2)
        assert time.monotonic() - started < 8
    assert all(a.error is not None for a in answers) and gone(server.process.pid)
    assert any("stopped mid-answer" in a.error or "connection failed" in a.error for a in answers), answers


def test_bound_presets_are_mlperfs_and_exclusive_with_explicit_bounds(llama_folder, write_scenario, capsys):
    from suite.__main__ import main
    from suite.config.scenario import Generate

    assert (Generate(bounds="server").ttft_bound_ms, Generate(bounds="server").tpot_bound_ms) == (2000.0, 200.0)
    assert (Generate(bounds="interactive").ttft_bound_ms, Generate(bounds="interactive").tpot_bound_ms) == (450.0, 40.0)
    text = llama_scenario(llama_folder, "", "ep").replace("new_tokens: 4}", "new_tokens: 4, bounds: server, tpot_bound_ms: 5}")
    assert main(["validate", str(write_scenario(text))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "measure.generate.bounds" in err and "not both" in err


@pytest.mark.parametrize("setting", ["server_min_s: -1", "server_min_s: .inf", "server_min_s: 1e9", "server_min_s: long",
                                     "server_requests: 0", "server_requests: 1e12"])
def test_bad_trial_sizes_are_one_line_errors(llama_folder, write_scenario, setting, capsys):
    from suite.__main__ import main

    text = llama_scenario(llama_folder, "", "ep").replace("new_tokens: 4}", f"new_tokens: 4, {setting}}}")
    assert main(["validate", str(write_scenario(text))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"measure.generate.{setting.split(':')[0]}" in err, err


def test_endpoint_cannot_be_every_variants_backend_and_list_says_what_it_needs(llama_folder, write_scenario, capsys):
    from suite.__main__ import main

    path = write_scenario(llama_scenario(llama_folder, "", "ep"))
    assert main(["run", str(path), "--quick", "--backend", "endpoint"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --backend endpoint: it needs settings of its own (give either url (a running server) or "
                   "command (one suite starts)): give it in the scenario's variants instead")
    assert main(["list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("endpoint "))
    assert "needs settings: url: give either url" in line


@pytest.mark.parametrize("settings, message", [
    ("{name: endpoint}", "give either url .* or command"),
    ("{name: endpoint, url: 'http://127.0.0.1:1', command: [x]}", "give either url"),
    ("{name: endpoint, url: 'ftp://host'}", "url"),
    ("{name: endpoint, url: 'http://127.0.0.1:8000', port: 9000}", "port is the started command's"),
    ("{name: endpoint, command: [x], concurrency: [0]}", "concurrency.0"),
    ("{name: endpoint, command: [x], rates: [-1]}", "rates.0"),
    ("{name: endpoint, command: [x], ready_path: health}", "ready_path"),
    ("{name: endpoint, command: [x], max_connections: 0}", "max_connections"),
    ("{name: endpoint, command: [x], search_s: 0}", "search_s"),
    ("{name: endpoint, command: [x], search_s: .inf}", "search_s"),
    ("{name: endpoint, command: [x], search_s: many}", "search_s"),
    ("{name: endpoint, command: [x], api: grpc}", "api"),
])
def test_bad_endpoint_settings_are_one_line_errors(llama_folder, write_scenario, settings, message, capsys):
    from suite.__main__ import main

    path = write_scenario(llama_scenario(llama_folder, f"          - {{name: served, backend: {settings}}}", "ep"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "backend" in err
    import re

    assert re.search(message, err), err


def test_a_server_that_does_not_start_fails_its_variant_with_its_log_and_the_run_goes_on(llama_folder, write_scenario,
                                                                                         run_quick):
    dies = "['{python}', -c, 'import sys; print(\"cannot load {model}\"); sys.exit(3)']"
    unreachable = f"http://127.0.0.1:{free_port()}"
    path = write_scenario(llama_scenario(llama_folder, f"""
          - {{name: dies, backend: {{name: endpoint, command: {dies}, startup_s: 30}}}}
          - {{name: nobody, backend: {{name: endpoint, url: '{unreachable}', timeout_s: 5}}}}
          - {{name: no-gguf, backend: {{name: endpoint, command: ['{{python}}', '{{gguf}}']}}}}""", "ep"))
    started = time.monotonic()
    status, out, _, results = run_quick(path, "--in-process")
    assert status == 2 and time.monotonic() - started < 120, out  # bad settings: those variants failed, the run went on
    v = {variant["name"]: variant for variant in results["variants"]}
    assert v["fp32"]["status"] == "ok"  # measured before, kept
    assert v["dies"]["status"] == "failed" and "exited with code 3 before it was ready" in v["dies"]["error"]
    assert "cannot load" in v["dies"]["error"]  # the log's last lines
    assert v["nobody"]["status"] == "failed" and f"cannot connect to {unreachable}" in v["nobody"]["error"]
    assert v["no-gguf"]["status"] == "failed" and "not read from one" in v["no-gguf"]["error"]  # a folder's model


def test_a_server_of_the_models_own_gguf_file_refuses_compression_steps(llama_folder, write_scenario, capsys):
    """{gguf} is the file the model was read from: a compression step would not reach it."""
    from suite.__main__ import main

    path = write_scenario(llama_scenario(llama_folder, """
          - {name: served, compress: [bf16], backend: {name: endpoint, command: [x, '{gguf}']}}""", "ep"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs the model's own file, which compression steps do not change" in err


def test_a_servers_load_points_are_latency_rows_that_the_gate_judges():
    """Each point's requests become rows of their own ("ttft at 4 users b=1 p=32"); a candidate
    whose TTFT under 4 users is twice the baseline's fails the stored gate, one equal does not."""
    from suite.analysis.compare import compare_runs
    from suite.analysis.gate import regressions
    from suite.results import RunResult, VariantResult
    from suite.tasks.generate import served_rows

    rng = np.random.default_rng(3)

    def run_with(scale):
        point = {"concurrency": 4, "requests": 40, "samples": {"ttft": list(scale * rng.uniform(0.1, 0.12, 40)),
                                                                "tpot": list(rng.uniform(0.05, 0.06, 40))}}
        trial = {"rate": 1.0, "met": True, "samples": {"ttft": [0.1], "tpot": [0.05]}}
        rows, sweep = served_rows({"points": [point], "search": {"trials": [trial]}}, 32, 1)
        assert "samples" not in sweep["points"][0] and "samples" not in sweep["search"]["trials"][0]
        v = VariantResult(name="served", model="smollm2", backend="endpoint", latency=tuple(rows))
        return RunResult(suite_version="0", created="2026-12-06T00:00:00+00:00", scenario={}, environment={},
                         variants=(v,))

    base = run_with(1.0)
    assert [r.shape for r in base.variants[0].latency] == ["ttft at 4 users b=1 p=32", "tpot at 4 users b=1 p=32"]
    assert [r.shape for r in regressions(compare_runs(base, run_with(2.0)), 0.10)] == ["ttft at 4 users b=1 p=32"]
    assert regressions(compare_runs(base, run_with(1.0)), 0.10) == []


def test_the_folder_a_server_loads_has_its_classs_layout_and_the_same_outputs(tmp_path):
    """GPT-2 here runs its Conv1D projections as Linear layers (weights transposed); the folder a
    server loads must hold them as GPT2LMHeadModel does, or transformers serve refuses it."""
    import torch
    from transformers import GPT2LMHeadModel

    from models.nets.gpt2 import gpt2
    from suite.backends.endpoint import class_layout

    torch.manual_seed(0)
    model = gpt2(vocab_size=64, layers=2, hidden=32, heads=4, context=32, eos_id=0).eval()
    model.save_pretrained(tmp_path, state_dict=class_layout(model))
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path).eval()  # raises on a weight of the wrong shape
    ids = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)
