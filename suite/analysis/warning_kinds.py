"""A run's warnings grouped by kind, each kind with a severity, one line per kind naming the
variants and shapes it concerns: what the terminal, the report and summary.md show instead of a
list per variant (a run of 13 variants used to open with 13 folded lists of 2-7 warnings each).

Severities:
- serious: a figure may be wrong or not this machine's (the machine was busy, a process failed,
  outputs disagree with the reference beyond the tolerance);
- caution: a figure is less certain than its interval says (sampling cut short, intervals within
  one process, rounds in one process);
- info: what a figure does not claim, or a spread its interval already holds (a percentile
  without its bound, looped calls, unstable samples: the median's interval across processes
  covers their spread; the tail percentiles move with it).

The kinds are recognized by the warnings' own words (the messages are made in suite.measure,
suite.tasks, suite.build.search, suite.run); a warning no kind knows is its own kind, "other",
caution. tests/test_warning_kinds.py makes each message through the code that writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from suite.results import SHAPE_PREFIX as SHAPE

SEVERITIES = ("serious", "caution", "info")


@dataclass(frozen=True)
class Kind:
    name: str
    severity: str
    pattern: str  # a regular expression searched in the warning (after its shape label)


KINDS = (
    Kind("a busy process left out", "info", r"left out: the machine was busy"),
    Kind("the machine was busy", "serious", r"the machine was busy"),
    Kind("a process of the variant failed", "serious", r"^process \d+ failed"),
    Kind("outputs disagree with the reference", "serious",
         r"(agreement|cosine similarity).* with .* is below|perplexity .* above .*'s"),
    Kind("agreement not measured", "caution", r"^agreement not measured"),
    Kind("unstable samples", "info", r"^unstable"),
    Kind("sampling cut short by max_time_s", "caution", r"max_time_s reached"),
    Kind("rounds in one process", "caution", r"^--in-process: its later rounds"),
    Kind("intervals within one process", "caution", r"^intervals within one process"),
    Kind("the search's choice", "caution", r"^search: "),
    Kind("the process ended badly after saving", "caution", r"^process exited with status"),
    Kind("too few samples for a percentile's bound", "info", r"too few for a \d+%-confidence claim"),
    Kind("calls looped to be timed", "info", r"calls shorter than the timer allows"),
    Kind("shapes not timed", "info", r"not timed"),
    Kind("figures above the probe of the machine's limit", "info", r"the probe is a lower bound"),
    Kind("server mode's p99 without its bound", "info", r"^server mode: "),
    Kind("figures not finite", "caution", r"not finite|non-finite"),
)
OTHER = Kind("other", "caution", "")


def kind_of(warning: str) -> tuple[Kind, str | None]:
    """The warning's kind, and the shape it concerns (None: the variant as a whole)."""
    match = SHAPE.match(warning)
    shape = match.group("shape") if match else None
    text = warning[match.end():] if match else re.sub(r"^process \d+: ", "", warning)
    found = next((k for k in KINDS if re.search(k.pattern, text) or re.search(k.pattern, warning)), OTHER)
    return found, shape


def grouped(variants: tuple) -> list[dict]:
    """[{"kind", "severity", "variants": {name: [shapes]}, "warnings": ["NAME: warning", ...]}], the
    most severe kind first, then the most frequent; a kind's variants and warnings in the run's order."""
    groups: dict[str, dict] = {}
    for v in variants:
        for warning in v.warnings:
            kind, shape = kind_of(warning)
            group = groups.setdefault(kind.name, {"kind": kind.name, "severity": kind.severity, "variants": {},
                                                  "warnings": []})
            shapes = group["variants"].setdefault(v.name, [])
            if shape and shape not in shapes:
                shapes.append(shape)
            group["warnings"].append(f"{v.name}: {warning}")
    return sorted(groups.values(), key=lambda g: (SEVERITIES.index(g["severity"]), -len(g["warnings"])))


def line(group: dict) -> str:
    """'[serious] the machine was busy: v1 (b=1, b=32), v2'."""
    named = ", ".join(f"{name} ({', '.join(shapes)})" if shapes else name for name, shapes in group["variants"].items())
    return f"[{group['severity']}] {group['kind']}: {named}"


def lines(variants: tuple, least: str = "caution") -> tuple[list[str], int]:
    """One line per kind at least as severe as `least`, and how many warnings of lesser kinds
    there are besides."""
    shown, hidden = [], 0
    for group in grouped(variants):
        if SEVERITIES.index(group["severity"]) <= SEVERITIES.index(least):
            shown.append(line(group))
        else:
            hidden += len(group["warnings"])
    return shown, hidden
