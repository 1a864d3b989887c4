"""
Statistics for few-seed RL comparisons, as Agarwal et al. define them ("Deep RL at the Edge of the Statistical
Precipice", NeurIPS 2021, and their ``rliable`` library, which is not a dependency because it pins ``arch<8``):

- the interquartile mean (IQM) of all (run, task) scores: ``scipy.stats.trim_mean(x, 0.25)``;
- the probability of improvement of X over Y: per task, the Mann-Whitney statistic ``P(X > Y) + 0.5 P(X = Y)`` over
  all pairs of runs (``scipy.stats.mannwhitneyu``'s ``U`` over ``n m``), averaged over tasks;
- percentile confidence intervals from a *stratified* bootstrap: every resample draws, within each task
  independently, as many runs (with replacement) as the task has, so each task keeps its weight.

Scores are given per task (environment) as a sequence of 1-D arrays, one value per run (seed); tasks may have
different numbers of runs, and a task may have a single run. ``scipy.stats.bootstrap`` resamples several samples
independently too, but refuses samples of one observation (a one-seed grid, a task with one run), so the resampling
is written out here (:func:`stratified_resamples`), ten lines; the statistics are scipy's.

Every interval uses :data:`N_RESAMPLES` resamples from a fixed seed, so a report is reproducible. Its Monte Carlo
error, the spread of an interval end over resampling seeds, measured on the committed benchmark grid (5 seeds per
algorithm and env): for the IQM, a median of 0.5 % of the interval's width (2.7 % with 2,000 resamples), at most
2.6 %; for the probability of improvement, whose bootstrap values lie on a grid of ``1 / (n m)`` steps, a median of
0.006, but an end that falls between two grid values can move by one step.
"""

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray
#: An aggregate over runs: ``statistic(scores, axis)`` reduces ``axis`` (``np.mean``, :func:`iqm`).
Statistic = Callable[..., "np.ndarray | float"]

#: Bootstrap resamples of every interval: 10,000 keeps the Monte Carlo error of an interval end well under the
#: differences a table is read for (2,000 leaves about 5 times as much, see the module docstring), at a cost that
#: stays under a second for grids of a few seeds and tasks (rliable's default is 50,000).
N_RESAMPLES = 10_000
#: Coverage of every interval.
CONFIDENCE = 0.95


def iqm(scores: ArrayLike, axis: int | None = None) -> "np.ndarray | float":
    """
    Interquartile mean: the mean of the middle 50 % of the scores (``floor(0.25 n)`` cut at each end; for ``n < 4``
    nothing is cut and it is the mean).

    :param scores: Scores
    :param axis: Axis reduced (``None``: all scores, as rliable's ``aggregate_iqm``)
    :return: The IQM (an array when ``axis`` leaves others)
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("iqm of an empty array")
    result = stats.trim_mean(values, 0.25, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def mean_std(values: ArrayLike, ddof: int = 0) -> tuple[float, float]:
    """
    :param values: Scores (flattened)
    :param ddof: Delta degrees of freedom of the standard deviation: 0 as SB3's ``evaluate_policy`` reports, 1 for
        the sample standard deviation (0 is returned for a single value)
    :return: ``(mean, std)``
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("mean_std() needs at least one value")
    std = float(values.std(ddof=ddof)) if values.size > ddof else 0.0
    return float(values.mean()), std


def _tasks(scores_per_task: Sequence[ArrayLike]) -> list[np.ndarray]:
    tasks = [np.asarray(task, dtype=float) for task in scores_per_task]
    if not tasks or any(task.ndim == 0 or len(task) == 0 for task in tasks):
        raise ValueError("every task needs at least one score")
    return tasks


