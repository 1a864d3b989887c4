"""
The mean normalised score over tasks of one configuration against the upstream baselines (issue 16's test of the
recommended configuration): per task the mean over seeds of the normalised final score, then the mean over tasks
(each task weighs the same), with 95% stratified bootstrap intervals for each algorithm and for the differences, and
the tasks on which the configuration is not better, with their intervals. Held-out tasks (a task the tuning never
saw) are shown per task and kept out of the aggregate, so that the aggregate is over the tasks the claim is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sb3_ddpg_plus.experiments.stats import CONFIDENCE, N_RESAMPLES

#: The configuration the section is about, and the baselines it is compared with (name for the text)
FOCUS = "ddpg_plus_recommended"
BASELINES = {"sb3_td3": "SB3 TD3", "sb3_ddpg": "SB3 DDPG"}

Task = tuple[str, int]


def mean_of_task_means(tasks: Sequence[np.ndarray]) -> float:
    """
    :param tasks: Normalised scores, one array of runs per task.
    :return: The mean over tasks of each task's mean over runs.
    """
    return float(np.mean([np.mean(task) for task in tasks]))


def bootstrap_mean_of_task_means(tasks: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """
    :param tasks: Normalised scores, one array of runs per task.
    :param n_resamples: Bootstrap resamples.
    :param rng: Random generator.
    :return: ``(n_resamples,)`` resampled means of task means: each task's runs drawn with replacement, as many as it
        has (stratified bootstrap).
    """
    per_task = [task[rng.integers(0, len(task), size=(n_resamples, len(task)))].mean(axis=1) for task in tasks]
    return np.mean(per_task, axis=0)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    alpha = 100.0 * (1.0 - CONFIDENCE) / 2.0
    low, high = np.percentile(samples, [alpha, 100.0 - alpha])
    return float(low), float(high)


def _cell(estimate: float, interval: tuple[float, float]) -> str:
    return f"{estimate:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def mean_score_section(
    scores: dict[str, dict[Task, np.ndarray]],
    held_out: Sequence[str] = (),
    focus: str = FOCUS,
    baselines: dict[str, str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> list[str]:
    """
    :param scores: ``{algo: {(env, budget): normalised final scores}}`` (:func:`benchmarks.report.normalised_finals`).
    :param held_out: Envs shown per task but kept out of the aggregate.
    :param focus: The configuration judged.
    :param baselines: ``{algo: name}`` of the baselines (default :data:`BASELINES`).
    :param n_resamples: Bootstrap resamples.
    :param seed: Seed of the resampling.
    :return: Markdown lines; empty when ``focus`` or every baseline is missing from ``scores``.
    """
    baselines = {algo: name for algo, name in (baselines or BASELINES).items() if algo in scores}
    if focus not in scores or not baselines:
        return []
    algos = [focus, *baselines]
    rng = np.random.default_rng(seed)
    tasks = sorted(scores[focus])
    shared = [task for task in tasks if all(task in scores[algo] for algo in algos)]
    aggregated = [task for task in shared if task[0] not in held_out]
    lines = [
        f"## Mean normalised score: {focus} against {' and '.join(baselines.values())}",
        "",
        "Normalised final score of a run as in the performance profile (0 = uniform random policy, 1 = rl-zoo3's tuned "
        "DDPG at its full budget). Per task, the mean over seeds; the aggregate is the mean over tasks, each task "
        f"weighing the same, with a {CONFIDENCE:.0%} stratified bootstrap interval ({n_resamples:,} resamples of each "
        "task's seeds); a difference's interval resamples both algorithms independently.",
        "",
    ]
    if aggregated:
        samples = {
            algo: bootstrap_mean_of_task_means([scores[algo][t] for t in aggregated], n_resamples, rng) for algo in algos
        }
        estimates = {algo: mean_of_task_means([scores[algo][t] for t in aggregated]) for algo in algos}
        names = ", ".join(f"{env} {budget:,}" for env, budget in aggregated)
        lines += [
            f"Over the {len(aggregated)} task(s) ({names}):",
            "",
            "| algo | runs | mean normalised score [95% CI] |",
            "|---|---:|---:|",
        ]
        for algo in algos:
            runs = sum(len(scores[algo][t]) for t in aggregated)
            lines.append(f"| {algo} | {runs} | {_cell(estimates[algo], _interval(samples[algo]))} |")
        lines.append("")
        for algo, name in baselines.items():
            difference = estimates[focus] - estimates[algo]
            low, high = _interval(samples[focus] - samples[algo])
            if difference >= 0:
                verdict = (
                    "at least " + name + "'s" + (", and the interval excludes 0" if low > 0 else "; the interval holds 0")
                )
            else:
                verdict = (
                    "**below " + name + "'s**" + (", and the interval excludes 0" if high < 0 else "; the interval holds 0")
                )
            lines.append(f"- {focus} minus {name}: {difference:+.2f} [{low:+.2f}, {high:+.2f}]: {verdict}.")
        lines.append("")
    left_out = [task for task in tasks if task not in shared]
    if left_out:
        lines += [
            "Not in the aggregate, a baseline has no run there: "
            + ", ".join(f"{env} {budget:,}" for env, budget in left_out)
            + ".",
            "",
        ]
    lines += [
        f"Per task (mean normalised score [95% CI]); the last column names each baseline whose mean is at least {focus}'s:",
        "",
        "| task | budget | " + " | ".join(algos) + " | not better than |",
        "|---|---:|" + "---:|" * len(algos) + "---|",
    ]
    for task in shared:
        cells = []
        for algo in algos:
            values = scores[algo][task]
            resampled = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
            cells.append(_cell(float(values.mean()), _interval(resampled)) + f" ({len(values)})")
        not_better = [name for algo, name in baselines.items() if scores[algo][task].mean() >= scores[focus][task].mean()]
        env, budget = task
        label = f"{env} (held out)" if env in held_out else env
        lines.append(f"| {label} | {budget:,} | " + " | ".join(cells) + f" | {', '.join(not_better) or '-'} |")
    return [*lines, "", "(runs per cell in parentheses)", ""]


def section_from_groups(
    groups: dict[Task, dict[str, list[dict[str, Any]]]], held_out: Sequence[str] = (), n_resamples: int = N_RESAMPLES
) -> list[str]:
    """
    :param groups: From :func:`benchmarks.report.group_runs`.
    :param held_out: Envs kept out of the aggregate.
    :param n_resamples: Bootstrap resamples.
    :return: :func:`mean_score_section` over the envs with a reference score (``tuning/reference_scores.yml``).
    """
    from benchmarks.report import normalised_finals
    from tuning.scoring import load_reference_scores

    return mean_score_section(normalised_finals(groups, load_reference_scores()), held_out, n_resamples=n_resamples)
