"""bench/engine.py: the summary of its alternated rounds."""

import pytest

from bench.engine import rounds_summary


def test_the_summary_is_the_median_of_each_rounds_own_ratio():
    # Round 2's peer was slow (a noisy neighbour during its drain only): its ratio (2.0) is the
    # outlier, which the median of the ratios (0.8, 2.0, 1.0, 1.3: 1.15) shrugs off, and which is
    # not the ratio of the medians (23,500 / 22,500 = 1.04).
    pairs = [(20_000.0, 25_000.0), (22_000.0, 11_000.0), (25_000.0, 25_000.0), (26_000.0, 20_000.0)]
    engine, peer, ratio = rounds_summary(pairs)
    assert (engine, peer) == (23_500.0, 22_500.0)
    assert ratio == pytest.approx((1.0 + 1.3) / 2)


def test_one_round_is_its_own_ratio_and_none_is_refused():
    assert rounds_summary([(18_000.0, 24_000.0)]) == (18_000.0, 24_000.0, 0.75)
    with pytest.raises(ValueError):
        rounds_summary([])
