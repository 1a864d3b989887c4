"""
Grid runner: environment x algorithm x seed, with one evaluation protocol for all.

``python -m benchmarks run --profile standard --jobs 2`` runs a profile (:mod:`benchmarks.profiles`); ``--envs``,
``--algos``, ``--seeds`` and ``--budget`` select or override. Each run writes
``<out>/runs/<env>/<algo>/steps<budget>_seed<seed>.json`` atomically; finished runs are skipped (resume), and
``--shard i/n`` takes every n-th run starting at i (0-based), so machines of a SLURM array can share one grid and
their result folders merge by copying.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, command_line, now_utc
from benchmarks.profiles import PROFILES, Entry
from sb3_ddpg_plus.experiments.protocol import EVAL_SEED_OFFSET, TrainingResult, train_and_evaluate
from sb3_ddpg_plus.experiments.records import system_info, write_json

#: Version of the run-file layout; the report refuses files of another schema.
SCHEMA = 1


@dataclass(frozen=True)
class Task:
    """
    One run of the grid.

    :param env: Environment id.
    :param algo: Algorithm registry key.
    :param seed: Seed.
    :param budget: Env steps of training.
    :param eval_freq: Evaluate every this many env steps.
    :param n_eval_episodes: Deterministic episodes per evaluation.
    :param overrides: Hyperparameters changed for every algorithm of the entry (stated in the report).
    :param save_model: Save the trained model beside the results (for ``benchmarks gif``).
    :param profile: Name of the profile the task comes from (``"custom"`` without one).
    """

    env: str
    algo: str
    seed: int
    budget: int
    eval_freq: int
    n_eval_episodes: int
    overrides: tuple[tuple[str, Any], ...] = ()
    save_model: bool = False
    profile: str = "custom"

    @property
    def label(self) -> str:
        """Short name for progress output."""
        return f"{self.env} {self.algo} seed {self.seed}"


def run_path(out: Path, env: str, algo: str, budget: int, seed: int) -> Path:
    """
    :param out: Results folder.
    :param env: Environment id.
    :param algo: Algorithm key.
    :param budget: Env steps.
    :param seed: Seed.
    :return: Where that run's JSON lives.
    """
    return out / "runs" / env / algo / f"steps{budget}_seed{seed}.json"


def model_path(out: Path, env: str, algo: str, budget: int, seed: int) -> Path:
    """
    :param out: Results folder.
    :param env: Environment id.
    :param algo: Algorithm key.
    :param budget: Env steps.
    :param seed: Seed.
    :return: Where that run's trained model (zip) is saved when asked for.
    """
    return out / "models" / env / algo / f"steps{budget}_seed{seed}.zip"


def is_done(path: Path) -> bool:
    """
    :param path: A run file.
    :return: Whether it exists and records a finished run (a failed or unreadable one is run again).
    """
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file).get("status") == "done"
    except (OSError, ValueError):
        return False


def expand(entries: Sequence[Entry], profile: str = "custom") -> list[Task]:
    """
    List the runs of some grid entries, seed-major (every algorithm's seed 0 before any seed 1), so that a grid
    stopped half way has comparable seed counts for all algorithms.

    :param entries: Grid entries.
    :param profile: Profile name recorded in each task.
    :return: The tasks, in a deterministic order (which ``--shard`` relies on).
    """
    tasks = [
        Task(
            env=entry.env,
            algo=algo,
            seed=seed,
            budget=entry.budget,
            eval_freq=entry.eval_freq,
            n_eval_episodes=entry.n_eval_episodes,
            overrides=tuple(sorted(entry.overrides.items())),
            save_model=entry.save_model,
            profile=profile,
        )
        for entry in entries
        for algo in entry.algos
        for seed in entry.seeds
    ]
    env_order = {entry.env: i for i, entry in enumerate(entries)}
    algo_order = {algo: i for entry in entries for i, algo in enumerate(entry.algos)}
    return sorted(tasks, key=lambda t: (t.seed, env_order[t.env], algo_order[t.algo]))


def parse_shard(text: str) -> tuple[int, int]:
    """
    :param text: ``"i/n"`` with ``0 <= i < n``.
    :return: ``(i, n)``.
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def shard(tasks: Sequence[Task], index: int, count: int) -> list[Task]:
    """
    :param tasks: All tasks, in :func:`expand` order.
    :param index: This shard, ``0 <= index < count``.
    :param count: Number of shards.
    :return: Every ``count``-th task starting at ``index`` (round robin keeps shards' costs similar).
    """
    return [task for i, task in enumerate(tasks) if i % count == index]


def parse_seeds(text: str) -> list[int]:
    """
    :param text: ``"0,1,2"``, ``"0-4"`` or a mix (``"0-2,7"``).
    :return: The seeds.
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            low, high = part.split("-", 1)
            seeds.extend(range(int(low), int(high) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def run_task(task: Task, out: Path, command: str = "") -> dict[str, Any]:
    """
    Train one model under the experiments' protocol (:mod:`sb3_ddpg_plus.experiments.protocol`: evaluations at step 0,
    every ``eval_freq`` env steps and at the end, on a separate env seeded ``seed + EVAL_SEED_OFFSET``, with
    ``n_eval_episodes`` deterministic episodes) and write its run file; the final return is the mean return of the
    last evaluation.

    :param task: The run.
    :param out: Results folder.
    :param command: Command line recorded in the file.
    :return: The record written.
    """
    import torch as th

    from benchmarks.algos import deep_merge, get_algo, hyperparams_for, make_model

    # One thread per process: on a small machine, parallel single-thread runs beat one multi-thread run.
    th.set_num_threads(1)
    hyperparams = hyperparams_for(task.algo, task.env, task.budget)
    if hyperparams is None:
        raise FileNotFoundError(f"{task.algo} is not available for {task.env} (no tuned hyperparameters)")
    hyperparams = deep_merge(hyperparams, dict(task.overrides))

    def progress(result: TrainingResult) -> None:
        timesteps, train_s = result.timesteps[-1], result.train_s[-1]
        rate = timesteps / train_s if train_s > 0 and timesteps else 0.0
        print(
            f"[{task.label}] {timesteps}/{task.budget} steps: eval {result.mean_returns[-1]:.1f} "
            f"± {result.std_returns[-1]:.1f} ({rate:.0f} steps/s)",
            flush=True,
        )

    started = now_utc()
    result = train_and_evaluate(
        hyperparams,
        task.env,
        task.seed,
        task.budget,
        task.eval_freq,
        task.n_eval_episodes,
        make_model=lambda env: make_model(task.algo, env, hyperparams, task.seed),
        on_evaluation=progress,
        keep_model=True,
    )
    model = result.model
    assert model is not None
    if task.save_model:
        path = model_path(out, task.env, task.algo, task.budget, task.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    record = {
        "schema": SCHEMA,
        "status": "done",
        "env": task.env,
        "algo": task.algo,
        "algo_description": get_algo(task.algo).description,
        "algo_class": f"{type(model).__module__}.{type(model).__name__}",
        "seed": task.seed,
        "budget": task.budget,
        "profile": task.profile,
        "hyperparams": hyperparams,
        "overrides": dict(task.overrides),
        "eval": {
            "freq": task.eval_freq,
            "n_episodes": task.n_eval_episodes,
            "deterministic": True,
            "env_seed": task.seed + EVAL_SEED_OFFSET,
            "timesteps": result.timesteps,
            "train_s": result.train_s,
            "mean_return": result.mean_returns,
            "std_return": result.std_returns,
            "returns": result.returns,
        },
        "final_return": result.score(),
        "train_episodes": {"timesteps": result.episode_timesteps, "returns": result.episode_returns},
        "wall_time_s": round(result.wall_s, 2),
        "eval_time_s": round(result.eval_s, 2),
        "steps_per_s": round(result.num_timesteps / max(result.wall_s - result.eval_s, 1e-9), 2),
        "started": started,
        "finished": now_utc(),
        "command": command,
        **system_info(),
    }
    write_json(run_path(out, task.env, task.algo, task.budget, task.seed), record)
    return record


def _worker(task: Task, out: Path, command: str) -> tuple[Task, dict[str, Any] | None, str | None]:
    """Process-pool entry: never raises, so one failed run does not stop the grid."""
    try:
        return task, run_task(task, out, command), None
    except Exception:
        error = traceback.format_exc()
        write_json(
            run_path(out, task.env, task.algo, task.budget, task.seed),
            {"schema": SCHEMA, "status": "failed", **asdict(task), "error": error, "finished": now_utc()},
        )
        return task, None, error


def run_grid(tasks: Sequence[Task], out: Path, jobs: int = 1, force: bool = False, command: str = "") -> tuple[int, int, int]:
    """
    Run the tasks that are not finished yet.

    :param tasks: The runs.
    :param out: Results folder.
    :param jobs: Parallel processes (1: run in this process).
    :param force: Run finished tasks again.
    :param command: Command line recorded in each run file.
    :return: ``(finished now, skipped as already done, failed)``.
    """
    todo = [t for t in tasks if force or not is_done(run_path(out, t.env, t.algo, t.budget, t.seed))]
    skipped = len(tasks) - len(todo)
    print(f"[runner] {len(tasks)} runs: {skipped} already done (skipped), {len(todo)} to run, {jobs} job(s)", flush=True)
    done = failed = 0
    start = time.perf_counter()

    def report(task: Task, record: dict[str, Any] | None, error: str | None) -> None:
        nonlocal done, failed
        elapsed = time.perf_counter() - start
        if record is None:
            failed += 1
            print(f"[runner] FAILED {task.label}:\n{error}", flush=True)
        else:
            done += 1
            print(
                f"[runner] {done + failed}/{len(todo)} {task.label}: final {record['final_return']:.1f}, "
                f"{record['wall_time_s']:.0f}s, {record['steps_per_s']:.0f} steps/s [elapsed {elapsed:.0f}s]",
                flush=True,
            )

    if jobs <= 1:
        for task in todo:
            report(*_worker(task, out, command))
    else:
        # A fresh process per run ("spawn", one task per child): no state or memory carried between runs.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, max_tasks_per_child=1) as pool:
            futures = [pool.submit(_worker, task, out, command) for task in todo]
            for future in concurrent.futures.as_completed(futures):
                report(*future.result())
    print(f"[runner] finished {done}, skipped {skipped}, failed {failed} in {time.perf_counter() - start:.0f}s", flush=True)
    return done, skipped, failed


def build_entries(args: argparse.Namespace) -> tuple[list[Entry], str]:
    """
    :param args: Parsed ``run`` options.
    :return: The grid entries selected by the options, and the profile name.
    """
    from benchmarks.algos import ALGOS

    if args.profile is not None:
        entries = list(PROFILES[args.profile].entries)
        if args.envs:
            entries = [e for e in entries if e.env in args.envs]
        if args.algos:
            entries = [e.replace(algos=tuple(a for a in e.algos if a in args.algos)) for e in entries]
    else:
        if not (args.envs and args.algos and args.budget):
            raise SystemExit("without --profile, give --envs, --algos and --budget (and optionally --seeds)")
        for algo in args.algos:
            if algo not in ALGOS:
                raise SystemExit(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
        budget = args.budget
        entries = [
            Entry(env=env, algos=tuple(args.algos), seeds=(0,), budget=budget, eval_freq=max(budget // 10, 1))
            for env in args.envs
        ]
    entries = [e.replace(**_cli_changes(args)) for e in entries]
    return _available(entries), args.profile or "custom"


def _cli_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The entry fields that command-line options override."""
    changes: dict[str, Any] = {}
    if args.seeds is not None:
        changes["seeds"] = tuple(parse_seeds(args.seeds))
    if args.budget is not None:
        changes["budget"] = args.budget
    if args.eval_freq is not None:
        changes["eval_freq"] = args.eval_freq
    if args.n_eval_episodes is not None:
        changes["n_eval_episodes"] = args.n_eval_episodes
    if args.save_models:
        changes["save_model"] = True
    return changes


