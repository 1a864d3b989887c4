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
    :return: Markdown lines; empty when ``focus`` or every baseline is missing from ``scores``. Each baseline is
        compared over the tasks it shares with ``focus`` (a grid still running leaves some out, and says which).
    """
    baselines = {algo: name for algo, name in (baselines or BASELINES).items() if algo in scores}
    if focus not in scores or not baselines:
        return []
    algos = [focus, *baselines]
    rng = np.random.default_rng(seed)
    tasks = sorted(scores[focus])
    claimed = [task for task in tasks if task[0] not in held_out]
    lines = [
        f"## Mean normalised score: {focus} against {' and '.join(baselines.values())}",
        "",
        "Normalised final score of a run as in the performance profile (0 = uniform random policy, 1 = rl-zoo3's tuned "
        "DDPG at its full budget). Per task, the mean over seeds; the aggregate is the mean over the tasks both "
        f"algorithms ran (held-out tasks apart), each task weighing the same, with a {CONFIDENCE:.0%} stratified bootstrap "
        f"interval ({n_resamples:,} resamples of each task's seeds); a difference's interval resamples both algorithms "
        "independently.",
        "",
        f"| baseline | tasks | runs ({focus} / baseline) | {focus} | baseline | difference [95% CI] | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for algo, name in baselines.items():
        common = [task for task in claimed if task in scores[algo]]
        if not common:
            lines.append(f"| {name} | 0 | - | - | - | - | no task in common |")
            continue
        ours = [scores[focus][task] for task in common]
        theirs = [scores[algo][task] for task in common]
        ours_samples = bootstrap_mean_of_task_means(ours, n_resamples, rng)
        theirs_samples = bootstrap_mean_of_task_means(theirs, n_resamples, rng)
        ours_mean, theirs_mean = mean_of_task_means(ours), mean_of_task_means(theirs)
        difference = ours_mean - theirs_mean
        low, high = _interval(ours_samples - theirs_samples)
        verdict = f"at least {name}'s" if difference >= 0 else f"**below {name}'s**"
        verdict += ", the interval excludes 0" if low > 0 or high < 0 else "; the interval holds 0"
        runs = f"{sum(map(len, ours))} / {sum(map(len, theirs))}"
        lines.append(
            f"| {name} | {len(common)} | {runs} | {_cell(ours_mean, _interval(ours_samples))} | "
            f"{_cell(theirs_mean, _interval(theirs_samples))} | {difference:+.2f} [{low:+.2f}, {high:+.2f}] | {verdict} |"
        )
        missing = [task for task in claimed if task not in scores[algo]]
        if missing:
            notes.append(f"- {name} has no run yet on " + ", ".join(f"{env} {budget:,}" for env, budget in missing) + ".")
    lines.append("")
    if notes:
        lines += [*notes, ""]
    lines += [
        "Per task (mean normalised score [95% CI], runs in parentheses); the last column names each baseline whose mean "
        f"is at least {focus}'s:",
        "",
        "| task | budget | " + " | ".join(algos) + " | not better than |",
        "|---|---:|" + "---:|" * len(algos) + "---|",
    ]
    for task in tasks:
        cells = []
        for algo in algos:
            values = scores[algo].get(task)
            if values is None:
                cells.append("-")
                continue
            resampled = bootstrap_mean_of_task_means([values], n_resamples, rng)
            cells.append(_cell(float(values.mean()), _interval(resampled)) + f" ({len(values)})")
        focus_mean = scores[focus][task].mean()
        not_better = [
            name for algo, name in baselines.items() if task in scores[algo] and scores[algo][task].mean() >= focus_mean
        ]
        env, budget = task
        label = f"{env} (held out)" if env in held_out else env
        lines.append(f"| {label} | {budget:,} | " + " | ".join(cells) + f" | {', '.join(not_better) or '-'} |")
    return [*lines, ""]


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
