"""The reference model zoo. One file per family; one registration line per model."""

from suite.registry import MODELS

MODELS.register("mlp", "models.mlp:SPEC")