def _available(entries: Sequence[Entry]) -> list[Entry]:
    """Drop algorithms that do not exist for an env (ddpg_plus_tuned without a tuned file), saying so."""
    from benchmarks.algos import hyperparams_for

    kept = []
    for entry in entries:
        algos = []
        for algo in entry.algos:
            if hyperparams_for(algo, entry.env) is None:
                print(f"[runner] skipping {algo} on {entry.env}: not available (no tuned hyperparameters)", flush=True)
            else:
                algos.append(algo)
        if algos:
            kept.append(entry.replace(algos=tuple(algos)))
    return kept


def default_out(profile: str | None) -> Path:
    """
    :param profile: Profile name or ``None``.
    :return: Default results folder: ``benchmarks/results/<profile>`` (``custom`` without a profile).
    """
    return RESULTS_DIR / (profile or "custom")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    :param parser: Parser to add the ``run`` options to.
    """
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="grid to run (see benchmarks/profiles.py)")
    parser.add_argument("--envs", nargs="+", default=None, help="environment ids (filter a profile, or the grid)")
    parser.add_argument("--algos", nargs="+", default=None, help="algorithm keys (filter a profile, or the grid)")
    parser.add_argument("--seeds", default=None, help="seeds, e.g. 0-4 or 0,3 (overrides the profile's)")
    parser.add_argument("--budget", type=int, default=None, help="env steps per run (overrides the profile's)")
    parser.add_argument("--eval-freq", type=int, default=None, help="evaluate every N env steps")
    parser.add_argument("--n-eval-episodes", type=int, default=None, help="deterministic episodes per evaluation")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes, each with 1 torch thread")
    parser.add_argument("--shard", type=parse_shard, default=None, help="i/n: run every n-th run starting at i (0-based)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<profile>)")
    parser.add_argument("--force", action="store_true", help="run again runs that are already done")
    parser.add_argument("--save-models", action="store_true", help="save every trained model (for benchmarks gif)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and exit")


def main(args: argparse.Namespace) -> None:
    """
    Run the selected grid.

    :param args: Parsed options (see :func:`add_arguments`).
    """
    entries, profile = build_entries(args)
    tasks = expand(entries, profile)
    if args.shard is not None:
        tasks = shard(tasks, *args.shard)
    out = args.out if args.out is not None else default_out(args.profile)
    if args.dry_run:
        for task in tasks:
            state = "done" if is_done(run_path(out, task.env, task.algo, task.budget, task.seed)) else "todo"
            print(f"{state}\t{task.env}\t{task.algo}\tseed {task.seed}\t{task.budget} steps")
        print(f"[runner] {len(tasks)} runs -> {out}")
        return
    _, _, failed = run_grid(tasks, out, jobs=args.jobs, force=args.force, command=command_line())
    if failed:
        raise SystemExit(f"{failed} run(s) failed (their files record the error; run again to retry)")


if __name__ == "__main__":  # pragma: no cover - use ``python -m benchmarks run``
    cli_parser = argparse.ArgumentParser(prog="python -m benchmarks.runner")
    add_arguments(cli_parser)
    main(cli_parser.parse_args())
