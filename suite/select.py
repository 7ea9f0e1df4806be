"""Accuracy-aware choice: the fastest variant whose accuracy drop stays within the budget.

A variant's drop is measured against its agreement reference (the fp32 variant of the same
model and data), so variants of different models are each judged against their own baseline.
"""

from __future__ import annotations

from typing import Any

from suite.results import VariantResult, shape_label


def recommend(select: Any, variants: tuple[VariantResult, ...]) -> dict:
    by_name = {v.name: v for v in variants}
    within, broke, not_judged = [], [], []
    for v in variants:
        drop, reason = accuracy_drop(v, by_name.get(v.agreement_with or ""))
        row = latency_row(v, select.batch_size, select.seq_len)
        if reason or row is None:
            not_judged.append({"variant": v.name, "reason": reason or f"not timed at {shape_label(select.batch_size, select.seq_len)}"})
        elif drop > select.max_accuracy_drop + 1e-12:
            broke.append({"variant": v.name, "accuracy_drop": round(drop, 6)})
        else:
            within.append({"variant": v.name, "accuracy_drop": round(drop, 6), select.by: getattr(row, select.by)})
    within.sort(key=lambda entry: entry[select.by])
    return {**select.model_dump(mode="json"), "recommended": within[0]["variant"] if within else None,
            "within": within, "broke": broke, "not_judged": not_judged}


def accuracy_drop(v: VariantResult, reference: VariantResult | None) -> tuple[float | None, str | None]:
    if v.status != "ok":
        return None, v.status
    if v.accuracy is None:
        return None, f"no accuracy ({v.accuracy_reason})"
    if reference is None or reference.accuracy is None:
        return None, f"reference variant {v.agreement_with!r} has no accuracy"
    return reference.accuracy - v.accuracy, None


def latency_row(v: VariantResult, batch_size: int, seq_len: int | None) -> Any:
    rows = [r for r in v.latency if r.batch_size == batch_size and (seq_len is None or r.seq_len == seq_len)]
    return rows[0] if rows else None


def describe(selection: dict) -> list[str]:
    """The recommendation in plain sentences, for the terminal and the report."""
    budget = f"an accuracy drop of at most {selection['max_accuracy_drop'] * 100:.3g} points"
    where = f"{selection['by']} at {shape_label(selection['batch_size'], selection['seq_len'])}"
    if selection["recommended"] is None:
        lines = [f"No variant is within the budget ({budget})."]
    else:
        best = selection["within"][0]
        lines = [f"Recommended: {best['variant']}, the fastest by {where} ({best[selection['by']]:.4g} ms) "
                 f"with {budget} (its drop: {best['accuracy_drop'] * 100:.2f} points)."]
    if selection["broke"]:
        lines.append("Over the budget: " + ", ".join(f"{b['variant']} (drop {b['accuracy_drop'] * 100:.2f} points)"
                                                     for b in selection["broke"]) + ".")
    if selection["not_judged"]:
        lines.append("Not judged: " + ", ".join(f"{n['variant']} ({n['reason']})" for n in selection["not_judged"]) + ".")
    return lines
