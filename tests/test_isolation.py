"""Each variant in its own process: crashes, hangs and runaway memory fail one variant, not the
run; a run killed half-way is finished by --resume without measuring anything twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from suite.__main__ import main

# Models that misbehave when called, from a factory module the test writes (the child process
# imports it through the sys.path the run folder records).
MISBEHAVING = '''
import os, time, torch

class Net(torch.nn.Module):
    def __init__(self, action="none", seconds=0.0):
        super().__init__()
        self.action, self.seconds, self.hoard = action, seconds, []
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x):
        if self.action == "abort":
            os.abort()
        if self.action == "hoard":  # 256 MiB more on every call, written so that it is resident
            self.hoard.append(torch.ones(2**26))
        time.sleep(self.seconds)
        return self.linear(x.flatten(1))

def make(action="none", seconds=0.0):
    torch.manual_seed(0)
    return Net(action, seconds)
'''


def variant(name: str, action: str = "none", seconds: float = 0.0) -> str:
    return (f"  - name: {name}\n    model: {{name: factory, factory: 'misbehaving:make', "
            f"kwargs: {{action: {action}, seconds: {seconds}}}}}\n")


def scenario(tmp_path: Path, variants: str, isolation: str = "{}") -> Path:
    (tmp_path / "misbehaving.py").write_text(MISBEHAVING)
    path = tmp_path / "scenario.yaml"
    path.write_text(f"dataset: digits\nmeasure: {{batch_sizes: [1]}}\nisolation: {isolation}\nvariants:\n{variants}")
    return path


def test_a_crash_a_hang_and_a_memory_hog_each_fail_alone(tmp_path, run_quick, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    path = scenario(tmp_path, variant("before") + variant("aborts", "abort") + variant("hangs", "sleep", 3600)
                    + variant("hoards", "hoard", 0.3) + variant("after"),
                    isolation="{timeout_s: 30, max_memory_mb: 1200}")
    status, _, err, results = run_quick(path)
    by_name = {v["name"]: v for v in results["variants"]}
    assert status == 1, err  # crashes are not the user's bad input
    assert by_name["before"]["status"] == by_name["after"]["status"] == "ok"
    assert by_name["after"]["agreement"] == 1.0  # the reference's outputs came through the run folder
    aborted, hung, hog = by_name["aborts"], by_name["hangs"], by_name["hoards"]
    assert (aborted["status"], aborted["error_type"]) == ("failed", "Crash")
    assert aborted["error"] == "the variant's process was killed by SIGABRT (Fatal Python error: Aborted)"
    assert (hung["error_type"], hung["error"]) == ("Timeout", "timed out after 30 s (isolation.timeout_s)")
    assert hog["error_type"] == "MemoryLimit" and "over isolation.max_memory_mb 1200" in hog["error"]
    assert 30 <= hung["seconds"] < 40
    assert "Fatal Python error: Aborted" in aborted["stderr_tail"]  # with the Python stack that called abort
    assert "misbehaving.py" in aborted["stderr_tail"]
    [log] = (tmp_path / "reports").glob("*/*/logs/aborts-*.log")
    assert log.read_text().endswith(aborted["stderr_tail"] + "\n")


def test_a_run_killed_half_way_is_resumed_without_measuring_twice(tmp_path, cache_dir):
    path = scenario(tmp_path, variant("first") + variant("slow", "sleep", 0.02) + variant("third"))
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "suite", "run", str(path), "--quick", "--out", str(out), "--cache-dir", str(cache_dir)]
    parent = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = wait_for(lambda: next(out.glob("*/*/variants/first-*.json"), None))
    parent.kill()  # SIGKILL: no chance to tidy up; the child measuring "slow" dies with it
    parent.wait()
    run_dir = first.parent.parent
    saved = first.read_bytes()
    assert not list(run_dir.glob("variants/third-*.json"))
    status = main(["run", "--resume", str(run_dir)])
    results = json.loads((run_dir / "results.json").read_text())
    assert status == 0
    assert [v["name"] for v in results["variants"]] == ["first", "slow", "third"]
    assert all(v["status"] == "ok" for v in results["variants"])
    assert first.read_bytes() == saved  # kept as it was, not measured again
    assert results["quick"] is True  # the options the run was started with


def test_ctrl_c_leaves_a_run_that_says_how_to_resume(tmp_path, cache_dir):
    # 2 s a call: "slow" needs minutes, so it is surely under way when the signal comes (with
    # 0.5 s a call, a loaded machine once noticed "first" only after "slow" had finished).
    path = scenario(tmp_path, variant("first") + variant("slow", "sleep", 2.0))
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "suite", "run", str(path), "--quick", "--out", str(out), "--cache-dir", str(cache_dir)]
    # As from a terminal: SIGINT handled. A shell ignores it in background jobs and children
    # inherit that (seen: this test run under `bash .ci/run &` got SigIgn with SIGINT set).
    parent = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = wait_for(lambda: next(out.glob("*/*/variants/first-*.json"), None))
    wait_for(lambda: next(out.glob("*/*/logs/slow-*.log"), None))  # its process is running
    time.sleep(0.5)
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=60)
    run_dir = first.parent.parent
    assert parent.returncode == 130
    assert f"1 of 2 variants finished and saved in {run_dir}" in err
    assert f"python -m suite run --resume {run_dir}" in err
    assert [v["name"] for v in json.loads((run_dir / "results.json").read_text())["variants"]] == ["first"]


def test_resume_of_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: not a run folder (no run.json)"
    assert main(["run"]) == 2


def wait_for(find, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_child_processes_do_not_outlive_a_killed_run():
    # die_with_parent: a child of a process that is killed gets SIGKILL from the kernel
    # The parent is killed only once the child says it has asked for that signal: on a loaded
    # machine its imports took longer than a fixed wait, and a child killed before asking lives on.
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'from suite.run.isolation import die_with_parent; "
            "die_with_parent(); print(\"armed\", flush=True); import time; time.sleep(60)'], stdout=subprocess.PIPE)\n"
            "child.stdout.readline()\n"
            "print(child.pid, flush=True); time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    wait_for(lambda: not alive(pid), timeout_s=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    return status != "Z"
