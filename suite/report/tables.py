"""The report's HTML tables, sortable by a click on a column head (a few lines of inline script).

Every cell is escaped here; a number cell carries its value in `data-v` so that sorting is by
value, not by the formatted text, and an empty cell sorts last either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from html import escape
from typing import Any

from suite.phases import grouped
from suite.records import CompressRecord, Fidelity
from suite.results import LatencyResult, RunResult, VariantResult, measured_shapes

Cell = tuple[str, float | None] | str  # (text, sort value) for a number; plain text otherwise

SORT_SCRIPT = """
function sortKey(row, col) {
  const cell = row.cells[col];
  if (cell.dataset.v === undefined) return cell.textContent;
  return cell.dataset.v === "" ? null : Number(cell.dataset.v);
}
function compareKeys(a, b, ascending) {
  if (a === null || b === null) return a === b ? 0 : (a === null ? 1 : -1);
  const order = typeof a === "number" ? a - b : String(a).localeCompare(String(b));
  return ascending ? order : -order;
}
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {
  const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  const ascending = th.dataset.order !== "ascending";
  table.querySelectorAll("th").forEach(other => delete other.dataset.order);
  th.dataset.order = ascending ? "ascending" : "descending";
  Array.from(body.rows).sort((a, b) => compareKeys(sortKey(a, col), sortKey(b, col), ascending))
    .forEach(row => body.appendChild(row));
}));
"""


def sortable_table(head: list[str], rows: Iterable[list[Cell]], row_classes: Iterable[str] = ()) -> str:
    classes = list(row_classes)
    body = "".join(f'<tr class="{escape(classes[i]) if i < len(classes) else ""}">'
                   + "".join(cell_html(c) for c in row) + "</tr>" for i, row in enumerate(rows))
    return ('<table class="sortable"><thead><tr>' + "".join(f'<th title="sort">{escape(h)}</th>' for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table>")


def without_empty_columns(head: list[str], rows: list[list[Cell]]) -> tuple[list[str], list[list[Cell]]]:
    """Drop the columns no row has a value in (energy where no counter could be read, ...)."""
    keep = [i for i in range(len(head)) if any(row[i] not in ("", ("", None)) for row in rows)]
    return [head[i] for i in keep], [[row[i] for i in keep] for row in rows]


def cell_html(cell: Cell) -> str:
    if isinstance(cell, str):
        return f'<td class="text">{escape(cell)}</td>'
    text, value = cell
    return f'<td data-v="{"" if value is None else repr(float(value))}">{escape(text)}</td>'


def number(value: float | int | None, spec: str) -> Cell:
    return ("", None) if value is None else (format(value, spec), value)


def ms(value: float | None) -> Cell:
    """A time to 4 significant digits without an exponent: 0.1234, 12.34, 12,340."""
    return ("", None) if value is None else (significant(value), value)


def significant(value: float, digits: int = 4) -> str:
    if value == 0 or not math.isfinite(value):
        return format(value, "g")
    return f"{value:,.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


def headline_shape(run: RunResult) -> str | None:
    """The input shape the summary table and Pareto charts use: the one the scenario's `select`
    judges at, else the shape most variants were timed at (the smallest on a tie)."""
    from suite.results import shape_label

    if run.selection:
        return shape_label(run.selection["batch_size"], run.selection["seq_len"], run.selection.get("metric", "call"))
    shapes = measured_shapes(run.variants)
    counts = {s: sum(any(r.shape == s for r in v.latency) for v in run.variants) for s in shapes}
    return max(shapes, key=lambda s: counts[s], default=None)


def row_at(v: VariantResult, shape: str | None) -> LatencyResult | None:
    return next((row for row in v.latency if row.shape == shape), None)


def rate_at(v: VariantResult, shape: str | None) -> float | None:
    return next((t.samples_per_s for t in v.throughput if t.shape == shape), None)


def energy_per_inference(v: VariantResult, shape: str | None) -> float | None:
    from suite.results import shape_label

    rows = v.energy.rows if v.energy else ()
    return next((r.joules_per_inference for r in rows if shape_label(r.batch_size, r.seq_len) == shape), None)


VARIANT_HEAD = ["variant", "status", "model", "backend", "compression", "accuracy", "agreement", "p50 ms",
                "p50 95% CI ms", "p99 ms", "p99 bound ms", "samples/s", "speed-up vs fastest uncompressed",
                "size KiB", "peak RSS MiB", "J/inference", "measured on"]


def variants_table(run: RunResult, shape: str | None) -> str:
    recommended = (run.selection or {}).get("recommended")
    classes = [f"{v.status}{' recommended' if v.name == recommended else ''}" for v in run.variants]
    from suite.analysis.explain import compressed

    peers = replace(run, variants=tuple(v for v in run.variants if not compressed(v) and v.status == "ok"))
    head, rows = without_empty_columns(VARIANT_HEAD, [variant_cells(v, shape, peers) for v in run.variants])
    return sortable_table(head, rows, classes)


def variant_cells(v: VariantResult, shape: str | None, run: RunResult | None = None) -> list[Cell]:
    """A variant's row; `run`: the run (or its uncompressed variants) its speed-up is taken against."""
    row = row_at(v, shape)
    rate = rate_at(v, shape)
    ci = "" if row is None else ci_text(row.ci95_p50_ms)
    accuracy = number(v.accuracy, ".4f") if v.accuracy is not None else (v.accuracy_reason or "", None)
    return [v.name, v.status, v.model, v.backend, steps_text(v), accuracy, number(v.agreement, ".4f"),
            ms(row and row.p50_ms), (ci, row and row.ci95_p50_ms[0]), ms(row and row.p99_ms),
            ms(row and row.p99_bound_ms), number(rate, ",.0f"), speedup_cell(run, v, row),
            number(v.size_bytes and v.size_bytes / 1024, ",.1f"),
            number(v.peak_rss_bytes and v.peak_rss_bytes / 2**20, ",.0f"),
            number(energy_per_inference(v, shape), ".3g"),
            "" if v.node is None else f"{v.node.label}: {v.node.cpu}, {v.node.cores} cores"]


