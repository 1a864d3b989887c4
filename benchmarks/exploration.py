"""
Exploration experiments (issue: parameter-space noise done right), each writing a result file with the command,
machine and versions:

- ``param-noise-distance``: DDPGPlus with adaptive parameter noise on Pendulum-v1; records every adaptation's measured
  distance and sigma (from the logger) and reports how close the distance settles to ``desired_action_stddev``. One
  ``learn()`` call, no evaluation: it reads the logger, not returns.
- ``mountaincar``: MountainCarContinuous-v0, where doing nothing scores 0 and small Gaussian noise never finds the goal.
  DDPGPlus with parameter noise and with OU noise against upstream SB3 DDPG with Gaussian noise (sigma 0.1, the
  zoo's default noise), several seeds, same budget, networks and evaluation. Each run is the experiments' protocol
  (:func:`sb3_ddpg_plus.experiments.protocol.train_and_evaluate`, as ``python -m benchmarks run`` and ``tuning/``):
  one ``learn()`` call, evaluated (``--eval-episodes`` deterministic episodes, on a separate env seeded
  ``seed + 10000``) at step 0, every ``--eval-freq`` steps and at the end, with the training episodes recorded; the
  statistics are :mod:`sb3_ddpg_plus.experiments.stats`'s.

  The committed ``results/mountaincar_exploration.{md,json}`` came from this module's older loop (one ``learn()`` call
  per ``--eval-freq`` steps, each followed by an evaluation, none at step 0), not from the protocol. Under the
  protocol the numbers change for the same seeds: the evaluation env first plays the episodes of the step-0
  evaluation, so later evaluations see other episodes; each evaluation happens inside ``learn()``, before the
  gradient step of its last env step; and training is one ``learn()`` call instead of one per evaluation. Rerunning
  the committed command regenerates the file under the protocol (about 50 minutes of CPU: 15 runs of about 3 minutes
  at one thread each).

Usage::

    python -m benchmarks.exploration param-noise-distance --steps 30000
    python -m benchmarks.exploration mountaincar --seeds 0 1 2 3 4 --budget 30000 --eval-freq 10000 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, command_line, now_utc

MOUNTAINCAR = "MountainCarContinuous-v0"
MOUNTAINCAR_CONFIGS = ("ddpg_plus_param", "ddpg_plus_ou", "sb3_ddpg_gaussian")
#: A MountainCar run is solved when its final evaluation's mean return reaches this (the goal pays 100, minus the
#: action cost).
SOLVED = 90.0


def _environment() -> dict[str, str]:
    from sb3_ddpg_plus.experiments.records import system_info

    info = system_info(packages=())
    machine = info["machine"]
    return {
        "machine": f"{machine['cpu_model']}, {machine['logical_cores']} logical cores, {machine['platform']}",
        "versions": ", ".join(f"{name} {version}" for name, version in info["versions"].items()),
        "command": command_line(),
        "date": now_utc(),
    }


def _write(out: Path, name: str, text: str, data: dict[str, Any]) -> None:
    from sb3_ddpg_plus.experiments.records import write_file, write_json

    write_file(out / f"{name}.md", text)
    write_json(out / f"{name}.json", data)
    print(text)


# ----------------------------------------------------------------------------------------------- parameter noise
def param_noise_distance(steps: int, seed: int, desired: float, out: Path = RESULTS_DIR) -> None:
    """
    :param steps: Training steps on Pendulum-v1
    :param seed: Seed
    :param desired: ``desired_action_stddev``
    :param out: Folder of the result files
    """
    import torch as th
    from stable_baselines3.common.logger import Logger

    from sb3_ddpg_plus import DDPGPlus

    th.set_num_threads(1)

    class Recorder(Logger):
        def __init__(self) -> None:
            super().__init__(folder=None, output_formats=[])
            self.distances: list[float] = []
            self.stds: list[float] = []

        def record(self, key: str, value: Any, exclude: Any = None) -> None:
            if key == "rollout/param_noise_distance":
                self.distances.append(float(value))
            if key == "rollout/param_noise_std" and len(self.stds) < len(self.distances):
                self.stds.append(float(value))
            super().record(key, value, exclude)

    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        param_noise={"initial_stddev": desired, "desired_action_stddev": desired},
        learning_starts=1000,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=seed,
    )
    recorder = Recorder()
    model.set_logger(recorder)
    model.learn(steps)
    distances = np.array(recorder.distances)
    half = distances[len(distances) // 2 :]
    window = 20
    rolling = np.convolve(distances, np.ones(window) / window, mode="valid")
    within = np.abs(rolling - desired) / desired <= 0.2
    env = _environment()
    text = "\n".join(
        [
            "# Adaptive parameter noise on Pendulum-v1: measured action distance vs desired",
            "",
            f"- Command: `{env['command']}`",
            f"- Machine: {env['machine']}; {env['versions']}; {env['date']}",
            f"- DDPGPlus, [64, 64] networks with actor layer norm (default with parameter noise), learning_starts 1000, "
            f"adaptation every {model.param_noise_adaption_interval} gradient steps, seed {seed}, {steps} steps.",
            "",
            "| | value |",
            "|---|---:|",
            f"| desired_action_stddev | {desired} |",
            f"| adaptations | {len(distances)} |",
            f"| mean distance, second half of training | {half.mean():.4f} ({(half.mean() - desired) / desired:+.1%}) |",
            f"| std of distance, second half | {half.std():.4f} |",
            f"| final sigma (parameter std) | {model.param_noise.current_stddev:.4f} |",
            f"| share of {window}-adaptation rolling means within 20% of desired, second half | "
            f"{within[len(within) // 2 :].mean():.0%} |",
            "",
            "Each measurement is a fresh perturbation of the current actor on a replay batch; the actor keeps training, "
            "so the distance fluctuates around the target rather than converging exactly.",
            "",
        ]
    )
    _write(
        out,
        "param_noise_pendulum",
        text,
        {**env, "desired": desired, "distances": distances.tolist(), "stds": recorder.stds},
    )


# ----------------------------------------------------------------------------------------------- MountainCar
def _mountaincar_model(config: str, env: Any, seed: int, net_arch: list[int]) -> Any:
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_ddpg_plus import DDPGPlus

    common = dict(policy_kwargs=dict(net_arch=net_arch), seed=seed, learning_starts=100, batch_size=256)
    if config == "sb3_ddpg_gaussian":
        return DDPG("MlpPolicy", env, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), **common)
    if config == "ddpg_plus_param":
        return DDPGPlus("MlpPolicy", env, param_noise={"initial_stddev": 0.5, "desired_action_stddev": 0.5}, **common)
    if config == "ddpg_plus_ou":
        return DDPGPlus("MlpPolicy", env, action_noise={"type": "ornstein-uhlenbeck", "sigma": 0.5}, **common)
    raise ValueError(f"Unknown configuration {config!r}, expected one of {MOUNTAINCAR_CONFIGS}")


def _mountaincar_run(
    config: str, seed: int, budget: int, eval_freq: int, n_eval_episodes: int, net_arch: list[int]
) -> dict[str, Any]:
    """One run under the experiments' protocol; a process-pool entry, hence the plain-data result."""
    import torch as th

    from sb3_ddpg_plus.experiments.protocol import train_and_evaluate

    th.set_num_threads(1)
    # Normalised observations for every configuration: the velocity (|v| < 0.07) would otherwise be invisible next
    # to the position, and a perturbed actor could not depend on it (baselines' DDPG normalises observations too).
    # Only the runner key is given: the models are not built from plain data (upstream DDPG takes noise objects)
    runner = {"normalize": {"norm_obs": True, "norm_reward": False}}
    result = train_and_evaluate(
        runner,
        MOUNTAINCAR,
        seed,
        budget,
        eval_freq,
        n_eval_episodes,
        make_model=lambda env: _mountaincar_model(config, env, seed, net_arch),
    )
    return {
        "config": config,
        "seed": seed,
        "curve": [[step, mean] for step, mean in zip(result.timesteps, result.mean_returns, strict=True)],
        "eval_returns": result.returns,
        "final": result.score(),
        "training_episodes_reaching_goal": sum(value > 0 for value in result.episode_returns),
        "training_episodes": len(result.episode_returns),
        "wall_time_s": round(result.wall_s, 2),
        "eval_time_s": round(result.eval_s, 2),
    }


