"""Registered datasets. One file per dataset; one registration line each."""

from suite.registry import DATASETS

DATASETS.register("digits", "suite.datasets.digits:SPEC")
DATASETS.register("digits_rows", "suite.datasets.digits:ROWS")
DATASETS.register("random", "suite.datasets.random:SPEC")
DATASETS.register("npz", "suite.datasets.npz:SPEC")
DATASETS.register("image_folder", "suite.datasets.image_folder:SPEC")
DATASETS.register("topics", "suite.datasets.topics:SPEC")
DATASETS.register("text_csv", "suite.datasets.text_csv:SPEC")
DATASETS.register("pydoc", "suite.datasets.text:PYDOC")
DATASETS.register("text_file", "suite.datasets.text:TEXT_FILE")
