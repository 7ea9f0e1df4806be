"""The machine's own limits, measured, so that a figure can be set against what the hardware
allows: memory read bandwidth (what bounds decoding at batch 1, which reads every weight once per
token) and the float32 matrix-multiply rate (what bounds prefill). Best of a few repeats, with
torch's current thread count: a lower bound on the true peak, never a datasheet figure."""

from __future__ import annotations

import time

READ_BYTES = 512 << 20  # larger than any CPU cache, small enough to allocate anywhere
MATMUL_SIDE = 2048
REPEATS = 5


def read_bandwidth_gbps(device: str = "cpu") -> float:
    """GB/s (1e9 bytes) of a sum over a float32 tensor of READ_BYTES: a pure read stream."""
    import torch

    data = torch.ones(READ_BYTES // 4, dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(REPEATS + 1):  # the first pass faults the pages in
        start = time.perf_counter()
        data.sum().item()
        best = min(best, time.perf_counter() - start)
    return READ_BYTES / best / 1e9


def matmul_gflops(device: str = "cpu") -> float:
    """GFLOP/s of a float32 MATMUL_SIDE x MATMUL_SIDE matrix product (2 n^3 operations)."""
    import torch

    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device)
    best = float("inf")
    for _ in range(REPEATS + 1):
        start = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIDE**3 / best / 1e9


def limits(device: str = "cpu") -> dict:
    import torch

    return {"read_bandwidth_gbps": round(read_bandwidth_gbps(device), 2), "matmul_gflops": round(matmul_gflops(device), 1),
            "threads": torch.get_num_threads(), "device": device,
            "how": f"best of {REPEATS}: sum over {READ_BYTES >> 20} MiB float32; {MATMUL_SIDE}x{MATMUL_SIDE} float32 matmul"}