def mountaincar(
    seeds: list[int],
    budget: int,
    eval_freq: int,
    jobs: int,
    net_arch: list[int],
    n_eval_episodes: int = 10,
    out: Path = RESULTS_DIR,
) -> None:
    """
    :param seeds: Seeds (one run per seed and configuration)
    :param budget: Training steps per run
    :param eval_freq: Evaluate every this many steps
    :param jobs: Parallel processes
    :param net_arch: Network sizes (the same for every configuration)
    :param n_eval_episodes: Deterministic episodes per evaluation
    :param out: Folder of the result files
    """
    from sb3_ddpg_plus.experiments.protocol import EVAL_SEED_OFFSET
    from sb3_ddpg_plus.experiments.stats import mean_std, stratified_bootstrap_ci

    tasks = [(config, seed) for seed in seeds for config in MOUNTAINCAR_CONFIGS]
    results: list[dict[str, Any]] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_mountaincar_run, c, s, budget, eval_freq, n_eval_episodes, net_arch) for c, s in tasks]
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results.append(result)
            summary = f"{result['config']} seed {result['seed']}: final {result['final']:.1f}"
            print(f"{summary} ({result['wall_time_s']:.0f} s)", flush=True)
    env = _environment()
    lines = [
        "# MountainCarContinuous-v0: exploration with parameter noise and OU noise vs SB3 DDPG with Gaussian noise",
        "",
        f"- Command: `{env['command']}`",
        f"- Machine: {env['machine']}; {env['versions']}; {env['date']}",
        f"- Budget {budget} steps per run; the experiments' protocol (`sb3_ddpg_plus/experiments/protocol.py`): "
        f"evaluation at step 0, every {eval_freq} steps and at the end with {n_eval_episodes} deterministic episodes "
        f"on a separate env (seed + {EVAL_SEED_OFFSET}); networks {net_arch} for every configuration, learning_starts "
        "100, batch 256, other hyperparameters at SB3's DDPG defaults; observations normalised with "
        "`VecNormalize(norm_obs=True, norm_reward=False)` for every configuration. Solved means a final mean "
        f"evaluation return >= {SOLVED:g}.",
        "- Configurations: `ddpg_plus_param` = DDPGPlus with adaptive parameter noise (initial and desired std 0.5, "
        "actor layer norm); `ddpg_plus_ou` = DDPGPlus with OU noise sigma 0.5; `sb3_ddpg_gaussian` = upstream SB3 DDPG "
        "with `NormalActionNoise(sigma=0.1)`.",
        "",
        f"| configuration | seeds solved (final >= {SOLVED:g}) | final returns by seed | mean final "
        "| IQM final [95% CI] | training episodes reaching the goal |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for config in MOUNTAINCAR_CONFIGS:
        runs = sorted((r for r in results if r["config"] == config), key=lambda r: r["seed"])
        finals = [r["final"] for r in runs]
        mean, _ = mean_std(finals)
        iqm, low, high = stratified_bootstrap_ci([finals])
        solved = sum(f >= SOLVED for f in finals)
        reached = sum(r["training_episodes_reaching_goal"] for r in runs)
        episodes = sum(r["training_episodes"] for r in runs)
        lines.append(
            f"| {config} | {solved}/{len(finals)} | {', '.join(f'{f:.1f}' for f in finals)} | {mean:.1f} "
            f"| {iqm:.1f} [{low:.1f}, {high:.1f}] | {reached}/{episodes} |"
        )
    lines.append("")
    protocol = {"n_eval_episodes": n_eval_episodes, "eval_freq": eval_freq, "eval_seed_offset": EVAL_SEED_OFFSET}
    _write(out, "mountaincar_exploration", "\n".join(lines), {**env, "protocol": protocol, "runs": results})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exploration", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    distance = commands.add_parser("param-noise-distance", help="Pendulum-v1: does the distance settle near the target?")
    distance.add_argument("--steps", type=int, default=10_000, help="training steps")
    distance.add_argument("--seed", type=int, default=0)
    distance.add_argument("--desired", type=float, default=0.2, help="desired_action_stddev")
    car = commands.add_parser("mountaincar", help="MountainCarContinuous-v0: which exploration solves it?")
    car.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    car.add_argument("--budget", type=int, default=15_000, help="training steps per run")
    car.add_argument("--eval-freq", type=int, default=5_000, help="evaluate every this many steps")
    car.add_argument("--jobs", type=int, default=1, help="parallel processes")
    car.add_argument("--net-arch", type=int, nargs="+", default=[64, 64], help="hidden layer sizes")
    car.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    for command in (distance, car):
        command.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder of the result files")
    args = parser.parse_args(argv)
    if args.command == "param-noise-distance":
        param_noise_distance(args.steps, args.seed, args.desired, args.out)
    else:
        if args.budget < args.eval_freq or args.eval_freq <= 0:
            parser.error("--budget must be >= --eval-freq > 0")
        if args.eval_episodes < 1:
            parser.error("--eval-episodes must be >= 1")
        mountaincar(args.seeds, args.budget, args.eval_freq, args.jobs, args.net_arch, args.eval_episodes, args.out)


if __name__ == "__main__":
    main()
