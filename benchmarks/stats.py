"""
Statistics for few-seed RL comparisons (numpy only), following Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice" (NeurIPS 2021) and its ``rliable`` library: interquartile mean (IQM), percentile confidence intervals from a
stratified bootstrap (runs resampled within each task), and the probability of improvement.

Scores are given per task (environment) as a list of 1-D arrays, one value per run (seed); tasks may have different
numbers of runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def iqm(scores: ArrayLike) -> float:
    """
    Interquartile mean: the mean of the middle 50% of the scores, the same as ``scipy.stats.trim_mean(x, 0.25)``
    (``floor(0.25 n)`` values cut at each end; for ``n < 4`` nothing is cut and it is the mean).

    :param scores: 1-D scores.
    :return: The IQM.
    """
    values = np.sort(np.asarray(scores, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("iqm of an empty array")
    cut = int(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


def iqm_rows(samples: np.ndarray) -> np.ndarray:
    """
    Vectorised :func:`iqm` of every row of a 2-D array (used on bootstrap resamples).

    :param samples: Shape ``(n_rows, n)``.
    :return: Shape ``(n_rows,)``.
    """
    ordered = np.sort(samples, axis=1)
    n = ordered.shape[1]
    cut = int(0.25 * n)
    return ordered[:, cut : n - cut].mean(axis=1)


def stratified_bootstrap_ci(
    scores_per_task: Sequence[ArrayLike],
    statistic: Callable[[np.ndarray], np.ndarray] = iqm_rows,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """
    Point estimate and percentile confidence interval of an aggregate statistic by stratified bootstrap: each
    resample draws, for every task independently, as many runs (with replacement) as that task has, then applies the
    statistic to all drawn scores together.

    :param scores_per_task: One 1-D array of run scores per task.
    :param statistic: Maps a ``(n_boot, n_total)`` array to ``(n_boot,)`` (default: row-wise IQM).
    :param confidence: Coverage of the interval.
    :param n_boot: Number of bootstrap resamples.
    :param seed: Seed of the resampling (fixed by default, so that a report is reproducible).
    :return: ``(estimate, low, high)``.
    """
    tasks = [np.asarray(s, dtype=float).ravel() for s in scores_per_task]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one score")
    rng = np.random.default_rng(seed)
    point = float(statistic(np.concatenate(tasks)[None, :])[0])
    resampled = np.concatenate([t[rng.integers(0, t.size, size=(n_boot, t.size))] for t in tasks], axis=1)
    stats = statistic(resampled)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return point, float(low), float(high)


def probability_of_improvement(x_per_task: Sequence[ArrayLike], y_per_task: Sequence[ArrayLike]) -> float:
    """
    Probability that a run of algorithm X beats a run of algorithm Y on a task drawn uniformly: per task, the
    Mann-Whitney statistic ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs, averaged over tasks.

    :param x_per_task: X's run scores, one array per task.
    :param y_per_task: Y's run scores, same tasks in the same order.
    :return: A probability in ``[0, 1]``; 0.5 means no difference.
    """
    if len(x_per_task) != len(y_per_task) or not x_per_task:
        raise ValueError("x and y need the same, non-zero number of tasks")
    per_task = []
    for x, y in zip(x_per_task, y_per_task, strict=True):
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
        if x.size == 0 or y.size == 0:
            raise ValueError("every task needs at least one score for both algorithms")
        greater = (x[:, None] > y[None, :]).mean()
        ties = (x[:, None] == y[None, :]).mean()
        per_task.append(greater + 0.5 * ties)
    return float(np.mean(per_task))


def probability_of_improvement_ci(
    x_per_task: Sequence[ArrayLike],
    y_per_task: Sequence[ArrayLike],
    confidence: float = 0.95,
    n_boot: int = 2_000,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """
    :func:`probability_of_improvement` with a stratified bootstrap interval (both algorithms' runs resampled within
    each task).

    :param x_per_task: X's run scores per task.
    :param y_per_task: Y's run scores per task.
    :param confidence: Coverage of the interval.
    :param n_boot: Number of bootstrap resamples.
    :param seed: Seed of the resampling.
    :return: ``(estimate, low, high)``.
    """
    xs = [np.asarray(x, dtype=float).ravel() for x in x_per_task]
    ys = [np.asarray(y, dtype=float).ravel() for y in y_per_task]
    point = probability_of_improvement(xs, ys)
    rng = np.random.default_rng(seed)
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        bx = x[rng.integers(0, x.size, size=(n_boot, x.size))]
        by = y[rng.integers(0, y.size, size=(n_boot, y.size))]
        greater = (bx[:, :, None] > by[:, None, :]).mean(axis=(1, 2))
        ties = (bx[:, :, None] == by[:, None, :]).mean(axis=(1, 2))
        per_task.append(greater + 0.5 * ties)
    stats = np.mean(per_task, axis=0)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return point, float(low), float(high)


def mean_ci(
    values: np.ndarray, confidence: float = 0.95, n_boot: int = 1_000, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Mean over runs and its bootstrap percentile interval, at every point of a learning curve.

    :param values: Shape ``(n_runs, n_points)``.
    :param confidence: Coverage of the interval.
    :param n_boot: Number of bootstrap resamples.
    :param seed: Seed of the resampling.
    :return: ``(mean, low, high)``, each of shape ``(n_points,)``.
    """
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    boot_means = values[idx].mean(axis=1)  # (n_boot, n_points)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(boot_means, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return values.mean(axis=0), low, high
