"""
Small, numpy-only statistics for the report: mean ± std, interquartile mean and a stratified bootstrap interval.

Follows rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"): the IQM is the mean of the
middle 50 % of all (run, task) scores, and the bootstrap resamples runs independently within each task.
rliable itself is not a dependency because it pins ``arch<8``.
"""

from collections.abc import Callable

import numpy as np


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """
    Mean and (population, ``ddof=0``, as SB3's ``evaluate_policy`` reports) standard deviation.

    :param values: scores, any shape (flattened)
    :return: ``(mean, std)``
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("mean_std() needs at least one value")
    return float(values.mean()), float(values.std())


def iqm(values: np.ndarray) -> float:
    """
    Interquartile mean: drop the lowest and highest 25 % of the scores and average the rest.

    Same cut as ``scipy.stats.trim_mean(values, 0.25, axis=None)`` (``int(0.25 * n)`` values from each end).

    :param values: scores, any shape (flattened, as rliable's ``aggregate_iqm``)
    :return: the interquartile mean
    """
    values = np.sort(np.asarray(values, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("iqm() needs at least one value")
    cut = int(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """
    Percentile bootstrap interval of ``statistic`` over a ``(n_runs, n_tasks)`` score matrix.

    Each resample draws ``n_runs`` runs with replacement independently within every task (column), so every task
    keeps its weight; this is rliable's ``get_interval_estimates`` with ``method="percentile"``.

    :param scores: normalised scores, shape ``(n_runs, n_tasks)`` (a 1-D array is one task)
    :param statistic: aggregate of a score matrix, e.g. :func:`iqm` or ``np.mean``
    :param n_resamples: number of bootstrap resamples
    :param confidence: interval mass, e.g. 0.95
    :param seed: seed of the resampling generator (the interval is reproducible)
    :return: ``(point_estimate, low, high)``
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"expected a non-empty (n_runs, n_tasks) matrix, got shape {scores.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n_runs, n_tasks = scores.shape
    # One index matrix per resample: rows drawn with replacement, independently per column (task).
    rows = rng.integers(0, n_runs, size=(n_resamples, n_runs, n_tasks))
    resampled = np.take_along_axis(scores[None, :, :], rows, axis=1)
    estimates = np.array([statistic(sample) for sample in resampled])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return float(statistic(scores)), float(low), float(high)
