"""Registered datasets. One file per dataset; one registration line each."""

from suite.registry import DATASETS

DATASETS.register("digits", "suite.datasets.digits:SPEC")
