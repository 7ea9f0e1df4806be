"""Accuracy-aware choice: the fastest variant whose quality stays within the budget.

A variant is judged against its agreement reference (the fp32 variant of the same model and
data), so variants of different models are each judged against their own baseline: by accuracy
drop for classifiers; for generative decoders by the bounds select sets: KL divergence from the
reference's next-token distributions, the share of the same top token, perplexity increase,
greedy agreement.

Among those within the budget, the fastest by the point figure may not be faster than the next
ones: each is compared with it by the one rule (suite.measure.processes.compare_rows: the 95 %
interval of the ratio across processes), and those not slower are tied with it. Among the tied,
the recommendation is the smallest (serialized size), then the one with fewer compression steps,
then one without a search, then the fastest figure: when speed cannot tell them apart, the
cheaper one to ship and to make again wins.
"""

from __future__ import annotations

from typing import Any

from suite.config.scenario import Select
from suite.results import VariantResult, shape_label


def recommend(select: Select, variants: tuple[VariantResult, ...]) -> dict:
    by_name = {v.name: v for v in variants}
    within, broke, not_judged = [], [], []
    where = shape_label(select.batch_size, select.seq_len, select.metric)
    for v in variants:
        figures, over, reason = judge(v, by_name.get(v.agreement_with or ""), select)
        row = latency_row(v, select.batch_size, select.seq_len, select.metric)
        if reason or row is None:
            not_judged.append({"variant": v.name, "reason": reason or f"not timed at {where}"})
        elif over:
            broke.append({"variant": v.name, **figures, "over": over})
        else:
            within.append({"variant": v.name, **figures, select.by: getattr(row, select.by)})
    within.sort(key=lambda entry: entry[select.by])
    tied = ties(within, by_name, select)
    chosen = min(tied, key=lambda name: tie_break(by_name[name], tied.index(name))) if tied else None
    from suite.measure.processes import busy

    return {**select.model_dump(mode="json"), "recommended": chosen,
            "fastest": within[0]["variant"] if within else None,
            "tied": [name for name in tied if name != chosen], "within": within, "broke": broke,
            "not_judged": not_judged,
            "busy": [name for name in tied if busy(latency_row(by_name[name], select.batch_size, select.seq_len,
                                                               select.metric))]}


def ties(within: list[dict], by_name: dict[str, VariantResult], select: Select) -> list[str]:
    """The variants within the budget that are not slower than the fastest (the fastest first),
    each entry given its comparison with the fastest ({"ratio", "ci95", "verdict", "design"})."""
    from suite.measure.processes import compare_rows

    if not within:
        return []
    fastest = latency_row(by_name[within[0]["variant"]], select.batch_size, select.seq_len, select.metric)
    tied = [within[0]["variant"]]
    for entry in within[1:]:
        row = latency_row(by_name[entry["variant"]], select.batch_size, select.seq_len, select.metric)
        c = compare_rows(fastest, row, select.by)
        entry["vs_fastest"] = {"ratio": round(c.ratio, 4), "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)],
                               "verdict": c.verdict(), "design": c.design}
        if c.verdict() != "slower":
            tied.append(entry["variant"])
    return tied


def tie_break(v: VariantResult, order: int) -> tuple:
    """Among tied variants: the smaller, then fewer compression steps, then one without a search (as
    simple to make again), then the faster figure."""
    return (v.size_bytes if v.size_bytes is not None else float("inf"), len(v.compress), v.search is not None, order)


def judge(v: VariantResult, reference: VariantResult | None, select: Select) -> tuple[dict, list[str], str | None]:
    """(the variant's quality figures, the budgets it breaks, why it cannot be judged or None)."""
    from suite.tasks import task_of

    if v.status != "ok":
        return {}, [], v.status
    return task_of(v).select(v, reference, select)


def latency_row(v: VariantResult, batch_size: int, seq_len: int | None, metric: str = "call") -> Any:
    rows = [r for r in v.latency if r.batch_size == batch_size and r.metric == metric
            and (seq_len is None or r.seq_len == seq_len)]
    return rows[0] if rows else None


def budget(selection: dict) -> str:
    parts = []
    if selection.get("max_accuracy_drop") is not None:
        parts.append(f"an accuracy drop of at most {selection['max_accuracy_drop'] * 100:.3g} points")
    if selection.get("max_kld_mean") is not None:
        parts.append(f"a mean KL divergence of at most {selection['max_kld_mean']:.4g} from the reference's")
    if selection.get("min_top1_agreement") is not None:
        parts.append(f"the same top token at {selection['min_top1_agreement'] * 100:.3g} % of positions at least")
    if selection.get("max_perplexity_increase") is not None:
        parts.append(f"perplexity at most {selection['max_perplexity_increase'] * 100:.3g} % above the reference's")
    if selection.get("min_greedy_agreement") is not None:
        parts.append(f"greedy agreement of at least {selection['min_greedy_agreement'] * 100:.3g} %")
    return " and ".join(parts)


def quality(entry: dict) -> str:
    """'drop 0.28 points' or 'KL divergence 0.0041, top-1 agreement 97.2 %, perplexity +1.2 %'."""
    if "accuracy_drop" in entry:
        return f"drop {entry['accuracy_drop'] * 100:.2f} points"
    parts = [f"KL divergence {entry['kld_mean']:.4g}" if "kld_mean" in entry else "",
             f"top-1 agreement {entry['top1_agreement'] * 100:.1f} %" if "top1_agreement" in entry else "",
             f"perplexity {entry['perplexity_increase'] * 100:+.1f} %" if "perplexity_increase" in entry else "",
             f"greedy agreement {entry['greedy_agreement'] * 100:.1f} %" if "greedy_agreement" in entry else ""]
    return ", ".join(p for p in parts if p)


def describe(selection: dict) -> list[str]:
    """The recommendation in plain sentences, for the terminal and the report."""
    where = (f"{selection['by']} at "
             f"{shape_label(selection['batch_size'], selection['seq_len'], selection.get('metric', 'call'))}")
    if selection["recommended"] is None:
        lines = [f"No variant is within the budget ({budget(selection)})."]
    else:
        best = next(e for e in selection["within"] if e["variant"] == selection["recommended"])
        tied = selection.get("tied") or []
        if not tied:
            lines = [f"Recommended: {best['variant']}, the fastest by {where} ({best[selection['by']]:.4g} ms) "
                     f"with {budget(selection)} (its {quality(best)})."]
        else:
            lines = [f"Recommended: {best['variant']} ({best[selection['by']]:.4g} ms by {where}, its "
                     f"{quality(best)}), tied with {', '.join(tied)}: all within {budget(selection)}, and none "
                     f"slower than the fastest, {selection['fastest']}, by the 95 % interval of the ratio; among "
                     "tied variants the smallest, then the one with fewer compression steps, is recommended."]
    if selection.get("busy"):
        lines[-1] += (f" It rests on figures timed while the machine was busy ({', '.join(selection['busy'])} at "
                      f"{where}), which are not comparable: run it again on a quiet machine.")
    if selection["broke"]:
        lines.append("Over the budget: " + ", ".join(f"{b['variant']} ({quality(b)})" for b in selection["broke"]) + ".")
    if selection["not_judged"]:
        lines.append("Not judged: " + ", ".join(f"{n['variant']} ({n['reason']})" for n in selection["not_judged"]) + ".")
    return lines
