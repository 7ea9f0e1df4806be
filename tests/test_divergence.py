"""Teacher-forced fidelity of a decoder (suite.lm): the KL divergence of each next-token
distribution from the reference's, its statistics, the share of the same top token and the
change in the next token's probability, checked against sums written out by hand with numpy
on small vocabularies; the reference's summary is positions x KLD_TOP, never the vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from suite.errors import SuiteError  # noqa: E402
from suite.lm import LmData, perplexity  # noqa: E402


class TableDecoder:
    """Logits from a table: at each position, the row of the token there (a bigram model)."""

    def __init__(self, table: np.ndarray):
        self.table = torch.tensor(table, dtype=torch.float32)

    def logits(self, ids):
        return self.table[ids]


def lm_data(vocab: int, tokens: int = 64, seed: int = 0) -> LmData:
    rng = np.random.default_rng(seed)
    ids = [torch.tensor(rng.integers(0, vocab, tokens), dtype=torch.int64) for _ in range(3)]
    return LmData(corpus=None, tokenizer=None, tokenizer_id="table", vocab_size=vocab, train_ids=ids[0],
                  val_ids=ids[1], test_ids=ids[2])


def by_hand(reference: np.ndarray, variant: np.ndarray, ids: np.ndarray, context: int) -> dict:
    """Every scored position's full KL, same top token and next token's probability change."""
    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    kl, same, delta, window_means = [], [], [], []
    for window in ids.reshape(-1, context):
        p, q = softmax(reference[window[:-1]].astype(np.float64)), softmax(variant[window[:-1]].astype(np.float64))
        rows = (p * np.log(p / q)).sum(-1)
        kl += list(rows)
        window_means.append(rows.mean())
        same += list(p.argmax(-1) == q.argmax(-1))
        delta += list(q[np.arange(len(q)), window[1:]] - p[np.arange(len(p)), window[1:]])
    return {"kl": np.array(kl), "same": np.array(same), "delta": np.array(delta), "window_means": np.array(window_means)}


def test_divergence_matches_the_full_sums_on_a_small_vocabulary():
    rng = np.random.default_rng(1)
    vocab, context = 7, 8
    data = lm_data(vocab)
    reference = rng.normal(0, 2, (vocab, vocab))
    variant = reference + rng.normal(0, 0.3, (vocab, vocab))
    kept = perplexity(TableDecoder(reference), data, context, 64, 3, keep=True)
    summary = kept["summary"]
    assert summary["top_ids"].shape == (8 * 7, vocab) and summary["top_logp"].dtype == np.float32
    found = perplexity(TableDecoder(variant), data, context, 64, 3, reference=summary)["divergence"]
    hand = by_hand(reference, variant, data.test_ids.numpy(), context)
    assert found["kld_mean"] == pytest.approx(hand["kl"].mean(), rel=1e-5)
    assert found["kld_median"] == pytest.approx(np.median(hand["kl"]), rel=1e-5)
    assert found["kld_p99"] == pytest.approx(np.percentile(hand["kl"], 99), rel=1e-5)
    assert found["kld_max"] == pytest.approx(hand["kl"].max(), rel=1e-5)
    assert found["top1_agreement"] == pytest.approx(hand["same"].mean())
    assert found["delta_p_mean"] == pytest.approx(hand["delta"].mean(), abs=1e-6)
    # The standard error from the spread of the 8 windows' means, not of 56 positions as if independent.
    means = hand["window_means"]
    assert found["kld_mean_se"] == pytest.approx(means.std(ddof=1) / np.sqrt(len(means)), rel=1e-4)
    assert found["kld_positions"] == 56 and found["kld_windows"] == 8 and found["kld_top_k"] == vocab
    assert found["kld_reference_tail"] == pytest.approx(0, abs=1e-6)  # the whole vocabulary kept
    assert 0 < found["top1_agreement"] < 1 and found["kld_mean"] > 0.01  # the test can tell them apart


def test_the_reference_against_itself_is_zero_and_a_shuffled_model_is_far():
    rng = np.random.default_rng(2)
    vocab, context = 9, 8
    data = lm_data(vocab)
    reference = rng.normal(0, 2, (vocab, vocab))
    itself = perplexity(TableDecoder(reference), data, context, 64, 4, keep=True)
    assert itself["divergence"]["kld_mean"] == 0 and itself["divergence"]["kld_max"] == 0
    assert itself["divergence"]["top1_agreement"] == 1 and itself["divergence"]["delta_p_mean"] == 0
    shuffled = perplexity(TableDecoder(reference[::-1].copy()), data, context, 64, 4, reference=itself["summary"])
    assert shuffled["divergence"]["kld_mean"] > 1 and shuffled["divergence"]["top1_agreement"] < 0.5


def test_a_large_vocabulary_keeps_the_top_tokens_and_the_rest_as_one_outcome(monkeypatch):
    """With KLD_TOP below the vocabulary, the KL is taken over the kept tokens and the rest as one
    outcome on each side: the formula written out, a lower bound of the full sum."""
    import suite.lm

    monkeypatch.setattr(suite.lm, "KLD_TOP", 3)
    rng = np.random.default_rng(3)
    vocab, context = 12, 8
    data = lm_data(vocab)
    reference = rng.normal(0, 1.5, (vocab, vocab))
    variant = reference + rng.normal(0, 0.5, (vocab, vocab))
    summary = perplexity(TableDecoder(reference), data, context, 64, 8, keep=True)["summary"]
    assert summary["top_ids"].shape == (56, 3)  # positions x kept tokens, not x vocabulary
    found = perplexity(TableDecoder(variant), data, context, 64, 8, reference=summary)["divergence"]
    expected, tails = [], []
    for window in data.test_ids.numpy().reshape(-1, context):
        for token in window[:-1]:
            p = np.exp(reference[token] - np.logaddexp.reduce(reference[token]))
            q = np.exp(variant[token] - np.logaddexp.reduce(variant[token]))
            top = np.argsort(-p)[:3]
            p_rest, q_rest = 1 - p[top].sum(), 1 - q[top].sum()
            expected.append((p[top] * np.log(p[top] / q[top])).sum() + p_rest * np.log(p_rest / q_rest))
            tails.append(p_rest)
    full = by_hand(reference, variant, data.test_ids.numpy(), context)["kl"]
    assert found["kld_mean"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert found["kld_mean"] <= full.mean() + 1e-9
    assert found["kld_reference_tail"] == pytest.approx(np.mean(tails), rel=1e-4) and found["kld_top_k"] == 3


def test_a_reference_of_other_settings_or_vocabulary_is_not_compared():
    rng = np.random.default_rng(4)
    data = lm_data(6)
    table = rng.normal(0, 1, (6, 6))
    summary = perplexity(TableDecoder(table), data, 8, 64, 4, keep=True)["summary"]
    other = perplexity(TableDecoder(table), data, 16, 64, 4, reference=summary)
    assert "divergence" not in other and "56 positions" in other["divergence_reason"]
    smaller = perplexity(TableDecoder(table[:, :4]), lm_data(4), 8, 64, 4, keep=True)["summary"]
    bigger = {k: v.copy() for k, v in summary.items()}
    fewer = perplexity(TableDecoder(table[:4, :4]), lm_data(4), 8, 64, 4, reference=bigger)
    assert "divergence" not in fewer and "vocabulary has 4" in fewer["divergence_reason"]
    assert fewer["perplexity"] > 1  # perplexity is still measured
    assert smaller["top_ids"].max() < 4


def test_run_folder_keeps_the_summary_and_refuses_a_damaged_one(tmp_path):
    from suite.run.run_folder import RunFolder

    folder = RunFolder(tmp_path)
    rng = np.random.default_rng(5)
    summary = perplexity(TableDecoder(rng.normal(0, 1, (6, 6))), lm_data(6), 8, 64, 4, keep=True)["summary"]
    folder.save_logits("fp32", summary)
    again = folder.logits("fp32")
    assert all(np.array_equal(again[k], summary[k]) for k in summary)
    assert folder.logits("other") is None
    file = next((tmp_path / "outputs").glob("*.logits.npz"))
    file.write_bytes(b"not a zip")
    with pytest.raises(SuiteError, match="damaged logits file"):
        folder.logits("fp32")
    np.savez(file, top_ids=np.zeros((3, 2), np.int32), top_logp=np.zeros((3, 3)), target_logp=np.zeros(3))
    with pytest.raises(SuiteError, match="damaged logits file"):
        folder.logits("fp32")
    np.savez(file, top_ids=np.zeros((3, 2), np.int32))
    with pytest.raises(SuiteError, match="damaged logits file"):
        folder.logits("fp32")
