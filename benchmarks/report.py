"""
Report of a benchmark grid: ``python -m benchmarks report [--runs benchmarks/results/standard]``.

Reads the run files written by :mod:`benchmarks.runner` and writes, into ``--out`` (default ``benchmarks/results``):
``summary.csv`` (``env,algo,n_seeds,budget,mean,std,iqm,iqm_low,iqm_high``), ``runs.csv`` (one row per run),
``curves_<env>.png`` (IQM evaluation return over seeds and its 95% stratified bootstrap band per algorithm),
``time_<env>.png`` (the same against training seconds, for runs that record them), ``performance_profile.png``
(normalised final scores over all envs, normalised with ``tuning/reference_scores.yml``) and ``README.md``, which
adds steps-to-threshold and time-to-threshold tables (:data:`THRESHOLDS`). The statistics (IQM, stratified bootstrap
intervals, probability of improvement, performance profiles) are :mod:`sb3_ddpg_plus.experiments.stats`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks.common import RESULTS_DIR, command_line, now_utc
from sb3_ddpg_plus.experiments.records import write_file
from sb3_ddpg_plus.experiments.stats import (
    N_RESAMPLES,
    iqm,
    mean_std,
    performance_profile_ci,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

SUMMARY_COLUMNS = ("env", "algo", "n_seeds", "budget", "mean", "std", "iqm", "iqm_low", "iqm_high")
BASELINE = "sb3_ddpg"
TD3 = "sb3_td3"
#: Return at which an env counts as solved (gymnasium's ``reward_threshold``), for the envs where the report says so.
SOLVED_AT = {"MountainCarContinuous-v0": 90.0}
#: The repository root (paths quoted in the report are relative to it).
REPO_ROOT = Path(__file__).resolve().parents[1]


class Threshold(NamedTuple):
    """A return to reach, for the steps-to-threshold and time-to-threshold tables."""

    value: float
    #: Where the value comes from (quoted in the report).
    source: str


#: Thresholds of the steps-to-threshold and time-to-threshold tables, one per env, each with its origin. Gymnasium's
#: ``reward_threshold`` where it is reachable at our budgets; otherwise a level stated here, between the random policy
#: and the reference of ``tuning/reference_scores.yml`` (normalised score in the source text).
THRESHOLDS: dict[str, Threshold] = {
    "MountainCarContinuous-v0": Threshold(SOLVED_AT["MountainCarContinuous-v0"], "gymnasium's reward_threshold"),
    # Pendulum-v1 has no reward_threshold; -200 is the usual "swings up and holds" level (rl-zoo3's DDPG: -152).
    "Pendulum-v1": Threshold(-200.0, "no reward_threshold in gymnasium; swings up and holds, normalised 0.95"),
    # pybullet_envs registers 3000 (HalfCheetah) and 2500 (Hopper), out of reach at 10k-100k steps (SB3's docs: DDPG
    # 2272 and 1201 after 1M steps); 1000 is a gait that moves forward steadily.
    "HalfCheetahBulletEnv-v0": Threshold(1000.0, "PyBullet's 3000 is out of reach at these budgets; normalised 0.68"),
    "HopperBulletEnv-v0": Threshold(1000.0, "PyBullet's 2500 is out of reach at these budgets; normalised 0.86"),
}

#: Published reference results (single trained agent, rl-zoo ``benchmark.md``; SB3 docs, 1M steps, PyBullet: DDPG
#: 6 seeds, TD3 3 seeds), quoted in the report next to ours. Keys: env -> label -> text.
REFERENCE_RESULTS: dict[str, dict[str, str]] = {
    "Pendulum-v1": {"zoo DDPG (1 agent, 20k steps)": "-152 ± 94", "zoo TD3 (1 agent, 20k steps)": "-152 ± 90"},
    "MountainCarContinuous-v0": {
        "zoo DDPG (1 agent, 300k steps)": "93.5 ± 0.05",
        "zoo TD3 (1 agent, 300k steps)": "93.5 ± 0.08",
    },
    "HalfCheetahBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "2272 ± 69",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2774 ± 35",
        "zoo DDPG (1 agent, 1M steps)": "2078 ± 208",
    },
    "AntBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "1651 ± 407",
        "SB3 docs TD3 (3 seeds, 1M steps)": "3305 ± 43",
        "zoo DDPG (1 agent, 1M steps)": "2399 ± 75",
    },
    "HopperBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "1201 ± 211",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2429 ± 126",
        "zoo DDPG (1 agent, 1M steps)": "1157 ± 449",
    },
    "Walker2DBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "882 ± 186",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2063 ± 185",
        "zoo DDPG (1 agent, 1M steps)": "1388 ± 737",
    },
}


def load_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """
    :param runs_dir: A results folder (its ``runs/`` subfolder is read) or a ``runs/`` folder itself.
    :return: The finished runs (``status == "done"``), sorted by env, budget, algo, seed.
    """
    root = runs_dir / "runs" if (runs_dir / "runs").is_dir() else runs_dir
    runs = []
    for path in sorted(root.rglob("*.json")):
        try:
            with open(path, encoding="utf-8") as file:
                record = json.load(file)
        except (OSError, ValueError):
            continue
        if record.get("status") == "done" and record.get("schema") == 1:
            runs.append(record)
    return sorted(runs, key=lambda r: (r["env"], r["budget"], r["algo"], r["seed"]))


def group_runs(runs: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, list[dict[str, Any]]]]:
    """
    :param runs: Run records.
    :return: ``{(env, budget): {algo: [runs]}}``, in first-seen order of envs and algorithms.
    """
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        groups.setdefault((run["env"], run["budget"]), {}).setdefault(run["algo"], []).append(run)
    return groups


def algo_order(algos: Sequence[str]) -> list[str]:
    """
    :param algos: Algorithm keys.
    :return: DDPGPlus variants first (registry order), then the SB3 baselines.
    """
    from benchmarks.algos import ALGOS

    rank = {name: i for i, name in enumerate(ALGOS)}
    plus = sorted((a for a in algos if not a.startswith("sb3_")), key=lambda a: rank.get(a, len(rank)))
    return plus + sorted(a for a in algos if a.startswith("sb3_"))


def summarize(
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]], n_boot: int = N_RESAMPLES
) -> list[dict[str, Any]]:
    """
    :param groups: From :func:`group_runs`.
    :param n_boot: Bootstrap resamples.
    :return: One row per (env, budget, algo): the summary columns plus probability of improvement over SB3 DDPG.
    """
    rows = []
    for (env, budget), by_algo in groups.items():
        baseline = [r["final_return"] for r in by_algo.get(BASELINE, [])]
        td3 = [r["final_return"] for r in by_algo.get(TD3, [])]
        for algo in algo_order(list(by_algo)):
            finals = np.array([r["final_return"] for r in by_algo[algo]], dtype=float)
            estimate, low, high = stratified_bootstrap_ci([finals], n_resamples=n_boot)
            mean, std = mean_std(finals, ddof=1)
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "n_seeds": int(finals.size),
                "budget": int(budget),
                "mean": mean,
                "std": std,
                "iqm": estimate,
                "iqm_low": low,
                "iqm_high": high,
                "poi": None,
                "poi_td3": None,
                "steps_per_s": float(np.median([r["steps_per_s"] for r in by_algo[algo]])),
                "wall_time_s": float(np.median([r["wall_time_s"] for r in by_algo[algo]])),
            }
            if baseline and algo != BASELINE:
                row["poi"] = probability_of_improvement_ci([finals], [baseline], n_resamples=n_boot)
            if td3 and algo not in (TD3, BASELINE):
                # Against the stronger upstream baseline too
                row["poi_td3"] = probability_of_improvement_ci([finals], [td3], n_resamples=n_boot)
            rows.append(row)
    return rows


def summary_csv(rows: Sequence[dict[str, Any]]) -> str:
    """
    :param rows: From :func:`summarize`.
    :return: ``summary.csv`` text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow([row[c] if not isinstance(row[c], float) else f"{row[c]:.4f}" for c in SUMMARY_COLUMNS])
    return buffer.getvalue()


