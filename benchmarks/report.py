"""
Report of a benchmark grid: ``python -m benchmarks report [--runs benchmarks/results/standard]``.

Reads the run files written by :mod:`benchmarks.runner` and writes, into ``--out`` (default ``benchmarks/results``):
``summary.csv`` (``env,algo,n_seeds,budget,mean,std,iqm,iqm_low,iqm_high``), ``runs.csv`` (one row per run),
``curves_<env>.png`` (mean evaluation return and its 95% bootstrap band per algorithm) and ``README.md``. The
statistics (IQM, stratified bootstrap intervals, probability of improvement) are
:mod:`sb3_ddpg_plus.experiments.stats`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, command_line, now_utc
from sb3_ddpg_plus.experiments.records import write_file
from sb3_ddpg_plus.experiments.stats import N_RESAMPLES, mean_std, probability_of_improvement_ci, stratified_bootstrap_ci

SUMMARY_COLUMNS = ("env", "algo", "n_seeds", "budget", "mean", "std", "iqm", "iqm_low", "iqm_high")
BASELINE = "sb3_ddpg"
TD3 = "sb3_td3"
#: Return at which an env counts as solved (gymnasium's ``reward_threshold``), for the envs where the report says so.
SOLVED_AT = {"MountainCarContinuous-v0": 90.0}

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


def plot_curves(env: str, budget: int, by_algo: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """
    Learning curves: per algorithm, the mean over seeds of the evaluation return and its 95% bootstrap band.

    :param env: Environment id (title).
    :param budget: Env steps (title).
    :param by_algo: Runs per algorithm.
    :param path: PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for algo in algo_order(list(by_algo)):
        runs = by_algo[algo]
        # Evaluation points that every seed has (they agree unless a run used other settings).
        common = sorted(set.intersection(*(set(r["eval"]["timesteps"]) for r in runs)))
        if not common:
            continue
        values = np.array(
            [[dict(zip(r["eval"]["timesteps"], r["eval"]["mean_return"], strict=True))[t] for t in common] for r in runs]
        )
        mean, low, high = stratified_bootstrap_ci([values], np.mean)
        style = "--" if algo.startswith("sb3_") else "-"
        (line,) = ax.plot(common, mean, style, label=f"{algo} ({len(runs)} seeds)")
        ax.fill_between(common, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(f"{env}, {budget:,} env steps\nmean evaluation return over seeds, 95% bootstrap band", fontsize=10)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return (deterministic, per evaluation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_file(path, buffer.getvalue())


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


def render_readme(
    runs: Sequence[dict[str, Any]],
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]],
    rows: Sequence[dict[str, Any]],
    plots: dict[tuple[str, int], str],
    out: Path,
    report_command: str,
) -> str:
    """
    :param runs: All run records.
    :param groups: From :func:`group_runs`.
    :param rows: From :func:`summarize`.
    :param plots: Plot file name per (env, budget).
    :param out: Output folder (for the speed report and GIFs it links).
    :param report_command: The command that made this report.
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
        "interval (Agarwal et al., NeurIPS 2021). With 3-5 seeds the intervals are wide: read overlapping intervals "
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
    lines.append("")
    for (env, budget), by_algo in groups.items():
        group_rows = rows_by_group[(env, budget)]
        any_run = next(iter(by_algo.values()))[0]
        lines += [
            f"## {env} ({budget:,} env steps)",
            "",
            f"Evaluation: every {any_run['eval']['freq']:,} steps, {any_run['eval']['n_episodes']} deterministic episodes.",
        ]
        overrides = any_run.get("overrides") or {}
        if overrides:
            lines.append(f"Overrides applied to every algorithm here: `{json.dumps(overrides)}`.")
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
        references = REFERENCE_RESULTS.get(env)
        if references:
            lines.append(
                "Published references (other budgets and protocols, for orientation only): "
                + "; ".join(f"{label} {value}" for label, value in references.items())
                + "."
            )
            lines.append("")
        lines += [f"![learning curves {env}]({plots[(env, budget)]})", ""]
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
    lines += [f"- Total wall time of the runs (training and evaluation): {wall / 60:.1f} min.", ""]
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
    plots = {}
    for (env, budget), by_algo in groups.items():
        # The budget goes into the name only when an env was run at several budgets.
        name = f"curves_{env}.png" if env_budgets[env] == 1 else f"curves_{env}_{budget}.png"
        plot_curves(env, budget, by_algo, out / name)
        plots[(env, budget)] = name
    write_file(out / "README.md", render_readme(runs, groups, rows, plots, out, command_line()))
    print(f"[report] {len(runs)} runs, {len(rows)} rows -> {out / 'summary.csv'}, {out / 'README.md'}")
    return rows
