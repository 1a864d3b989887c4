"""The numpy-only statistics helpers of the tuning report."""

import numpy as np
import pytest

from tuning.stats import iqm, mean_std, stratified_bootstrap_ci


def test_iqm_drops_quartiles():
    # 8 values: the 2 lowest and 2 highest are dropped.
    assert iqm(np.array([-100.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0])) == pytest.approx(2.5)
    assert iqm(np.array([7.0])) == 7.0


def test_iqm_matches_scipy_trim_mean():
    from scipy import stats  # the dev extra's reference: a missing scipy fails the test instead of skipping it

    rng = np.random.default_rng(1)
    for size in (3, 4, 10, 37):
        values = rng.normal(size=(size, 2))
        assert iqm(values) == pytest.approx(stats.trim_mean(values, 0.25, axis=None))


def test_mean_std_is_population_std():
    assert mean_std(np.array([1.0, 3.0])) == (2.0, 1.0)
    with pytest.raises(ValueError):
        mean_std(np.array([]))


def test_bootstrap_interval_contains_point_and_is_reproducible():
    rng = np.random.default_rng(0)
    scores = rng.normal(loc=[0.2, 0.8], scale=0.1, size=(10, 2))
    point, low, high = stratified_bootstrap_ci(scores, iqm, n_resamples=500, seed=3)
    assert low <= point <= high
    assert high - low > 0
    assert stratified_bootstrap_ci(scores, iqm, n_resamples=500, seed=3) == (point, low, high)


def test_bootstrap_is_stratified_per_task():
    # Task 0 always scores 0, task 1 always 1: a stratified resample keeps both tasks, so the mean is exactly 0.5.
    scores = np.column_stack([np.zeros(6), np.ones(6)])
    assert stratified_bootstrap_ci(scores, np.mean, n_resamples=200) == (0.5, 0.5, 0.5)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        stratified_bootstrap_ci(np.empty((0, 2)))
    with pytest.raises(ValueError):
        stratified_bootstrap_ci(np.ones(3), confidence=1.5)