def speedup_cell(run: RunResult | None, v: VariantResult, row: LatencyResult | None) -> Cell:
    """A compressed variant's median against the fastest uncompressed one of its model and data at
    the same shape, on whichever backend, with the interval: '3.41x (3.12-3.70) vs ort-fp32', or
    '..., tied vs ...' where the interval holds 1."""
    from suite.analysis.explain import compressed, fastest_uncompressed

    best = fastest_uncompressed(run, v, row.shape) if run is not None and row is not None and compressed(v) else None
    if best is None:
        return ("", None)
    from suite.measure.processes import speedup_text

    reference = row_at(best, row.shape)
    return (f"{speedup_text(reference, row)} vs {best.name}", reference.p50_ms / row.p50_ms)


def ci_text(interval: tuple[float, float]) -> str:
    return f"{significant(interval[0])} – {significant(interval[1])}"


def steps_text(v: VariantResult) -> str:
    from suite.analysis.explain import compression_steps

    return ", ".join(compression_steps(v)) or "none"


SHAPE_HEAD = ["variant", "backend", "shape", "p50 ms", "p50 95% CI ms", "p90 ms", "p99 ms", "p99 bound ms", "mean ms",
              "CV", "samples", "calls per sample", "samples/s", "timer"]


def shapes_table(variants: tuple[VariantResult, ...]) -> str:
    """Every input shape of every variant, one row each."""
    rows = []
    for v in variants:
        rate = {t.shape: t.samples_per_s for t in v.throughput}
        rows += [[v.name, v.backend, row.shape, ms(row.p50_ms),
                  (ci_text(row.ci95_p50_ms), row.ci95_p50_ms[0]),
                  ms(row.p90_ms), ms(row.p99_ms), ms(row.p99_bound_ms),
                  ms(row.mean_ms), number(row.cv, ".1%"), number(row.n, "d"), number(row.loops, "d"),
                  number(rate.get(row.shape), ",.0f"), row.timer] for row in v.latency]
    return sortable_table(*without_empty_columns(SHAPE_HEAD, rows))


def phases_table(variants: tuple[VariantResult, ...]) -> str:
    """Each variant's wall time by phase (suite.phases), seconds, with the sampling's share: the
    time the scenario asked to be timed, against what it took to get there."""
    timed = [v for v in variants if v.phases]
    if not timed:
        return "<p>No variant recorded its phases (results from before they were kept).</p>"
    names = list(grouped(*(v.phases for v in timed)))
    rows = []
    for v in timed:
        seconds = grouped(v.phases)
        share = seconds.get("sampling", 0.0) / v.seconds if v.seconds else None
        rows.append([v.name, number(v.seconds, ",.1f"), number(share, ".0%"),
                     *(number(seconds.get(name), ",.2f") for name in names)])
    return sortable_table(*without_empty_columns(["variant", "seconds", "sampling share", *names], rows))


LAYER_HEAD = ["layer", "type", "precision", "weights", "sparsity"]


def compression_tables(variants: tuple[VariantResult, ...]) -> str:
    """For each compressed variant, each step's before/after and the per-layer table after it."""
    parts = []
    for v in (v for v in variants if v.compress_records):
        steps = "".join(step_html(record) for record in v.compress_records)
        parts.append(f"<details><summary>{escape(v.name)}: {escape(steps_text(v))}</summary>{steps}</details>")
    return "".join(parts) or "<p>No variant was compressed.</p>"