def runs_csv(runs: Sequence[dict[str, Any]]) -> str:
    """
    :param runs: Run records.
    :return: ``runs.csv`` text: one row per run.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("env", "algo", "seed", "budget", "final_return", "wall_time_s", "steps_per_s", "algo_class"))
    for run in runs:
        writer.writerow(
            (
                run["env"],
                run["algo"],
                run["seed"],
                run["budget"],
                f"{run['final_return']:.4f}",
                run["wall_time_s"],
                run["steps_per_s"],
                run["algo_class"],
            )
        )
    return buffer.getvalue()


def curve_matrix(runs: Sequence[dict[str, Any]], key: str = "mean_return") -> tuple[list[int], np.ndarray]:
    """
    :param runs: Run records of one algorithm on one env
    :param key: Per-evaluation field of ``eval`` to read (``mean_return``, ``train_s``)
    :return: The evaluation steps every run has (they agree unless a run used other settings) and the field's values
        there, shape ``(runs, steps)``
    """
    common = sorted(set.intersection(*(set(r["eval"]["timesteps"]) for r in runs)))
    values = np.array(
        [[dict(zip(r["eval"]["timesteps"], r["eval"][key], strict=True))[t] for t in common] for r in runs], dtype=float
    )
    return common, values.reshape(len(runs), len(common))


def algo_colors(algos: Sequence[str]) -> dict[str, Any]:
    """
    :param algos: Every algorithm of a report
    :return: One colour per algorithm, the same in all of its figures
    """
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    return {algo: palette[i % len(palette)] for i, algo in enumerate(algo_order(list(algos)))}


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_file(path, buffer.getvalue())


def _subplots() -> tuple[Any, Any]:
    import matplotlib

    # Files only, no display: the report also runs on headless machines.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.2), dpi=110)


def plot_curves(
    env: str,
    budget: int,
    by_algo: dict[str, list[dict[str, Any]]],
    path: Path,
    colors: dict[str, Any] | None = None,
    n_boot: int = N_RESAMPLES,
    against_time: bool = False,
) -> bool:
    """
    Learning curves: per algorithm, the IQM over seeds of the evaluation return at each evaluation step with its 95%
    stratified bootstrap band (Agarwal et al. 2021; with fewer than 4 seeds the IQM is the mean), and the env's
    threshold (:data:`THRESHOLDS`) as a dotted line where it lies within the curves' range.

    Against time, the same curves are drawn against the median over seeds of the training seconds before each
    evaluation (``eval.train_s``, evaluation time excluded): runs of one algorithm reach an evaluation step at
    different times, and the median keeps the IQM and its band the ones of the step plot, so the two figures differ
    only in their x axis.

    :param env: Environment id (title).
    :param budget: Env steps (title).
    :param by_algo: Runs per algorithm.
    :param path: PNG to write.
    :param colors: Colour per algorithm (:func:`algo_colors`).
    :param n_boot: Bootstrap resamples.
    :param against_time: Training seconds on the x axis instead of env steps (algorithms whose runs do not all record
        them are left out)
    :return: Whether a plot was written (not against time when no algorithm has training seconds).
    """
    if against_time:
        by_algo = {algo: runs for algo, runs in by_algo.items() if has_train_seconds(runs)}
        if not by_algo:
            return False
    colors = colors or algo_colors(list(by_algo))
    fig, ax = _subplots()
    for algo in algo_order(list(by_algo)):
        runs = by_algo[algo]
        common, values = curve_matrix(runs)
        if not common:
            continue
        xs = np.median(curve_matrix(runs, "train_s")[1], axis=0) if against_time else common
        estimate, low, high = stratified_bootstrap_ci([values], iqm, n_resamples=n_boot)
        style = "--" if algo.startswith("sb3_") else "-"
        ax.plot(xs, estimate, style, color=colors[algo], label=f"{algo} ({len(runs)} seeds)")
        ax.fill_between(xs, low, high, color=colors[algo], alpha=0.15, linewidth=0)
    _threshold_line(ax, env)
    if against_time:
        title = "IQM evaluation return against training time (median over seeds), 95% band"
        ax.set_xlabel("training seconds on this machine (evaluations excluded)")
    else:
        title = "IQM evaluation return over seeds, 95% stratified bootstrap band"
        ax.set_xlabel("env steps")
    ax.set_title(f"{env}, {budget:,} env steps\n{title}", fontsize=10)
    ax.set_ylabel("return (deterministic, per evaluation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def _threshold_line(ax: Any, env: str) -> None:
    threshold = threshold_of(env)
    low, high = ax.get_ylim()
    # Only inside the curves' range: a threshold far above them would squash the curves (the README states it).
    if threshold is not None and low <= threshold <= high:
        ax.axhline(threshold, color="grey", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")


def threshold_of(env: str) -> float | None:
    """
    :param env: Environment id
    :return: Its return threshold (:data:`THRESHOLDS`), or None
    """
    threshold = THRESHOLDS.get(env)
    return None if threshold is None else threshold.value


def has_train_seconds(runs: Sequence[dict[str, Any]]) -> bool:
    """
    :param runs: Run records
    :return: Whether every run records its training seconds per evaluation (``eval.train_s``; older runs do not)
    """
    return bool(runs) and all(len(r["eval"].get("train_s") or ()) == len(r["eval"]["timesteps"]) for r in runs)


def first_reach(xs: Sequence[float], values: Sequence[float], threshold: float) -> float | None:
    """
    :param xs: Where each value was measured (env steps or seconds), increasing
    :param values: Evaluation returns
    :param threshold: Return to reach
    :return: The first ``x`` whose value is at least ``threshold``, or None when none is
    """
    for x, value in zip(xs, values, strict=True):
        if value >= threshold:
            return float(x)
    return None


def median_to_reach(reach: Sequence[float | None]) -> float:
    """
    :param reach: Per run, where it first reaches the threshold (None: never)
    :return: The median over all runs, a run that never reaches counting as infinitely late: ``inf`` when half of
        the runs or more never reach it. Leaving those runs out would report the fast runs only
    """
    return float(np.median([np.inf if x is None else x for x in reach]))


def steps_to_threshold_table(env: str, by_algo: dict[str, list[dict[str, Any]]]) -> list[str]:
    """
    Env steps to reach the env's threshold (:data:`THRESHOLDS`), read off the evaluations: where the IQM curve first
    reaches it, and per run where its own curve first does (median over all runs, and how many runs never do).

    :param env: Environment id
    :param by_algo: Runs per algorithm
    :return: Markdown lines (empty for an env without threshold)
    """
    threshold = threshold_of(env)
    if threshold is None:
        return []
    lines = [
        f"Steps to threshold (return >= {threshold:g}, {THRESHOLDS[env].source}): the first evaluation step at which "
        "the IQM curve reaches it, and per run the first step at which the run does (median over all runs, a run "
        "that never reaches it counting as never).",
        "",
        "| algo | IQM curve reaches at | median over runs | runs that reach it |",
        "|---|---:|---:|---:|",
    ]
    for algo in algo_order(list(by_algo)):
        runs = by_algo[algo]
        common, values = curve_matrix(runs)
        curve = np.atleast_1d(iqm(values, axis=0)) if common else np.array([])
        at_iqm = first_reach(common, list(curve), threshold)
        reach = [first_reach(r["eval"]["timesteps"], r["eval"]["mean_return"], threshold) for r in runs]
        lines.append(
            f"| {algo} | {_steps(at_iqm)} | {_steps(median_to_reach(reach))} | "
            f"{sum(x is not None for x in reach)}/{len(runs)} |"
        )
    return [*lines, ""]


def _steps(value: float | None) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{int(value):,}"


def _seconds(value: float | None) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{value:,.0f}"


def time_to_threshold_table(env: str, by_algo: dict[str, list[dict[str, Any]]]) -> list[str]:
    """
    Training seconds (``eval.train_s``: wall-clock time of ``learn()``, evaluations excluded) at which each run first
    reaches the env's threshold, median over all runs, and the training seconds of the whole budget.

    :param env: Environment id
    :param by_algo: Runs per algorithm
    :return: Markdown lines (empty when no run of the env records training seconds)
    """
    timed = {algo: runs for algo, runs in by_algo.items() if has_train_seconds(runs)}
    if not timed:
        return []
    threshold = threshold_of(env)
    reach_header = f"median s to reach {threshold:g} | runs that reach it | " if threshold is not None else ""
    lines = [
        "Time to threshold: training seconds on this machine before the first evaluation at which a run reaches "
        "the threshold (median over all runs, a run that never reaches it counting as never), and for the whole "
        "budget. Whether runs shared the machine is under [Machine and versions](#machine-and-versions): compare "
        "algorithms within a folder, not with other machines.",
        "",
        f"| algo | seeds | {reach_header}median s, whole budget | env steps per training s |",
        "|---|---:|" + ("---:|---:|" if threshold is not None else "") + "---:|---:|",
    ]
    for algo in algo_order(list(timed)):
        runs = timed[algo]
        total = float(np.median([r["eval"]["train_s"][-1] for r in runs]))
        rate = float(np.median([r["eval"]["timesteps"][-1] / r["eval"]["train_s"][-1] for r in runs]))
        cells = [algo, str(len(runs))]
        if threshold is not None:
            reach = [first_reach(r["eval"]["train_s"], r["eval"]["mean_return"], threshold) for r in runs]
            cells += [_seconds(median_to_reach(reach)), f"{sum(x is not None for x in reach)}/{len(runs)}"]
        cells += [_seconds(total), f"{rate:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def normalised_finals(
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]], references: dict[str, Any]
) -> dict[str, dict[tuple[str, int], np.ndarray]]:
    """
    :param groups: From :func:`group_runs`.
    :param references: ``{env: ReferenceScore}`` (:func:`tuning.scoring.load_reference_scores`).
    :return: ``{algo: {(env, budget): normalised final returns}}`` for the envs with a reference score.
    """
    scores: dict[str, dict[tuple[str, int], np.ndarray]] = {}
    for (env, budget), by_algo in groups.items():
        reference = references.get(env)
        if reference is None:
            continue
        for algo, runs in by_algo.items():
            scores.setdefault(algo, {})[(env, budget)] = np.array([reference.normalise(r["final_return"]) for r in runs])
    return scores


def profile_taus(scores: dict[str, dict[tuple[str, int], np.ndarray]]) -> np.ndarray:
    """
    :param scores: From :func:`normalised_finals`.
    :return: The threshold grid of the profiles: from ``min(0, lowest score)`` to ``max(1.1, highest score)``, so that
        both the random policy (0) and the reference (1) are on it.
    """
    values = np.concatenate([task for by_task in scores.values() for task in by_task.values()])
    low = min(0.0, float(np.floor(values.min() * 10) / 10))
    high = max(1.1, float(np.ceil(values.max() * 10) / 10))
    return np.linspace(low, high, 161)


def plot_performance_profile(
    profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    taus: np.ndarray,
    counts: dict[str, tuple[int, int]],
    path: Path,
    colors: dict[str, Any] | None = None,
) -> None:
    """
    :param profiles: Per algorithm, ``(fractions, low, high)`` from
        :func:`~sb3_ddpg_plus.experiments.stats.performance_profile_ci`.
    :param taus: Their thresholds.
    :param counts: Per algorithm, ``(envs, runs)`` (legend).
    :param path: PNG to write.
    :param colors: Colour per algorithm (:func:`algo_colors`).
    """
    colors = colors or algo_colors(list(profiles))
    fig, ax = _subplots()
    for algo in algo_order(list(profiles)):
        fractions, low, high = profiles[algo]
        style = "--" if algo.startswith("sb3_") else "-"
        n_envs, n_runs = counts[algo]
        label = f"{algo} ({n_envs} env{'s' if n_envs > 1 else ''}, {n_runs} runs)"
        ax.plot(taus, fractions, style, color=colors[algo], label=label, drawstyle="steps-post")
        ax.fill_between(taus, low, high, color=colors[algo], alpha=0.12, linewidth=0, step="post")
    for tau in (0.0, 1.0):
        ax.axvline(tau, color="grey", linestyle=":", linewidth=1)
    ax.set_title(
        "Performance profile over envs: fraction of runs with normalised final score > tau\n"
        "0 = random policy, 1 = rl-zoo3 DDPG at its full budget; 95% stratified bootstrap band",
        fontsize=10,
    )
    ax.set_xlabel("tau (normalised score)")
    ax.set_ylabel("fraction of runs > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def performance_profile_section(
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]],
    out: Path,
    colors: dict[str, Any] | None = None,
    n_boot: int = N_RESAMPLES,
    name: str = "performance_profile.png",
) -> list[str]:
    """
    Performance profiles (Agarwal et al. 2021, section 4.2) of the normalised final scores over all envs of the
    folder: a PNG and a table at a few thresholds.

    :param groups: From :func:`group_runs`.
    :param out: Folder of the PNG.
    :param colors: Colour per algorithm (:func:`algo_colors`).
    :param n_boot: Bootstrap resamples.
    :param name: File name of the PNG.
    :return: Markdown lines of the section.
    """
    from tuning.scoring import DEFAULT_REFERENCE_FILE, load_reference_scores

    references = load_reference_scores()
    scores = normalised_finals(groups, references)
    lines = ["## Performance profile", ""]
    if not scores:
        return [*lines, f"No env of this folder has a reference score in `{_relative(DEFAULT_REFERENCE_FILE)}`.", ""]
    taus = profile_taus(scores)
    profiles = {
        algo: performance_profile_ci(list(by_task.values()), taus, n_resamples=n_boot) for algo, by_task in scores.items()
    }
    counts = {algo: (len(by_task), sum(map(len, by_task.values()))) for algo, by_task in scores.items()}
    plot_performance_profile(profiles, taus, counts, out / name, colors)
    envs = sorted({env for by_task in scores.values() for env, _ in by_task})
    missing = sorted({env for env, _ in groups} - set(envs))
    lines += [
        "Normalised final score of a run: (final return - random) / (reference - random), with the returns of a "
        "uniform random policy and of rl-zoo3's tuned DDPG at its full budget (1M steps on PyBullet, far above the "
        f"budgets here) from `{_relative(DEFAULT_REFERENCE_FILE)}`. For each tau the profile is the fraction of "
        "runs scoring above tau, computed per env and averaged over envs (each env weighs the same); the band is a "
        f"95% stratified bootstrap band ({n_boot:,} resamples). An algorithm's curve covers only the envs it ran on "
        f"(count in the legend): envs here: {', '.join(envs)}"
        + (f"; without reference score, left out: {', '.join(missing)}" if missing else "")
        + ".",
        "",
    ]
    table_taus = [0.25, 0.5, 0.75, 0.9, 1.0]
    lines += [
        "| algo | envs | runs | " + " | ".join(f"> {tau:g}" for tau in table_taus) + " |",
        "|---|---:|---:|" + "---:|" * len(table_taus),
    ]
    for algo in algo_order(list(scores)):
        by_task = list(scores[algo].values())
        fractions, low, high = performance_profile_ci(by_task, table_taus, n_resamples=n_boot)
        cells = [f"{f:.2f} [{lo:.2f}, {hi:.2f}]" for f, lo, hi in zip(fractions, low, high, strict=True)]
        lines.append(f"| {algo} | {counts[algo][0]} | {counts[algo][1]} | " + " | ".join(cells) + " |")
    return [*lines, "", f"![performance profile]({name})", ""]


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1e4 else f"{value:.3g}"


def verdicts(env: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    """
    Plain statements for one (env, budget): best DDPGPlus configuration against SB3 DDPG and TD3, and whether the
    env is solved.

    :param env: Environment id.
    :param rows: Summary rows of that env and budget.
    :return: Markdown bullet lines.
    """
    by_algo = {r["algo"]: r for r in rows}
    plus = [r for r in rows if not r["algo"].startswith("sb3_")]
    lines = []
    if not plus:
        return ["- No DDPGPlus run."]
    best = max(plus, key=lambda r: r["mean"])
    lines.append(
        f"- Best DDPGPlus configuration by mean final return: **{best['algo']}**, {_fmt(best['mean'])} "
        f"± {_fmt(best['std'])} ({best['n_seeds']} seeds)."
    )
    for key, name in ((BASELINE, "SB3 DDPG"), (TD3, "SB3 TD3")):
        other = by_algo.get(key)
        if other is None:
            lines.append(f"- {name} was not run here.")
            continue
        separated = best["iqm_low"] > other["iqm_high"] or best["iqm_high"] < other["iqm_low"]
        strength = "and the IQM intervals do not overlap" if separated else "but the IQM intervals overlap"
        if best["mean"] >= other["mean"]:
            verdict = f"at least as good as {name} ({_fmt(other['mean'])}) on mean, {strength}"
        else:
            verdict = f"**not better than {name}** ({_fmt(other['mean'])} vs {_fmt(best['mean'])}), {strength}"
        lines.append(f"- {best['algo']} is {verdict}.")
    threshold = SOLVED_AT.get(env)
    if threshold is not None:
        solved = [r for r in plus if r["mean"] >= threshold]
        if solved:
            lines.append(
                f"- Solved (mean >= {threshold:g}) by "
                + ", ".join(f"{r['algo']} ({_fmt(r['mean'])}, {r['n_seeds']} seeds)" for r in solved)
                + "."
            )
        else:
            lines.append(f"- **Not solved** (mean >= {threshold:g}) by any DDPGPlus configuration at this budget.")
    return lines


#: The DDPGPlus configuration that the verdict against SB3 TD3 is about: the recommended one, else the drop-in
VERDICT_ALGOS = ("ddpg_plus_recommended", "ddpg_plus")


def poi_verdict(poi: Sequence[float] | None) -> str | None:
    """
    :param poi: Probability of improvement over a baseline with its 95% interval ``(estimate, low, high)``
    :return: ``"beats"`` (the interval is above 0.5), ``"loses"`` (below 0.5) or ``"indistinguishable"`` (it holds
        0.5); ``None`` without a POI
    """
    if poi is None:
        return None
    _, low, high = poi
    if low > 0.5:
        return "beats"
    if high < 0.5:
        return "loses"
    return "indistinguishable"


def td3_verdict_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    """
    Per environment (and budget), whether DDPGPlus beats SB3 TD3, the stronger upstream baseline, by the probability
    of improvement's 95% interval: above 0.5, holding 0.5, or below. About ``ddpg_plus_recommended`` where it ran,
    else the drop-in ``ddpg_plus`` (one configuration chosen before the results, not the best of several).

    :param rows: From :func:`summarize`.
    :return: Markdown lines (empty when no environment has both)
    """
    table = []
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for row in rows:
        if row["poi_td3"] is None or row["algo"] not in VERDICT_ALGOS:
            continue
        others = {r["algo"] for r in rows if (r["env"], r["budget"]) == (row["env"], row["budget"])}
        # (the recommended configuration speaks for DDPGPlus where it ran; the drop-in only where it did not)
        if row["algo"] != VERDICT_ALGOS[0] and VERDICT_ALGOS[0] in others:
            continue
        verdict = poi_verdict(row["poi_td3"])
        assert verdict is not None
        counts[(row["algo"], verdict)] += 1
        table.append(
            f"| {row['env']} | {row['budget']:,} | {row['algo']} ({row['n_seeds']} seeds) | "
            "{:.2f} [{:.2f}, {:.2f}] | ".format(*row["poi_td3"])
            + ("**beats**" if verdict == "beats" else "**loses**" if verdict == "loses" else verdict)
            + " |"
        )
    if not table:
        return []
    lines = [
        "## Against SB3 TD3",
        "",
        "Whether DDPGPlus beats SB3 TD3 (the stronger upstream baseline) on each environment: **beats** when the 95% "
        "interval of the probability of improvement lies above 0.5, **loses** when it lies below, indistinguishable "
        "when it holds 0.5. The configuration judged is `ddpg_plus_recommended` where it ran, else the drop-in "
        "`ddpg_plus` (SB3 DDPG's algorithm and hyperparameters): one configuration fixed in advance, not the best of "
        "the variants.",
        "",
        "| env | budget (steps) | DDPGPlus | POI over SB3 TD3 [95% CI] | verdict |",
        "|---|---:|---|---:|---|",
        *table,
        "",
    ]
    for algo in VERDICT_ALGOS:
        n = sum(count for (name, _), count in counts.items() if name == algo)
        if n:
            lines.append(
                f"- {algo}: beats SB3 TD3 on {counts[(algo, 'beats')]} of {n} environment(s), "
                f"indistinguishable on {counts[(algo, 'indistinguishable')]}, loses on {counts[(algo, 'loses')]}."
            )
    return [*lines, ""]


def checkpoints_for(budget: int, eval_freq: int) -> list[int]:
    """
    :param budget: Env steps of the runs
    :param eval_freq: Their evaluation period
    :return: The steps read off the learning curves: 5k, 10k, 20k, 50k, 100k, ... up to the budget, where evaluated
    """
    marks = [mark for mark in (5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000) if mark <= budget]
    return [mark for mark in marks if mark % eval_freq == 0] or [budget]


def return_at(run: dict[str, Any], step: int) -> float | None:
    """
    :param run: A run record
    :param step: Env steps
    :return: The mean return of the run's evaluation at that step (the first one at or after it), or None
    """
    for timesteps, value in zip(run["eval"]["timesteps"], run["eval"]["mean_return"], strict=True):
        if timesteps >= step:
            return float(value)
    return None


def sample_efficiency_table(env: str, budget: int, by_algo: dict[str, list[dict[str, Any]]]) -> list[str]:
    """
    Returns at fixed points of training, read off the learning curves (the same runs, no extra training): IQM with a
    95% bootstrap interval, and for envs with a solved threshold the fraction of seeds solved at each point.

    :param env: Environment id
    :param budget: Env steps of the runs
    :param by_algo: Runs per algorithm
    :return: Markdown lines (empty when the runs are evaluated only at the end)
    """
    eval_freq = next(iter(by_algo.values()))[0]["eval"]["freq"]
    marks = checkpoints_for(budget, eval_freq)
    if len(marks) < 2:
        return []
    threshold = SOLVED_AT.get(env)
    header = " | ".join(f"{mark // 1000}k" for mark in marks)
    lines = [
        "Sample efficiency: IQM [95% CI] of the evaluation return at each point of training"
        + (f"; below it, seeds solved (>= {threshold:g})" if threshold is not None else "")
        + ".",
        "",
        f"| algo | {header} |",
        "|---|" + "---:|" * len(marks),
    ]
    for algo, runs in by_algo.items():
        cells = []
        for mark in marks:
            values = [value for value in (return_at(run, mark) for run in runs) if value is not None]
            if not values:
                cells.append("-")
                continue
            iqm, low, high = stratified_bootstrap_ci([np.asarray(values)])
            cell = f"{_fmt(float(iqm))} [{_fmt(float(low))}, {_fmt(float(high))}]"
            if threshold is not None:
                cell += f"<br>{sum(value >= threshold for value in values)}/{len(values)} solved"
            cells.append(cell)
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _hyperparams_line(runs: Sequence[dict[str, Any]]) -> str:
    hyperparams = dict(runs[0]["hyperparams"])
    hyperparams.pop("n_timesteps", None)
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in hyperparams.items())


def _overrides_lines(by_algo: dict[str, list[dict[str, Any]]]) -> list[str]:
    """
    :param by_algo: One group's runs by algorithm
    :return: The line saying which overrides its runs applied: one line when every algorithm applied the same, else
        one per set (an algorithm whose own configuration is the point, e.g. the recommended one, may run without them)
    """
    by_overrides: dict[str, list[str]] = {}
    for algo, algo_runs in by_algo.items():
        by_overrides.setdefault(json.dumps(algo_runs[0].get("overrides") or {}), []).append(algo)
    if len(by_overrides) == 1:
        overrides = next(iter(by_overrides))
        return [] if overrides == "{}" else [f"Overrides applied to every algorithm here: `{overrides}`."]
    return [
        f"Overrides applied to {', '.join(algos)}: " + ("none." if overrides == "{}" else f"`{overrides}`.")
        for overrides, algos in by_overrides.items()
    ]


def render_readme(
    runs: Sequence[dict[str, Any]],
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]],
    rows: Sequence[dict[str, Any]],
    plots: dict[tuple[str, int], str],
    out: Path,
    report_command: str,
    time_plots: dict[tuple[str, int], str] | None = None,
    profile_lines: Sequence[str] = (),
) -> str:
    """
    :param runs: All run records.
    :param groups: From :func:`group_runs`.
    :param rows: From :func:`summarize`.
    :param plots: Plot file name per (env, budget).
    :param out: Output folder (for the speed report and GIFs it links).
    :param report_command: The command that made this report.
    :param time_plots: Return-against-time plot file name per (env, budget), where the runs record training seconds.
    :param profile_lines: Sections placed after the TD3 verdicts: the mean normalised score
        (:mod:`benchmarks.aggregate`) and the performance profile (:func:`performance_profile_section`).
    :return: ``README.md`` text.
    """
    from benchmarks.algos import ALGOS

    rows_by_group: dict[tuple[str, int], list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        rows_by_group[(row["env"], row["budget"])].append(row)
    lines = [
        "# Benchmarks: DDPGPlus vs upstream SB3 DDPG and TD3",
        "",
        f"Generated {now_utc()} by `{report_command}` from {len(runs)} runs. Regenerate everything with the commands "
        "under [How to reproduce](#how-to-reproduce).",
        "",
        "Protocol: every algorithm on an environment gets the same training budget (env steps), the same "
        "hyperparameters apart from what its name changes (the RL-Zoo's DDPG/TD3 hyperparameters for that env, plus "
        "the stated overrides), and the same evaluation (`sb3_ddpg_plus/experiments/protocol.py`): on a separate "
        "environment, at step 0, every `eval_freq` env steps and at the end, with the deterministic policy over the "
        "stated number of episodes. The **final return** of a run is the mean return of its last evaluation. "
        "Over seeds we report mean ± sample std, the interquartile mean (IQM) with a "
        "95% stratified bootstrap confidence interval, and the probability of improvement (POI) over SB3 DDPG and over "
        "SB3 TD3 (the stronger upstream baseline): the chance that a run of the algorithm beats a run of the baseline "
        "(0.5 = no difference), with its bootstrap "
        "interval (Agarwal et al., NeurIPS 2021). Learning curves show the IQM over seeds at each evaluation with a 95% "
        "stratified bootstrap band; the performance profile, steps-to-threshold and time-to-threshold tables follow "
        "the same paper's recommendations. With 3-5 seeds the intervals are wide: read overlapping intervals "
        'as "no demonstrated difference". "Best DDPGPlus" is the maximum over the DDPGPlus variants run on that env, '
        "which favours DDPGPlus when several variants run against one SB3 configuration: judge each variant by its own "
        "row.",
        "",
        "## Overview",
        "",
        "| env | budget (steps) | SB3 DDPG | SB3 TD3 | best DDPGPlus | its POI over SB3 DDPG |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for (env, budget), group_rows in rows_by_group.items():
        by_algo = {r["algo"]: r for r in group_rows}
        plus = [r for r in group_rows if not r["algo"].startswith("sb3_")]
        best = max(plus, key=lambda r: r["mean"]) if plus else None

        def cell(row: dict[str, Any] | None) -> str:
            return "-" if row is None else f"{_fmt(row['mean'])} ± {_fmt(row['std'])}"

        poi = best["poi"] if best is not None and best["poi"] is not None else None
        lines.append(
            f"| {env} | {budget:,} | {cell(by_algo.get(BASELINE))} | {cell(by_algo.get(TD3))} | "
            + (f"{best['algo']}: {cell(best)}" if best else "-")
            + f" | {'-' if poi is None else f'{poi[0]:.2f} [{poi[1]:.2f}, {poi[2]:.2f}]'} |"
        )
    lines += ["", *td3_verdict_section(rows), *profile_lines]
    for (env, budget), by_algo in groups.items():
        group_rows = rows_by_group[(env, budget)]
        any_run = next(iter(by_algo.values()))[0]
        lines += [
            f"## {env} ({budget:,} env steps)",
            "",
            f"Evaluation: every {any_run['eval']['freq']:,} steps, {any_run['eval']['n_episodes']} deterministic episodes.",
        ]
        lines += _overrides_lines(by_algo)
        baseline_runs = by_algo.get(BASELINE)
        if baseline_runs:
            lines.append(f"Hyperparameters of sb3_ddpg: `{_hyperparams_line(baseline_runs)}`.")
        lines += [
            "",
            "| algo | seeds | final return mean ± std | IQM [95% CI] | POI over SB3 DDPG [95% CI] | "
            "POI over SB3 TD3 [95% CI] | steps/s | wall s (median) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in group_rows:
            poi = row["poi"]
            lines.append(
                f"| {row['algo']} | {row['n_seeds']} | {_fmt(row['mean'])} ± {_fmt(row['std'])} | {_fmt(row['iqm'])} "
                f"[{_fmt(row['iqm_low'])}, {_fmt(row['iqm_high'])}] | "
                + ("-" if poi is None else f"{poi[0]:.2f} [{poi[1]:.2f}, {poi[2]:.2f}]")
                + " | "
                + ("-" if row["poi_td3"] is None else "{:.2f} [{:.2f}, {:.2f}]".format(*row["poi_td3"]))
                + f" | {row['steps_per_s']:.0f} | {row['wall_time_s']:.0f} |"
            )
        lines += ["", *verdicts(env, group_rows), ""]
        lines += sample_efficiency_table(env, budget, by_algo)
        lines += steps_to_threshold_table(env, by_algo)
        references = REFERENCE_RESULTS.get(env)
        if references:
            lines.append(
                "Published references (other budgets and protocols, for orientation only): "
                + "; ".join(f"{label} {value}" for label, value in references.items())
                + "."
            )
            lines.append("")
        lines += [f"![learning curves {env}]({plots[(env, budget)]})", ""]
        lines += _time_lines(env, budget, by_algo, (time_plots or {}).get((env, budget)))
        gif = out / "gifs" / f"{env}.gif"
        if gif.exists():
            meta_path = gif.with_suffix(".json")
            caption = f"Trained agent on {env}"
            if meta_path.exists():
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                caption = (
                    f"{meta['algo']} (seed {meta['seed']}, {meta['budget']:,} training steps) on {env}: episode "
                    f"return {meta['episode_return']:.1f}. Made by `{meta['command']}`"
                )
            lines += [f"![{env} agent](gifs/{gif.name})", "", caption + ".", ""]
    lines += ["## Algorithms", "", "| key | what it is |", "|---|---|"]
    seen = {run["algo"] for run in runs}
    lines += [f"| {name} | {spec.description} |" for name, spec in ALGOS.items() if name in seen]
    lines += [
        "",
        "All variants start from the zoo's hyperparameters for the env (rl-zoo3's installed `ddpg.yml`/`td3.yml`, "
        "read by `sb3_ddpg_plus/experiments/zoo_hyperparams.py`) and change only what their description says "
        "(`benchmarks/algos.py`); the grid is in `benchmarks/profiles.py`.",
        "",
    ]
    lines += _machine_section(runs)
    lines += ["## How to reproduce", "", "```bash"]
    commands = list(dict.fromkeys(run.get("command", "") for run in runs if run.get("command")))
    lines += commands
    lines.append(report_command)
    gif_dir = out / "gifs"
    if gif_dir.is_dir():
        for meta_path in sorted(gif_dir.glob("*.json")):
            lines.append(json.loads(meta_path.read_text(encoding="utf-8"))["command"])
    if (out / "speed.json").exists():
        lines.append(json.loads((out / "speed.json").read_text(encoding="utf-8"))["command"])
    lines += ["```", ""]
    if (out / "speed.md").exists():
        lines += ["Throughput (env steps/s, updates/s, replay-buffer bytes): [speed.md](speed.md).", ""]
    lines += [
        "Files: `summary.csv` (one row per env and algorithm), `runs.csv` (one row per run), the run files under "
        "the runs folder (evaluation curves, hyperparameters, versions, wall time).",
        "",
    ]
    return "\n".join(lines)


def _time_lines(env: str, budget: int, by_algo: dict[str, list[dict[str, Any]]], plot: str | None) -> list[str]:
    if plot is None:
        return [
            "Return against training time: not available, these runs predate the record of training seconds per "
            "evaluation (`eval.train_s`).",
            "",
        ]
    return [*time_to_threshold_table(env, by_algo), f"![return against training time {env}]({plot})", ""]


def overlapping_runs(runs: Sequence[dict[str, Any]]) -> int:
    """
    :param runs: Run records with ``started`` and ``finished`` times (ISO 8601)
    :return: How many of them ran, at least for a while, at the same time as another run of the list
    """
    spans = [
        (datetime.datetime.fromisoformat(r["started"]), datetime.datetime.fromisoformat(r["finished"]))
        for r in runs
        if r.get("started") and r.get("finished")
    ]
    return sum(
        any(other_start < end and start < other_end for j, (other_start, other_end) in enumerate(spans) if j != i)
        for i, (start, end) in enumerate(spans)
    )


def timing_note(runs: Sequence[dict[str, Any]]) -> list[str]:
    """
    What the training seconds of a folder mean: whose machine, whether runs ran side by side (``--jobs`` of their
    commands, overlapping start and finish times) and how loaded the machine was when they started.

    :param runs: Run records
    :return: Markdown bullet lines
    """
    jobs = sorted({int(match) for r in runs for match in re.findall(r"--jobs[= ](\d+)", r.get("command", ""))})
    overlapping = overlapping_runs(runs)
    cores = sorted({r["machine"]["logical_cores"] for r in runs if r.get("machine")})
    loads = [r["machine"]["load_average"][0] for r in runs if r.get("machine", {}).get("load_average")]
    lines = [
        "- Seconds in this report (wall time, steps/s, time to threshold) are this machine's, one torch thread per "
        "run; training seconds (`eval.train_s`) leave out evaluations."
    ]
    side_by_side = f"- {overlapping} of {len(runs)} runs ran at the same time as another run of this folder (their start "
    side_by_side += "and finish times overlap)"
    if jobs and max(jobs) > 1:
        side_by_side += f"; commands with `--jobs {max(jobs)}` run that many at once"
    elif overlapping:
        # Every command asked for one job, so the overlap comes from commands started side by side.
        side_by_side += "; separate commands (each `--jobs 1`) ran side by side"
    if overlapping:
        side_by_side += f", sharing the machine's {'/'.join(map(str, cores))} logical cores"
    lines.append(side_by_side + ".")
    if loads:
        lines.append(
            f"- Load average (1 min) when the runs started: median {np.median(loads):.1f}, at most {max(loads):.1f} "
            f"on {'/'.join(map(str, cores))} logical cores; above the core count, other processes shared the cores "
            "and the seconds are longer than on an idle machine."
        )
    return lines


def _machine_section(runs: Sequence[dict[str, Any]]) -> list[str]:
    machines = collections.Counter(
        f"{r['machine']['cpu_model']} ({r['machine']['logical_cores']} logical cores)" for r in runs if r.get("machine")
    )
    version_sets = collections.Counter(json.dumps(r.get("versions", {}), sort_keys=True) for r in runs)
    lines = ["## Machine and versions", ""]
    for machine, count in machines.most_common():
        lines.append(f"- {machine}: {count} runs, one torch thread per run.")
    for versions_json, count in version_sets.most_common():
        vers = json.loads(versions_json)
        lines.append(f"- {count} runs with " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".")
    wall = sum(r["wall_time_s"] for r in runs)
    lines += [f"- Total wall time of the runs (training and evaluation): {wall / 60:.1f} min.", *timing_note(runs), ""]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    :param parser: Parser to add the ``report`` options to.
    """
    parser.add_argument(
        "--runs", type=Path, default=RESULTS_DIR / "standard", help="results folder with runs/ (default: standard)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where to write the report (default benchmarks/results)")
    parser.add_argument("--n-boot", type=int, default=N_RESAMPLES, help=f"bootstrap resamples (default {N_RESAMPLES})")
    parser.add_argument(
        "--held-out",
        nargs="+",
        default=[],
        metavar="ENV",
        help="envs the tuning never saw: shown per task in the mean-normalised-score section, kept out of its aggregate",
    )


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    Write ``summary.csv``, ``runs.csv``, the learning-curve PNGs and ``README.md``.

    :param args: Parsed options (see :func:`add_arguments`).
    :return: The summary rows.
    """
    runs = load_runs(args.runs)
    if not runs:
        raise SystemExit(f"no finished runs under {args.runs}")
    groups = group_runs(runs)
    rows = summarize(groups, n_boot=args.n_boot)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_file(out / "summary.csv", summary_csv(rows))
    write_file(out / "runs.csv", runs_csv(runs))
    env_budgets = collections.Counter(env for env, _ in groups)
    colors = algo_colors(sorted({run["algo"] for run in runs}))
    plots, time_plots = {}, {}
    for (env, budget), by_algo in groups.items():
        # The budget goes into the name only when an env was run at several budgets.
        suffix = f"{env}.png" if env_budgets[env] == 1 else f"{env}_{budget}.png"
        plot_curves(env, budget, by_algo, out / f"curves_{suffix}", colors, n_boot=args.n_boot)
        plots[(env, budget)] = f"curves_{suffix}"
        if plot_curves(env, budget, by_algo, out / f"time_{suffix}", colors, n_boot=args.n_boot, against_time=True):
            time_plots[(env, budget)] = f"time_{suffix}"
    from benchmarks.aggregate import section_from_groups

    profile_lines = [
        *section_from_groups(groups, args.held_out, n_resamples=args.n_boot),
        *performance_profile_section(groups, out, colors, n_boot=args.n_boot),
    ]
    readme = render_readme(runs, groups, rows, plots, out, command_line(), time_plots, profile_lines)
    write_file(out / "README.md", readme)
    print(f"[report] {len(runs)} runs, {len(rows)} rows -> {out / 'summary.csv'}, {out / 'README.md'}")
    return rows
