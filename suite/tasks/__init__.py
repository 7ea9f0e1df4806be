"""Registered tasks: what differs between kinds of model (suite.tasks.base). One file per task;
one registration line each. A model spec names its task (models/spec.py: `task`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from suite.registry import TASKS

if TYPE_CHECKING:
    from suite.results import VariantResult
    from suite.tasks.base import Task

TASKS.register("classify", "suite.tasks.classify:CLASSIFY")
TASKS.register("generate", "suite.tasks.generate:GENERATE")


def task_of(result: VariantResult) -> Task:
    """The task of a finished variant (suite.results.VariantResult); a result saved before the
    task was kept is a decoder's where it has `generation`."""
    name = result.task or ("generate" if result.generation is not None else "classify")
    return TASKS.get(name)
