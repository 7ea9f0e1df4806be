"""The run folder: what a run writes as it goes, so that nothing measured is lost and an
interrupted run can be finished (`suite run --resume RUN_DIR`).

    run.json            how the run was started: the scenario file, the options, when
    scenario.yaml       the scenario's text as it was when the run started
    variants/<key>.json each finished variant, written (atomically) the moment it finishes
    outputs/<key>.npy   each variant's test-set outputs, for the agreement of later variants
    outputs/<key>.logits.npz  a decoder reference's summary of its next-token distributions (suite.lm),
                        for the KL divergence of later variants
    logs/<key>.log      what each variant's process wrote on stderr
    built/<key>.pt      a variant as its first process built it, for its later processes (removed
                        when the run is done)
    rounds/<key>-<n>.json  the shapes timed again by a variant's n-th process (n >= 2)
    limits.json         the machine's measured limits (read bandwidth, matmul rate), once per run
    results.json                            the whole run, rewritten after every variant
    results.csv, index.html, summary.md     written when the last variant is done
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import SuiteError, first_line
from suite.results import (
    SCHEMA_VERSION,
    VariantResult,
    atomic_write_bytes,
    atomic_write_text,
    checked,
    discard,
    read_json,
    variant_dict,
    variant_from_dict,
)


@dataclass(frozen=True)
class RunStart:
    """How a run was started, kept in run.json so that --resume can go on the same way."""

    scenario_file: str  # absolute: relative paths in the scenario resolve against its folder
    options: dict
    created: str
    sys_path: tuple[str, ...] = ()  # where the user's own modules (model factories) were found


LOGITS = ".logits.npz"


def slug(text: str, default: str, limit: int | None = None) -> str:
    """`text` as a safe file name: runs of other characters than letters, digits, '.', '-' and '_'
    as one '-', cut to `limit`; `default` when nothing is left."""
    return re.sub(r"[^\w.-]+", "-", text).strip("-.")[:limit] or default


def key(variant_name: str) -> str:
    """A file name for a variant: readable, and unique even for names with odd characters."""
    return f"{slug(variant_name, 'variant', 40)}-{hashlib.sha1(variant_name.encode()).hexdigest()[:8]}"


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, scenario_file: Path, options: dict, sys_path: list[str]) -> RunStart:
        started = RunStart(scenario_file=str(Path(scenario_file).resolve()), options=options,
                           created=datetime.now(UTC).isoformat(timespec="seconds"),
                           sys_path=tuple(sys_path))
        atomic_write_text(self.path / "scenario.yaml", Path(scenario_file).read_text(encoding="utf-8"))
        atomic_write_text(self.path / "run.json", json.dumps(asdict(started), indent=1) + "\n")
        return started

    def started(self) -> RunStart:
        file = self.path / "run.json"
        if not self.path.is_dir() or not file.exists():
            raise SuiteError(f"{self.path}: not a run folder (no run.json)")
        data = read_json(file)
        if not isinstance(data, dict):
            raise SuiteError(f"{file}: not a run folder's run.json (the JSON is a {type(data).__name__})")
        for kind in ("variants", "outputs", "logs"):
            if (self.path / kind).exists() and not (self.path / kind).is_dir():
                raise SuiteError(f"{self.path / kind}: should be the run folder's {kind} folder, but is a file")
        return checked(RunStart, data, file)

    def save_variant(self, result: VariantResult) -> None:
        self.save_round(result, 1)

    def finished(self, name: str) -> VariantResult | None:
        """The saved result of a variant, or None if it has not finished."""
        file = self._file("variants", name, ".json")
        if not file.exists():
            return None
        data = read_json(file)
        if not isinstance(data, dict):
            raise SuiteError(f"{file}: not a variant's result (the JSON is a {type(data).__name__}); "
                             "delete it to measure that variant again")
        return variant_from_dict(data, file)

    def save_outputs(self, name: str, outputs: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, outputs, allow_pickle=False)
        atomic_write_bytes(self._file("outputs", name, ".npy"), buffer.getvalue())

    def outputs(self, name: str) -> np.ndarray | None:
        file = self._file("outputs", name, ".npy")
        if not file.exists():
            return None
        try:
            return np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SuiteError(f"{file}: damaged outputs file ({first_line(exc, 80)}); delete it and variant "
                             f"{name!r}'s result to measure it again") from None

    def save_logits(self, name: str, summary: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **summary)
        atomic_write_bytes(self._file("outputs", name, LOGITS), buffer.getvalue())

    def logits(self, name: str) -> dict[str, np.ndarray] | None:
        """A decoder reference's saved summary (suite.lm.summarize), or None if it saved none."""
        file = self._file("outputs", name, LOGITS)
        if not file.exists():
            return None
        try:
            with np.load(file, allow_pickle=False) as saved:
                summary = {k: saved[k] for k in ("top_ids", "top_logp", "target_logp")}
        except (ValueError, OSError, EOFError, KeyError) as exc:
            raise SuiteError(f"{file}: damaged logits file ({first_line(exc, 80)}); delete it and variant "
                             f"{name!r}'s result to measure it again") from None
        if summary["top_ids"].ndim != 2 or summary["top_logp"].shape != summary["top_ids"].shape \
                or summary["target_logp"].shape != summary["top_ids"].shape[:1]:
            raise SuiteError(f"{file}: damaged logits file (arrays of shapes {[a.shape for a in summary.values()]}); "
                             f"delete it and variant {name!r}'s result to measure it again")
        return summary

    def search_file(self, name: str) -> Path:
        return self._file("search", name, ".json")

    def save_search_trials(self, name: str, trials: list[dict]) -> None:
        """A searched variant's trials so far (suite.build.search), rewritten after each one (over whatever
        stands at that path: a folder put there is removed)."""
        file = self.search_file(name)
        if file.is_dir() and not file.is_symlink():
            discard(file)
        atomic_write_text(file, json.dumps({"trials": trials}, indent=1) + "\n")

    def search_trials(self, name: str) -> list[dict]:
        """The trials an interrupted search saved; none where there is no such file or it is damaged
        (the trials are then measured again; suite.build.search checks each trial's fields)."""
        file = self.search_file(name)
        try:
            data = read_json(file) if file.exists() else None
        except SuiteError:
            return []
        trials = data.get("trials") if isinstance(data, dict) else None
        return [t for t in trials if isinstance(t, dict) and isinstance(t.get("key"), str)] if isinstance(
            trials, list) else []

    def limits(self, measure: Callable[[], dict]) -> dict:
        """The machine's limits as measured by the run's first variant that needed them (`measure()`
        otherwise, then kept): one figure per run, the same for every variant."""
        file = self.path / "limits.json"
        if file.exists():
            data = read_json(file)
            if isinstance(data, dict) and all(isinstance(data.get(k), (int, float)) and data[k] > 0
                                              for k in ("read_bandwidth_gbps", "matmul_gflops")):
                return data
        data = measure()
        atomic_write_text(file, json.dumps(data, indent=1) + "\n")
        return data

    def save_built(self, name: str, built: dict) -> None:
        """What a variant's later processes build it from (suite.build.building.Builder.build's
        `for_later`: the variant as its search resolved it, and its model as saved after the last
        compression step torch could save)."""
        import torch

        buffer = io.BytesIO()
        torch.save(built, buffer)
        atomic_write_bytes(self._file("built", name, ".pt"), buffer.getvalue())

    def built(self, name: str) -> dict | None:
        """The variant as its first process saved it, or None (not saved, or damaged: it is
        built again)."""
        import torch

        file = self._file("built", name, ".pt")
        if not file.is_file():
            return None
        try:  # the run's own file, written by save_built: not a user's pickle
            kept = torch.load(file, weights_only=False)
        except Exception:  # damaged, or a class that no longer loads: build it again
            return None
        return kept if isinstance(kept, dict) and "variant" in kept else None

    def drop_built(self) -> None:
        """The built models, once no process will time them again (they can be large)."""
        import shutil

        shutil.rmtree(self.path / "built", ignore_errors=True)

    def save_round(self, result: VariantResult, round_: int) -> None:
        """A variant's `round_`-th process's result: the whole variant for the first, the shapes
        timed again for a later one."""
        atomic_write_text(self.round_file(result.name, round_),
                          json.dumps({"schema_version": SCHEMA_VERSION, **variant_dict(result)}, indent=1,
                                     allow_nan=False) + "\n")

    def round_result(self, name: str, round_: int) -> VariantResult | None:
        """A variant's `round_`-th process's result, or None if it has not run (a later process's
        that is damaged too: it runs again; the first's is `finished`)."""
        if round_ == 1:
            return self.finished(name)
        file = self.round_file(name, round_)
        if not file.exists():
            return None
        try:
            data = read_json(file)
            return variant_from_dict(data, file) if isinstance(data, dict) else None
        except SuiteError:
            return None

    def round_file(self, name: str, round_: int) -> Path:
        """variants/<key>.json for the first process, rounds/<key>-<n>.json for the n-th."""
        return self._file("variants", name, ".json") if round_ == 1 else self.path / "rounds" / f"{key(name)}-{round_}.json"

    def log_file(self, name: str) -> Path:
        file = self._file("logs", name, ".log")
        file.parent.mkdir(parents=True, exist_ok=True)
        return file

    def _file(self, kind: str, name: str, suffix: str) -> Path:
        return self.path / kind / (key(name) + suffix)


def options_dict(options: Any) -> dict:  # a suite.run.run_plan.RunOptions (which imports this module)
    """RunOptions as JSON: paths absolute (a resume may start elsewhere), tuples as lists."""
    return {k: (str(v.resolve()) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(options).items()}
