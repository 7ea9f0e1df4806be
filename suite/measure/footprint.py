"""Size and memory: parameter count, serialized size, peak resident memory."""

from __future__ import annotations

import io
import resource
import sys
from typing import Any


def parameter_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def serialized_size_bytes(module: Any) -> int:
    """Bytes of the module's state_dict as torch.save writes it."""
    import torch

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB
