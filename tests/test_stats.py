"""Statistics on sample sets whose answers are known."""

import numpy as np
import pytest

from suite.measure.stats import min_samples_for_percentile, sample_warnings, summarize


def test_percentiles_of_one_to_one_hundred():
    s = summarize(np.arange(1, 101, dtype=float))
    assert (s.n, s.p50_ms, s.mean_ms) == (100, 50.5, 50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p95_ms == pytest.approx(95.05)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.cv == pytest.approx(s.std_ms / 50.5)


def test_median_ci_brackets_the_median_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small = summarize(rng.normal(10, 1, 50))
    large = summarize(rng.normal(10, 1, 5000))
    for s in (small, large):
        assert s.ci95_p50_ms[0] <= s.p50_ms <= s.ci95_p50_ms[1]
    assert (large.ci95_p50_ms[1] - large.ci95_p50_ms[0]) < (small.ci95_p50_ms[1] - small.ci95_p50_ms[0]) / 3
    assert 9.9 < large.ci95_p50_ms[0] < large.ci95_p50_ms[1] < 10.1


def test_ci_is_reproducible():
    values = np.random.default_rng(2).exponential(1.0, 300)
    assert summarize(values).ci95_p50_ms == summarize(values).ci95_p50_ms


def test_constant_and_single_samples():
    assert summarize([2.0] * 10).ci95_p50_ms == (2.0, 2.0)
    one = summarize([3.0])
    assert (one.std_ms, one.cv, one.ci95_p50_ms) == (0.0, 0.0, (3.0, 3.0))
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(("q", "confidence", "tolerance", "expected"), [
    (0.90, 0.99, 1, 64),    # MLPerf LoadGen's published minimum for a p90
    (0.99, 0.99, 1, 662),   # and for a p99
    (0.90, 0.99, 0, 44),    # with no sample allowed above the bound: 0.9**n <= 0.01
    (0.99, 0.99, 0, 459),
    (0.50, 0.95, 0, 5),     # 0.5**5 = 0.031 <= 0.05 < 0.5**4
])
def test_binomial_sample_size_rule(q, confidence, tolerance, expected):
    assert min_samples_for_percentile(q, confidence, tolerance) == expected


def test_binomial_rule_rejects_impossible_levels():
    with pytest.raises(ValueError):
        min_samples_for_percentile(1.0)


def test_warnings_name_the_percentiles_that_lack_samples():
    few = sample_warnings(summarize(np.full(100, 1.0)))
    assert len(few) == 1
    assert "only 100 samples" in few[0] and "p99 needs >= 662" in few[0] and "p90" not in few[0]
    assert sample_warnings(summarize(np.full(700, 1.0))) == []


def test_a_slow_mode_or_a_wide_spread_is_flagged_as_unstable():
    slow_mode = np.concatenate([np.full(700, 1.0), np.full(300, 2.0)])  # MAD 0, p90 twice the median
    [warning] = sample_warnings(summarize(slow_mode))
    assert warning.startswith("unstable: spread around the median (MAD-based) 0%, p90 100% above the median")
    wide = np.random.default_rng(0).lognormal(0, 0.3, 1000)
    assert any(w.startswith("unstable") for w in sample_warnings(summarize(wide)))


def test_a_few_far_outliers_are_counted_but_not_called_unstable():
    values = np.concatenate([np.full(990, 1.0), np.full(10, 50.0)])
    s = summarize(values)
    assert (s.outliers, s.robust_cv, s.p50_ms) == (10, 0.0, 1.0)
    assert s.cv > 1.0  # the coefficient of variation is all outliers here
    assert sample_warnings(s) == []
    steady = np.random.default_rng(0).lognormal(0, 0.03, 1000)
    assert sample_warnings(summarize(steady)) == []


@pytest.mark.parametrize(("n", "q", "rank_from_top"), [
    (63, 0.90, None),   # one short of LoadGen's 64: no p90 claim
    (64, 0.90, 2),      # the second largest bounds p90: P(Bin(64, 0.1) <= 1) = 0.0096 <= 0.01
    (661, 0.99, None),
    (662, 0.99, 2),
    (1000, 0.99, 3),    # P(Bin(1000, 0.01) <= 2) = 0.0028; <= 3 is 0.0102 > 0.01
])
def test_percentile_bound_is_the_order_statistic_of_the_binomial_rule(n, q, rank_from_top):
    from suite.measure.stats import percentile_bound

    values = np.random.default_rng(0).permutation(np.arange(1.0, n + 1))
    expected = None if rank_from_top is None else float(n + 1 - rank_from_top)
    assert percentile_bound(values, q) == expected


def test_percentile_bound_covers_the_true_quantile_at_least_as_often_as_promised():
    from suite.measure.stats import percentile_bound

    rng = np.random.default_rng(1)
    true_p90 = -np.log(0.1)  # of Exponential(1)
    covered = [percentile_bound(rng.exponential(size=200), 0.90) >= true_p90 for _ in range(2000)]
    assert np.mean(covered) >= 0.99


def test_summaries_carry_the_bounds():
    s = summarize(np.arange(1.0, 663.0))
    assert (s.p90_bound_ms is not None, s.p99_bound_ms) == (True, 661.0)
    assert summarize(np.arange(1.0, 101.0)).p99_bound_ms is None


def test_accuracy_pass_shows_the_model_one_batch_shape():
    from suite.measure import quality

    seen = []

    def run(batch):
        seen.append(len(batch))
        return batch * 2.0

    inputs = np.arange(10, dtype=np.float32).reshape(10, 1)
    out = quality.outputs(run, lambda x: x, lambda x: x, inputs, 4)
    assert seen == [4, 4, 4]  # the last two inputs go in with the two before them
    assert out[:, 0].tolist() == [2.0 * i for i in range(10)]
    seen.clear()
    assert quality.outputs(run, lambda x: x, lambda x: x, inputs[:3], 4).shape == (3, 1) and seen == [3]
