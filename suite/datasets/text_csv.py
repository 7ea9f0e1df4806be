"""The user's own labelled text: a CSV file with a text column and a label column.

Labels may be names or numbers; classes are numbered in sorted order. Texts are tokenized with the
WordPiece tokenizer of all-MiniLM-L6-v2 (the bert extra), the vocabulary of suite's BERT models.
"""

from __future__ import annotations

from pydantic import PositiveInt

from suite.config.params import ExistingFile
from suite.datasets.base import Dataset, DatasetSpec, SplitParams, split_arrays
from suite.datasets.topics import encode
from suite.errors import SuiteError


class TextCsvParams(SplitParams):
    path: ExistingFile
    text_column: str = "text"
    label_column: str = "label"
    seq_len: PositiveInt = 64


def load(params: TextCsvParams) -> Dataset:
    import pandas as pd

    try:
        table = pd.read_csv(params.path)
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{params.path}: cannot read as CSV ({exc})") from None
    for column in (params.text_column, params.label_column):
        if column not in table.columns:
            raise SuiteError(f"{params.path}: no column {column!r} (columns: {', '.join(map(str, table.columns))})")
    table = table.dropna(subset=[params.text_column, params.label_column])
    classes = sorted(table[params.label_column].astype(str).unique())
    labels = table[params.label_column].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    ids, vocab_size = encode(table[params.text_column].astype(str).tolist(), params.seq_len)
    train, val, test = split_arrays(ids, labels.astype("int64"), params)
    return Dataset(name="text_csv", train=train, val=val, test=test, num_classes=len(classes), vocab_size=vocab_size,
                   source=f"user data: {params.path} ({len(table)} texts, classes {', '.join(classes)}), MiniLM tokens")


SPEC = DatasetSpec(
    description="your labelled text: a CSV with text and label columns, MiniLM tokens; needs the bert extra",
    Params=TextCsvParams,
    load=load,
)
