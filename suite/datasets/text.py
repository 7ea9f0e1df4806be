"""Plain English text for generative decoders: Python's own documentation (`pydoc_data.topics`,
shipped with every CPython: 79 help topics, about 65,000 words), or the user's own text file.

The text is cut into passages of about `passage_chars` characters at paragraph breaks, and the
passages are split, seeded, into train / validation / test. Tokenization belongs to the model
(each decoder has its own tokenizer), so the splits stay text here.
"""

from __future__ import annotations

from pydantic import Field

from suite.config.params import ExistingFile, Params
from suite.datasets.base import DatasetSpec, TextCorpus
from suite.errors import SuiteError

MAX_TEXT_BYTES = 64 << 20  # a user's text file read whole: a bound on what a typo can make us read


class TextParams(Params):
    passage_chars: int = Field(1000, ge=100, le=1_000_000)
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    split_seed: int = Field(0, ge=0)


class TextFileParams(TextParams):
    path: ExistingFile


def passages(text: str, size: int) -> list[str]:
    """Paragraphs joined into passages of at least `size` characters (the last may be shorter); a
    paragraph longer than twice that (one long text with no blank line) cut at spaces first."""
    out, current = [], ""
    for paragraph in (piece for p in text.split("\n\n") for piece in cut_at_spaces(p.strip(), 2 * size)):
        if not paragraph:
            continue
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= size:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def cut_at_spaces(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most about `limit` characters, cut at the last space before each
    limit (or at the limit, where a piece has no space)."""
    pieces = []
    while len(text) > limit:
        end = text.rfind(" ", limit // 2, limit)
        end = limit if end < 0 else end
        pieces.append(text[:end].strip())
        text = text[end:].strip()
    return [*pieces, text]


def split_text(pieces: list[str], params: TextParams, name: str, source: str) -> TextCorpus:
    """Passages split seeded; a passage written twice is kept once (pydoc_data repeats some help
    texts under several topics), so no held-out text is also training text."""
    import numpy as np

    pieces = list(dict.fromkeys(pieces))
    if len(pieces) < 3:
        raise SuiteError(f"dataset {name!r}: {len(pieces)} passage(s) of {params.passage_chars} characters: "
                         "too little text for train, validation and test (give more text or a smaller passage_chars)")
    order = np.random.default_rng(params.split_seed).permutation(len(pieces))
    n_test = max(1, round(len(pieces) * params.test_fraction))
    n_val = max(1, round(len(pieces) * params.val_fraction))
    test, val, train = (tuple(pieces[i] for i in sorted(order[a:b]))
                        for a, b in ((0, n_test), (n_test, n_test + n_val), (n_test + n_val, len(pieces))))
    return TextCorpus(name=name, source=source, train=train, val=val, test=test)


def load_pydoc(params: TextParams) -> TextCorpus:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    words = len(text.split())
    return split_text(passages(text, params.passage_chars), params, "pydoc",
                      f"real English text: Python's documentation topics (pydoc_data.topics, {len(topics)} topics, "
                      f"{words:,} words), passages of ~{params.passage_chars} characters, split seeded")


def load_file(params: TextFileParams) -> TextCorpus:
    if params.path.stat().st_size > MAX_TEXT_BYTES:
        raise SuiteError(f"{params.path}: larger than {MAX_TEXT_BYTES >> 20} MiB: not read")
    try:
        text = params.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{params.path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SuiteError(f"{params.path}: cannot read it ({exc.strerror})") from None
    return split_text(passages(text, params.passage_chars), params, "text_file",
                      f"user text: {params.path.name} ({len(text.split()):,} words), passages of "
                      f"~{params.passage_chars} characters, split seeded")


PYDOC = DatasetSpec(
    description="real English text shipped with Python (pydoc_data.topics, ~65k words), for generative decoders",
    Params=TextParams,
    load=load_pydoc,
    task="generate",
)

TEXT_FILE = DatasetSpec(
    description="your own UTF-8 text file, for generative decoders",
    Params=TextFileParams,
    load=load_file,
    task="generate",
)
