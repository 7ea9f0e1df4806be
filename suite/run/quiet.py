"""Known-harmless messages that libraries log when imported, kept out of an in-process run's
terminal (`--in-process`; a variant's own process writes everything to its log file instead):
torchao's "Failed to load ... .so" for kernels built for other CPUs and CUDA versions, and
torch's deprecation of register_constant() for Enum types, which torchao calls."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

HARMLESS = {
    "torchao": re.compile(r"Failed to load .*\.so"),
    "torch.utils._pytree": re.compile(r"register_constant\(\) on Enum subclasses is deprecated"),
}


class DropMatching(logging.Filter):
    def __init__(self, pattern: re.Pattern) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def quiet_known_noise() -> None:
    for name, pattern in HARMLESS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMatching) for f in logger.filters):
            logger.addFilter(DropMatching(pattern))


@contextmanager
def hushed_progress() -> Iterator[None]:
    """transformers' own progress bars (de-quantizing a GGUF file, loading weights) off for the
    block: they would interleave with suite's."""
    import os

    from transformers.utils import logging as hf_logging

    was_enabled, was_set = hf_logging.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF conversion's bar is a plain tqdm
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if was_set is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = was_set
