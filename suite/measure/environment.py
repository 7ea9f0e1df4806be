"""The environment fingerprint recorded with every run, so runs can be compared honestly."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Versions worth recording when installed: they change what a benchmark measures.
RELEVANT_PACKAGES = ("suite", "torch", "numpy", "scipy", "scikit-learn", "pandas", "plotly", "pydantic", "psutil",
                     "torchao", "transformers", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "openvino",
                     "tensorrt", "torch-tensorrt", "torch-pruning", "nvidia-ml-py")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


def fingerprint() -> dict[str, Any]:
    import psutil
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_governor": read_text(CPUFREQ / "scaling_governor"),
        "cpu_max_mhz": khz_to_mhz(read_text(CPUFREQ / "cpuinfo_max_freq")),
        "cpu_mhz_now": round(psutil.cpu_freq().current) if psutil.cpu_freq() else None,
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": psutil.virtual_memory().total,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu_details": gpu_details() if torch.cuda.is_available() else None,
        "packages": package_versions(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The instruction-set flags of the first CPU (avx512f, amx_bf16, ...: they decide which
    kernels run)."""
    text = read_text(Path("/proc/cpuinfo")) or ""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return sorted(line.split(":", 1)[1].split())
    return []


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def khz_to_mhz(text: str | None) -> int | None:
    return int(text) // 1000 if text and text.isdigit() else None


def gpu_details() -> dict[str, Any]:
    """Driver and clocks of GPU 0 from NVML, or why they could not be read."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        clocks = {name: pynvml.nvmlDeviceGetClockInfo(handle, kind) for name, kind in
                  (("sm_mhz", pynvml.NVML_CLOCK_SM), ("memory_mhz", pynvml.NVML_CLOCK_MEM))}
        max_clocks = {f"max_{name}": pynvml.nvmlDeviceGetMaxClockInfo(handle, kind) for name, kind in
                      (("sm_mhz", pynvml.NVML_CLOCK_SM), ("memory_mhz", pynvml.NVML_CLOCK_MEM))}
        return {"driver": pynvml.nvmlSystemGetDriverVersion(), **clocks, **max_clocks,
                "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1e3}
    except ImportError:
        return {"unreadable": "nvidia-ml-py is not installed"}
    except Exception as exc:  # pynvml.NVMLError and subclasses
        return {"unreadable": f"{type(exc).__name__}: {exc}"}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RELEVANT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path) -> str | None:
    """The commit of the suite checkout in use, with '+dirty' if it has local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None