def step_html(record: CompressRecord) -> str:
    summary = " → ".join(f"{s.size_bytes / 1024:,.1f} KiB, {s.weights:,} weights, sparsity {s.sparsity:.1%}"
                         for s in (record.before, record.after))
    rows = [[str(layer.get("layer", "")), str(layer.get("type", "")), str(layer.get("precision", "")),
             number(layer.get("weights"), ","), number(layer.get("sparsity"), ".1%")]
            for layer in record.layers]
    table = sortable_table(LAYER_HEAD, rows) if rows else "<p>No per-layer table for this step.</p>"
    return f"<h4>{escape(record.method)}: {escape(summary)}</h4>{table}"


def key_value_table(data: dict[str, Any]) -> str:
    rows = "".join(f'<tr><td class="text">{escape(str(k))}</td><td class="text">{escape(flat(v))}</td></tr>'
                   for k, v in data.items())
    return f"<table>{rows}</table>"


def flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={flat(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(flat(v) for v in value)
    return "" if value is None else str(value)


def generation_of(v: VariantResult, key: str) -> Any:
    return (v.generation or {}).get(key)


def decoder_figure(v: VariantResult, metric: str, batch_size: int, prompt_len: int | None) -> LatencyResult | None:
    return next((r for r in v.latency if r.metric == metric and r.batch_size == batch_size
                 and (prompt_len is None or r.seq_len == prompt_len)), None)


def tokens_per_s(v: VariantResult, batch_size: int, prompt_len: int) -> float | None:
    """Decoding tokens/s (batch size / median time per output token) at one shape."""
    return next((t.samples_per_s for t in v.throughput if t.metric == "tpot" and t.batch_size == batch_size
                 and t.seq_len == prompt_len), None)


def decoders_table(variants: tuple[VariantResult, ...]) -> str:
    """Generative decoders, one row each: quality (teacher-forced: mean KL divergence from the
    reference with its standard error, its 99th percentile, the same top token; perplexity, its
    change; free-running: greedy agreement, first divergence), time to first token and per output
    token at batch 1, tokens/s at each batch size (first prompt length), KV cache, size, and the
    share of the read-bandwidth limit at batch 1."""
    decoders = [v for v in variants if v.generation]
    settings = decoders[0].generation["settings"]
    first, batches = settings["prompt_lens"][0], settings["batch_sizes"]
    head = (["variant", "backend", "compression", "KLD mean", "KLD p99", "same top token", "perplexity",
             "perplexity change", "greedy agreement", "first divergence (token)"]
            + [f"TTFT ms b=1 p={p}" for p in settings["prompt_lens"]]
            + [f"TPOT ms b=1 p={first}"] + [f"tokens/s b={b}" for b in batches]
            + ["KV cache KiB (largest)", "size MiB", "bandwidth share b=1"])
    rows = []
    for v in decoders:
        fidelity = v.fidelity or Fidelity()
        ttft = [decoder_figure(v, "ttft", 1, p) for p in settings["prompt_lens"]]
        tpot = decoder_figure(v, "tpot", 1, first)
        rates = [tokens_per_s(v, b, first) for b in batches]
        caches = [c["bytes"] for c in generation_of(v, "kv_cache") or () if c["bytes"] is not None]
        share = next((r["share"] for r in generation_of(v, "roofline") or ()
                      if r["metric"] == "tpot" and r["batch_size"] == 1 and r["prompt_len"] == first), None)
        kld = ("", None) if fidelity.kld_mean is None else (
            f"{fidelity.kld_mean:.3g}" + (f" ± {fidelity.kld_mean_se:.2g}" if fidelity.kld_mean_se is not None else ""),
            fidelity.kld_mean)
        rows.append([v.name, v.backend, steps_text(v), kld, number(fidelity.kld_p99, ".3g"),
                     number(fidelity.top1_agreement, ".1%"), number(v.perplexity, ".4g"),
                     number(fidelity.perplexity_increase, "+.1%"), number(fidelity.greedy_agreement, ".1%"),
                     number(fidelity.first_divergence_mean, ".1f"),
                     *(ms(r and r.p50_ms) for r in ttft), ms(tpot and tpot.p50_ms),
                     *(number(r, ",.1f") for r in rates), number(max(caches) / 1024 if caches else None, ",.0f"),
                     number(v.size_bytes and v.size_bytes / 2**20, ",.1f"), number(share, ".1%")])
    return sortable_table(*without_empty_columns(head, rows))


def endpoint_points(v: VariantResult) -> list[dict]:
    """A served variant's load points (backend endpoint): the closed and open loops', then the rate
    search's trials, marked "search"."""
    sweep = generation_of(v, "endpoint") or {}
    return [*sweep.get("points", ()), *({**t, "search": True} for t in (sweep.get("search") or {}).get("trials", ()))]


def endpoint_table(variants: tuple[VariantResult, ...]) -> str:
    """Each server's load points (backend endpoint): concurrent users or a request rate, with the
    medians and p99s of TTFT, inter-token gap and TPOT, tokens/s and requests/s, goodput under the
    bounds, failures, answers shorter than asked and the requests that arrived while another was
    being answered."""
    head = ["variant", "load", "requests", "failed", "short answers", "arrived busy", "TTFT p50 ms", "TTFT p99 ms",
            "ITL p50 ms", "TPOT p50 ms", "TPOT p99 ms", "output tokens/s", "requests/s", "goodput requests/s", "bounds met"]
    rows = []
    for v in variants:
        for point in endpoint_points(v):
            load = (f"{point['concurrency']} users" if "concurrency" in point
                    else f"{point['rate']:.3g} requests/s (Poisson{', search' if 'search' in point else ''})")

            def spread(name: str, key: str, point: dict = point) -> Cell:
                return ms((point.get(name) or {}).get(key))

            met = point.get("met")
            rows.append([v.name, load, number(point["requests"], ",d"), number(point["failed"], ",d"),
                         number(point.get("short"), ",d"), number(point.get("arrived_busy"), ",d"),
                         spread("ttft", "p50_ms"),
                         spread("ttft", "p99_ms"), spread("itl", "p50_ms"), spread("tpot", "p50_ms"),
                         spread("tpot", "p99_ms"), number(point["output_tokens_per_s"], ",.1f"),
                         number(point["requests_per_s"], ",.2f"), number(point.get("goodput_rps"), ",.2f"),
                         "" if met is None else ("yes" if met else "no")])
    return sortable_table(*without_empty_columns(head, rows)) if rows else ""


def texts_table(variants: tuple[VariantResult, ...]) -> str:
    """What each decoder wrote (greedy) after each fixed prompt: a row per variant, a column per prompt."""
    decoders = [v for v in variants if v.generation and v.generation.get("texts")]
    prompts = [t["prompt"] for t in decoders[0].generation["texts"]] if decoders else []
    rows = [[v.name, *({t["prompt"]: t["text"] for t in v.generation["texts"]}.get(p, "") for p in prompts)]
            for v in decoders]
    return sortable_table(["variant", *(f"after {p!r}" for p in prompts)], rows)


SEARCH_HEAD = ["trial", "phase", "kept in float", "value", "val accuracy", "val perplexity", "agreement",
               "speed, ms", "meets", "seconds", "error"]


def search_html(v: VariantResult, figure: str) -> str:
    """A searched variant's goal, outcome and trials (suite.build.search)."""
    s = v.search
    goal = ", ".join(f"{key} {value:g}" for key, value in s.goal.items())
    chosen = s.trials[s.chosen] if s.chosen < len(s.trials) else None
    missed = "by any setting tried" if s.stopped_by == "done" else f"before {s.stopped_by} ran out"
    outcome = "met" if s.met else f"not met {missed}: the closest trial was kept"
    reference = next((t for t in s.trials if t.phase == "reference"), None)
    replayed = f" ({s.replayed} replayed from an interrupted run)" if s.replayed else ""
    gain = (f"; {reference.speed_ms / chosen.speed_ms:.2f}x the uncompressed model's speed there"
            if reference and chosen and reference.speed_ms and chosen.speed_ms else "")
    if s.ranking:
        rounded = "weights and inputs" if s.ranking["by"] == "weights_and_inputs" else "weights"
        gain += (f"; layers ranked by the error of rounding their {rounded} to int8, in one pass of "
                 f"{s.ranking['seconds']:.1f} s, not a trial each")
    rows = [[number(t.index, "d") if t.index != s.chosen else (f"{t.index} (chosen)", t.index), t.phase,
             ", ".join(t.kept_float or ()), "" if t.value is None else flat(t.value),
             number(t.val_accuracy, ".4f"), number(t.perplexity, ".4f"), number(t.agreement, ".4f"), ms(t.speed_ms),
             "yes" if t.meets else "no", number(t.seconds, ".1f"), t.error or ""] for t in s.trials]
    return (f"<h3>{escape(v.name)}: {escape(s.strategy)} search</h3><p>Goal: {escape(goal)} on the "
            f"{escape(s.split)} split, against the uncompressed model on the same backend; {outcome}; "
            f"{len(s.trials)} trials in {s.seconds:.1f} s{replayed}"
            f"{escape(gain)}. The variant's accuracy (a decoder's perplexity) in the tables above is on the "
            f"test split, which no trial used.</p>" + figure + sortable_table(*without_empty_columns(SEARCH_HEAD, rows)))
