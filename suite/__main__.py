"""Command line: `python -m suite run|validate|report|explain|compare|gate|baseline|list ...` (also installed as `suite`).

Exit status: 0 success; 1 a variant crashed (a bug or a backend failure, traceback shown);
2 bad input (a one-line `error: ...`, or a variant failed on bad input such as a checkpoint
that does not fit its model). `suite gate`: 1 a significant slowdown above the threshold.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any

from suite.errors import RunInterrupted, SuiteError, one_line

EXIT_OK, EXIT_CRASH, EXIT_USER = 0, 1, 2
EXIT_REGRESSION = 1  # suite gate: a significant slowdown above the threshold


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SuiteError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER
    except BrokenPipeError:  # the reader went away (`suite list | head`): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except RunInterrupted as exc:
        print(f"interrupted: {exc.finished} of {exc.total} variants finished and saved in {exc.run_dir}; "
              f"finish the run with: python -m suite run --resume {exc.run_dir}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk while writing a report or a comparison (a run says more: runner)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left on the device (writing {exc.filename or 'a file'})", file=sys.stderr)
        return EXIT_USER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suite", description="Benchmark and compress neural networks.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="measure every variant of one or more scenarios")
    run.add_argument("scenarios", nargs="*", type=Path, metavar="SCENARIO")
    run.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                     help="finish an interrupted run in its folder, with its scenario and options; "
                          "variants already saved there (measured, failed or skipped) are kept")
    run.add_argument("--out", type=Path, default=Path("reports"),
                     help="folder under which run folders are made: OUT/<scenario>/<UTC time>/ (default: reports)")
    run.add_argument("--quick", action="store_true", help="brief training and few samples: a smoke test")
    run.add_argument("--only", nargs="+", action="extend", default=[], metavar="VARIANT", help="run only these variants")
    run.add_argument("--backend", default=None, metavar="NAME",
                     help="run every variant on this backend (its default settings) instead of its own; "
                          "variants whose compression it cannot run are skipped with the reason")
    run.add_argument("--in-process", action="store_true",
                     help="run every variant in this process (for a debugger or profiler); no time-out "
                          "or memory limit, and a crash ends the run")
    run.add_argument("--launcher", default=None, metavar="NAME",
                     help="where variants run: subprocess (each in its own process, the default unless the "
                          "scenario's isolation says otherwise), in_process (as --in-process), or ray (each "
                          "variant a task owning a whole node of a Ray cluster)")
    run.add_argument("--address", default=None, metavar="ADDR",
                     help="--launcher ray: the cluster (HOST:PORT); default: RAY_ADDRESS, else a cluster "
                          "started on this machine with `ray start`, else a new local one")
    run.add_argument("--on-each-node", nargs="?", const="", default=None, metavar="KEY=VALUE[,...]",
                     help="--launcher ray: measure every variant on every node of the cluster (or on the nodes "
                          "with these Ray labels), one run folder per node, and write a page comparing them")
    run.add_argument("--cache-dir", type=Path, default=None,
                     help="where trained checkpoints are cached (default: the user cache folder)")
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    validate.set_defaults(handler=cmd_validate)

    report = commands.add_parser("report", help="a run's report again, or one page comparing many runs")
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR_OR_RESULTS",
                        help="run folders or results.json files")
    report.add_argument("-o", "--output", type=Path, default=None, metavar="PATH.html",
                        help="where to write the page (default: one run: its index.html; many: "
                             "reports/comparison.html)")
    report.add_argument("--reference", type=int, default=1, metavar="N",
                        help="the run the others are compared to, by its place in the list (default: 1)")
    report.set_defaults(handler=cmd_report)

    explain = commands.add_parser("explain", help="where a variant's time goes, and why it is not faster")
    explain.add_argument("run", type=Path, metavar="RUN_DIR_OR_RESULTS")
    explain.add_argument("variant", metavar="VARIANT")
    explain.add_argument("--against", default=None, metavar="OTHER",
                         help="the variant to compare with (default: the one it was compared with in the run)")
    explain.set_defaults(handler=cmd_explain)

    add_compare_commands(commands)

    listing = commands.add_parser("list", help="models, compression methods, backends and datasets")
    listing.set_defaults(handler=cmd_list)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from suite.analysis.select import describe as describe_selection
    from suite.config import scenario as scenarios
    from suite.phases import overhead_line
    from suite.progress import Bars, console
    from suite.report.terminal import summary_table
    from suite.run import fleet
    from suite.run.quiet import quiet_known_noise
    from suite.run.runner import RunOptions, resume, run

    quiet_known_noise()
    if bool(args.scenarios) == bool(args.resume):
        raise SuiteError("run: name scenario files or --resume RUN_DIR (one of the two, not both)")
    if args.on_each_node is not None and args.resume:
        raise SuiteError("run: --on-each-node starts a fleet run; --resume FLEET_DIR finishes one without it")
    labels = None if args.on_each_node is None else fleet.parse_labels(args.on_each_node)
    loaded = [scenarios.load(path) for path in args.scenarios]  # all checked before any runs
    for option, folder in (("--out", args.out), ("--cache-dir", args.cache_dir)):
        usable_folder(option, folder)
    options = RunOptions(out_dir=args.out, quick=args.quick, only=tuple(args.only), cache_dir=args.cache_dir,
                         backend=args.backend, in_process=args.in_process, launcher=args.launcher,
                         address=args.address)
    signal.signal(signal.SIGTERM, interrupt)  # `kill` leaves a resumable run, as Ctrl-C does
    # Ctrl-C too where it came in ignored (a shell starts background jobs so): `kill -INT` interrupts.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    status, out = EXIT_OK, console()
    for scenario in loaded or [None]:
        with Bars() as bars:
            if labels is not None or (scenario is None and fleet.is_fleet(args.resume)):
                runs, page = (fleet.measured(args.resume, bars) if scenario is None
                              else fleet.run_fleet(scenario, options, labels, bars))
            else:
                runs, page = [resume(args.resume, bars) if scenario is None else run(scenario, options, bars)], None
        for result, run_dir in runs:
            out.print(summary_table(result, f" on {run_dir.name}" if page else ""))
            if overhead_line(result.variants):
                out.print(overhead_line(result.variants), markup=False, highlight=False, soft_wrap=True)
            for line in describe_selection(result.selection) if result.selection else ():
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            for line in warning_lines(result):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            out.print(f"report: {run_dir / 'index.html'}", highlight=False, soft_wrap=True, markup=False)
            status = max(status, run_status(result))
        if page:
            out.print(f"nodes compared: {page}", highlight=False, soft_wrap=True, markup=False)
    return status


def warning_lines(result: Any) -> list[str]:
    """The run's warnings, one line per kind (suite.analysis.warning_kinds); the lesser ones counted."""
    from suite.analysis.warning_kinds import lines

    shown, hidden = lines(result.variants)
    if hidden:
        shown.append(f"{hidden} note(s) of lesser kinds (a percentile without its bound, looped calls, ...): "
                     "in the report's warnings")
    return ["warnings:", *(f"  {line}" for line in shown)] if shown else []