def stratified_resamples(tasks: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """
    Stratified bootstrap resamples: for every task independently, as many runs as it has, drawn with replacement.

    :param tasks: One array per task, runs along the first axis (further axes, e.g. points of a learning curve,
        are carried along)
    :param n_resamples: Number of resamples
    :param rng: Random generator
    :return: Shape ``(n_resamples, total runs, ...)``: each resample's runs, task after task
    """
    return np.concatenate([task[rng.integers(0, len(task), size=(n_resamples, len(task)))] for task in tasks], axis=1)


def _percentile_interval(estimates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(estimates, [alpha, 100.0 - alpha], axis=0)
    return low, high


def _scalar_or_array(value: np.ndarray) -> "np.ndarray | float":
    return float(value) if np.ndim(value) == 0 else np.asarray(value)


def stratified_bootstrap_ci(
    scores_per_task: Sequence[ArrayLike],
    statistic: Statistic = iqm,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int | None = 0,
) -> tuple["np.ndarray | float", "np.ndarray | float", "np.ndarray | float"]:
    """
    Point estimate and percentile confidence interval of an aggregate over all runs of all tasks (rliable's
    ``get_interval_estimates`` with ``method="percentile"``).

    :param scores_per_task: One array per task, runs along the first axis; a 2-D array per task (runs x points of a
        learning curve) gives one estimate and interval per point
    :param statistic: Aggregate of the pooled runs, ``statistic(scores, axis=...)``: :func:`iqm` (default), ``np.mean``
    :param confidence: Coverage of the interval
    :param n_resamples: Number of bootstrap resamples
    :param seed: Seed of the resampling
    :return: ``(estimate, low, high)``: floats, or arrays of the points
    """
    tasks = _tasks(scores_per_task)
    point = statistic(np.concatenate(tasks, axis=0), axis=0)
    resamples = stratified_resamples(tasks, n_resamples, np.random.default_rng(seed))
    low, high = _percentile_interval(np.asarray(statistic(resamples, axis=1)), confidence)
    return _scalar_or_array(np.asarray(point)), _scalar_or_array(low), _scalar_or_array(high)


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs, along the last axis (batched over the leading ones)."""
    return stats.mannwhitneyu(x, y, axis=-1, method="asymptotic").statistic / (x.shape[-1] * y.shape[-1])


def probability_of_improvement(x_per_task: Sequence[ArrayLike], y_per_task: Sequence[ArrayLike]) -> float:
    """
    Probability that a run of algorithm X beats a run of algorithm Y on a task drawn uniformly.

    :param x_per_task: X's run scores, one array per task
    :param y_per_task: Y's run scores, same tasks in the same order
    :return: A probability in ``[0, 1]``; 0.5 means no difference
    """
    xs, ys = _paired_tasks(x_per_task, y_per_task)
    return float(np.mean([_improvement(x, y) for x, y in zip(xs, ys, strict=True)]))


def _paired_tasks(
    x_per_task: Sequence[ArrayLike], y_per_task: Sequence[ArrayLike]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(x_per_task) != len(y_per_task) or not x_per_task:
        raise ValueError("x and y need the same, non-zero number of tasks")
    xs = [task.ravel() for task in _tasks(x_per_task)]
    ys = [task.ravel() for task in _tasks(y_per_task)]
    return xs, ys


def probability_of_improvement_ci(
    x_per_task: Sequence[ArrayLike],
    y_per_task: Sequence[ArrayLike],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """
    :func:`probability_of_improvement` with a stratified bootstrap interval: both algorithms' runs are resampled
    within each task, independently.

    :param x_per_task: X's run scores per task
    :param y_per_task: Y's run scores per task
    :param confidence: Coverage of the interval
    :param n_resamples: Number of bootstrap resamples
    :param seed: Seed of the resampling
    :return: ``(estimate, low, high)``
    """
    xs, ys = _paired_tasks(x_per_task, y_per_task)
    rng = np.random.default_rng(seed)
    per_task = [
        _improvement(stratified_resamples([x], n_resamples, rng), stratified_resamples([y], n_resamples, rng))
        for x, y in zip(xs, ys, strict=True)
    ]
    low, high = _percentile_interval(np.mean(per_task, axis=0), confidence)
    return probability_of_improvement(xs, ys), float(low), float(high)


def _profile_fractions(task: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs scoring above each tau, along the last axis of the runs (``runs[..., None] > taus``)."""
    return np.mean(task[..., None] > taus, axis=-2)


def performance_profile(scores_per_task: Sequence[ArrayLike], taus: ArrayLike) -> np.ndarray:
    """
    Performance profile (Agarwal et al.'s run-score distribution): for each threshold ``tau``, the fraction of runs
    whose (normalised) score is strictly above ``tau``, computed per task and averaged over tasks, so that every task
    weighs the same whatever its number of runs (with equal numbers it is the fraction of all runs).

    :param scores_per_task: One 1-D array of run scores per task
    :param taus: Thresholds
    :return: Fractions in ``[0, 1]``, one per threshold (non-increasing in ``tau`` for sorted ``taus``)
    """
    thresholds = np.asarray(taus, dtype=float).ravel()
    tasks = [task.ravel() for task in _tasks(scores_per_task)]
    return np.mean([_profile_fractions(task, thresholds) for task in tasks], axis=0)


def performance_profile_ci(
    scores_per_task: Sequence[ArrayLike],
    taus: ArrayLike,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    :func:`performance_profile` with a pointwise stratified bootstrap band: every resample draws, within each task,
    as many runs as it has (:func:`stratified_resamples`) and recomputes the profile.

    :param scores_per_task: One 1-D array of run scores per task
    :param taus: Thresholds
    :param confidence: Coverage of the band at each threshold
    :param n_resamples: Number of bootstrap resamples
    :param seed: Seed of the resampling
    :return: ``(fractions, low, high)``, arrays with one value per threshold
    """
    thresholds = np.asarray(taus, dtype=float).ravel()
    tasks = [task.ravel() for task in _tasks(scores_per_task)]
    rng = np.random.default_rng(seed)
    # Tasks are resampled one at a time (not concatenated) because the profile averages over tasks, not runs.
    resampled = np.mean(
        [_profile_fractions(stratified_resamples([task], n_resamples, rng), thresholds) for task in tasks], axis=0
    )
    low, high = _percentile_interval(resampled, confidence)
    return performance_profile(tasks, thresholds), np.asarray(low), np.asarray(high)
