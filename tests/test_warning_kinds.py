"""Warnings grouped by kind with a severity (suite.analysis.warning_kinds): each message made by
the code that writes it is recognized, and a run's warnings read as one line per kind."""

import numpy as np
import pytest

from suite.analysis.warning_kinds import OTHER, grouped, kind_of, lines
from suite.config.scenario import Fidelity
from suite.measure import neighbours, stats, timing
from suite.measure.measuring import latency_result, load_warnings
from suite.results import VariantResult
from suite.run.launchers import InProcess
from suite.tasks.classify import fidelity_warnings
from suite.tasks.generate import above_the_limit
from suite.tasks.generate import fidelity_warnings as decoder_warnings

BUSY = {"window_s": 2.0, "other_cpu_s": 1.0, "other_share_of_core": 0.5, "load_avg_1m": 1.5, "cores": 2}


def made_messages() -> dict[str, tuple[str, str]]:
    """{message: (expected kind, expected severity)}, each made by the code that writes it."""
    few = stats.sample_warnings(stats.summarize(np.full(100, 1.0)))[0]
    unstable = stats.sample_warnings(stats.summarize(np.concatenate([np.full(700, 1.0), np.full(300, 2.0)])))[0]
    _, cut = latency_result(1, None, timing.Timing((1e-3,) * 5, 1, 1, 0.0, "max_time_s"))
    _, looped = latency_result(8, None, timing.Timing((1e-6,) * 700, 50, 1, 0.0, "enough"))
    agreement = fidelity_warnings({"top1": 0.5, "cosine_min": 0.1}, "fp32", Fidelity())
    decoder = decoder_warnings({"greedy_agreement": 0.1, "first_divergence_mean": 2.0, "perplexity_increase": 0.5},
                               "fp32", 30.0, 20.0, Fidelity())
    limit = above_the_limit([{"metric": "tpot", "batch_size": 1, "prompt_len": 8, "share": 1.5}], {})
    server = load_warnings({"trials": [{"p99_bound_ms": None}]})
    return {
        neighbours.warning("b=1", BUSY): ("the machine was busy", "serious"),
        "process 3 failed: Crash: it died": ("a process of the variant failed", "serious"),
        **{w: ("outputs disagree with the reference", "serious") for w in agreement + decoder},
        f"b=32: {few}": ("too few samples for a percentile's bound", "info"),
        f"b=1: {unstable}": ("unstable samples", "info"),
        **{w: ("sampling cut short by max_time_s", "caution") for w in cut if "max_time_s" in w},
        **{w: ("calls looped to be timed", "info") for w in looped if "timer" in w},
        limit[0]: ("figures above the probe of the machine's limit", "info"),
        server[0]: ("server mode's p99 without its bound", "info"),
        InProcess.SAME_PROCESS: ("rounds in one process", "caution"),
        "search: no trial met the goal (max_accuracy_drop 0.01) before max_trials ran out": ("the search's choice",
                                                                                               "caution"),
    }


def test_every_message_the_suite_writes_has_its_kind_and_severity():
    made = made_messages()
    assert len(made) >= 12
    for message, (kind, severity) in made.items():
        found, _ = kind_of(message)
        assert (found.name, found.severity) == (kind, severity), message


@pytest.mark.parametrize(("message", "shape"), [
    ("b=1: the machine was busy: ...", "b=1"), ("process 2: b=8 s=128: unstable: ...", "b=8 s=128"),
    ("process 4: tpot b=1 p=64: only 10 samples: too few for a 99%-confidence claim", "tpot b=1 p=64"),
    ("top-1 agreement with 'fp32' 0.5 is below fidelity.min_agreement 0.99", None),
])
def test_the_shape_a_warning_concerns_is_read_from_its_label(message, shape):
    assert kind_of(message)[1] == shape


def test_a_message_no_kind_knows_is_other_and_shown():
    assert kind_of("something nobody expected") == (OTHER, None)


def test_a_run_reads_as_one_line_per_kind_most_severe_first():
    busy = neighbours.warning("b=1", BUSY)
    few = "b=32: " + stats.sample_warnings(stats.summarize(np.full(100, 1.0)))[0]
    variants = (VariantResult(name="a", model="m", backend="eager", warnings=(few, busy, "process 2: " + busy)),
                VariantResult(name="b", model="m", backend="eager", warnings=(few,)),
                VariantResult(name="c", model="m", backend="eager", warnings=("process 2 failed: Crash: gone",)))
    groups = grouped(variants)
    assert [g["severity"] for g in groups] == ["serious", "serious", "info"]
    assert groups[0]["kind"] == "the machine was busy" and groups[0]["variants"] == {"a": ["b=1"]}
    shown, hidden = lines(variants)
    assert shown == ["[serious] the machine was busy: a (b=1)", "[serious] a process of the variant failed: c"]
    assert hidden == 2
    assert lines(variants, least="info")[0][-1] == "[info] too few samples for a percentile's bound: a (b=32), b (b=32)"