def usable_folder(option: str, folder: Path | None) -> None:
    """Make `folder` (a missing one and its parents) or say in one line why it cannot be used."""
    if folder is None:
        return
    if folder.exists() and not folder.is_dir():
        raise SuiteError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SuiteError(f"{option} {folder}: cannot use it as a folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SuiteError(f"{option} {folder}: the folder is not writable")


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_status(result) -> int:
    failed = [v for v in result.variants if v.status == "failed"]
    if any(v.error_type != "SuiteError" for v in failed):
        return EXIT_CRASH
    return EXIT_USER if failed else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from suite.config import scenario as scenarios

    status = EXIT_OK
    for path in args.scenarios:
        try:
            loaded = scenarios.load(path)
            print(f"ok: {path} ({len(loaded.variants)} variants)")
        except SuiteError as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            status = EXIT_USER
    return status


def add_compare_commands(commands: Any) -> None:
    compare = commands.add_parser("compare", help="per variant and input shape: candidate against base latency")
    compare.add_argument("base", type=Path, metavar="BASE", help="run folder or results.json")
    compare.add_argument("candidate", type=Path, metavar="CANDIDATE", help="run folder or results.json")
    add_gate_options(compare)
    compare.set_defaults(handler=cmd_compare)

    gate = commands.add_parser("gate", help="exit 1 on a significant latency regression above a threshold")
    gate.add_argument("--baseline", default=None, metavar="RUN_OR_NAME",
                      help="a run folder, results.json or a baseline saved with `suite baseline save`")
    gate.add_argument("--paired", nargs=2, type=Path, default=None, metavar=("BASE_SCENARIO", "CANDIDATE_SCENARIO"),
                      help="run both scenarios here, interleaved in rounds, and test the paired differences "
                           "(the stronger option on a shared or noisy machine)")
    gate.add_argument("candidate", nargs="?", type=Path, metavar="CANDIDATE", help="run folder or results.json")
    gate.add_argument("--max-slowdown", default="10%", help="fail above this slowdown (default: 10%%)")
    gate.add_argument("--rounds", type=int, default=15, help="--paired: rounds of A B (default: 15)")
    gate.add_argument("--quick", action="store_true", help="--paired: brief training (as `suite run --quick`)")
    add_gate_options(gate)
    gate.set_defaults(handler=cmd_gate)

    baseline = commands.add_parser("baseline", help="keep a run's results as a named baseline")
    actions = baseline.add_subparsers(dest="action", required=True)
    save = actions.add_parser("save", help="copy RUN's results.json to baselines/NAME/")
    save.add_argument("run", type=Path, metavar="RUN")
    save.add_argument("--name", required=True)
    save.add_argument("--dir", type=Path, default=Path("baselines"), help="where baselines live (default: baselines)")
    save.set_defaults(handler=cmd_baseline_save)


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--percentile", type=int, choices=(50, 99), default=50, help="compare p50 (default) or p99")
    parser.add_argument("--allow-env-mismatch", action="store_true",
                        help="compare runs whose CPU, GPU, core count, torch or backend versions differ")
    parser.add_argument("--out", type=Path, default=Path("reports") / "compare",
                        help="where the JSON and Markdown go (default: reports/compare)")


def cmd_compare(args: argparse.Namespace) -> int:
    from suite.analysis.compare import check_same_machine, compare_runs
    from suite.results import load_json

    base, candidate = load_json(args.base), load_json(args.candidate)
    differences = check_same_machine(base, candidate, args.allow_env_mismatch)
    rows = compare_runs(base, candidate, args.percentile)
    report_rows(rows, args, "compare", f"p{args.percentile}: {args.candidate} against {args.base}", differences)
    return EXIT_OK


def cmd_gate(args: argparse.Namespace) -> int:
    from suite.analysis.gate import parse_slowdown, regressions

    max_slowdown = parse_slowdown(args.max_slowdown)
    if (args.paired is None) == (args.baseline is None) or (args.paired is None) == (args.candidate is None):
        raise SuiteError("gate: give --baseline BASE CANDIDATE, or --paired BASE_SCENARIO CANDIDATE_SCENARIO")
    rows, differences, title = paired_gate(args) if args.paired else stored_gate(args)
    failed = regressions(rows, max_slowdown)
    report_rows(rows, args, "gate", title, differences)
    for row in failed:
        print(f"regression: {row.variant} {row.shape}: {row.comparison.ratio:.3f}x the baseline "
              f"(more than {1 + max_slowdown:.3f}x, p = {row.comparison.p_slower:.2g})")
    print(f"gate: {'FAILED' if failed else 'passed'}: {len(failed)} of {len(rows)} comparisons slower by more "
          f"than {max_slowdown:.0%} with significance")
    return EXIT_REGRESSION if failed else EXIT_OK


def stored_gate(args: argparse.Namespace) -> tuple[list, list[str], str]:
    from suite.analysis.compare import check_same_machine, compare_runs
    from suite.analysis.gate import baseline_path
    from suite.results import load_json

    base_path = baseline_path(args.baseline)
    base, candidate = load_json(base_path), load_json(args.candidate)
    differences = check_same_machine(base, candidate, args.allow_env_mismatch)
    return (compare_runs(base, candidate, args.percentile), differences,
            f"gate, p{args.percentile}: {args.candidate} against stored baseline {base_path}")


def paired_gate(args: argparse.Namespace) -> tuple[list, list[str], str]:
    from suite.analysis.gate import PairedPlan, paired_rows
    from suite.config import scenario as scenarios
    from suite.progress import Bars
    from suite.run.runner import RunOptions

    if args.percentile != 50:
        raise SuiteError("gate --paired compares medians (p50); --percentile 99 is for stored baselines")
    if args.rounds < 7:  # with 6, Wilcoxon's smallest one-sided p is 1/64: never below 0.01
        raise SuiteError(f"--rounds: {args.rounds} is too few for a one-sided test at p < 0.01 (7 at least)")
    from suite.run.quiet import quiet_known_noise

    quiet_known_noise()  # both sides are built in this process
    base, candidate = (scenarios.load(path) for path in args.paired)
    with Bars() as bars:
        rows = paired_rows(base, candidate, RunOptions(quick=args.quick, in_process=True), PairedPlan(args.rounds), bars)
    return rows, [], f"gate, paired: {args.paired[1]} against {args.paired[0]}"


def report_rows(rows: list, args: argparse.Namespace, stem: str, title: str, differences: list[str]) -> None:
    from suite.progress import console
    from suite.report.markdown import write_outputs
    from suite.report.terminal import comparison_table

    if not rows:  # a gate that compared nothing must not pass
        raise SuiteError(f"{title}: no variant at an input shape measured on both sides")
    usable_folder("--out", args.out)
    for difference in differences:
        print(f"warning: environments differ: {difference}", file=sys.stderr)
    for busy in filter(None, (row.busy_warning() for row in rows)):
        print(f"warning: {busy}", file=sys.stderr)
    console().print(comparison_table(rows, title))
    for path in write_outputs(rows, args.out, stem, {"title": title, "env_differences": differences}, title):
        print(f"{stem}: {path}")


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from suite.analysis.gate import save_baseline

    usable_folder("--dir", args.dir)
    print(f"baseline: {save_baseline(args.run, args.name, args.dir)}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from suite.report import write_run_reports
    from suite.report.comparison import write_comparison
    from suite.results import load_json

    if args.output is not None:
        usable_folder("-o", args.output.parent)
    if len(args.runs) == 1:
        folder = args.runs[0] if args.runs[0].is_dir() else args.runs[0].parent
        written = write_run_reports(load_json(args.runs[0]), folder, args.output)
    else:
        written = args.output or Path("reports") / "comparison.html"
        write_comparison(args.runs, written, args.reference - 1)
    print(f"report: {written}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from suite.analysis.explain import explain
    from suite.results import load_json

    for line in explain(load_json(args.run), args.variant, args.against):
        print(line)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from suite.registry import BACKENDS, DATASETS, METHODS, MODELS

    for title, registry in (("models", MODELS), ("datasets", DATASETS)):
        print(f"{title}:")
        for name in registry.names():
            print(f"  {name:<22} {registry.get(name).description}")
        if not registry.names():
            print("  (none registered yet)")
    print("compression methods (availability on CPU):")
    for name in METHODS.names():
        method = METHODS.get(name)
        reason = method.unavailable("cpu")
        print(f"  {name:<22} {'available' if reason is None else f'unavailable: {reason}'}  ({method.description})")
    print("backends:")
    from pydantic import ValidationError

    from suite.config.params import first_error

    for name in BACKENDS.names():
        backend_cls = BACKENDS.get(name)
        try:
            reason = backend_cls(backend_cls.Params()).available()
            state = "available" if reason is None else f"unavailable: {reason}"
        except ValidationError as exc:  # a backend with settings it cannot do without (a server's url)
            loc, message = first_error(exc)
            state = f"needs settings: {'.'.join(map(str, loc))}: {message}" if loc else f"needs settings: {message}"
        print(f"  {name:<22} {state}  ({backend_cls.description})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
