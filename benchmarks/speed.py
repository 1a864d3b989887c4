"""
Throughput benchmark: upstream SB3 ``DDPG`` against ``DDPGPlus`` with identical hyperparameters, plus a minimal eager
PyTorch DDPG update (the floor), the environment step alone (the part of a ``learn()`` step both libraries pay) and
replay-buffer bytes per transition.

Run ``python -m benchmarks speed`` (or ``python -m benchmarks.speed``); ``--quick`` is a smoke run for CI.
Measurements of the two libraries are alternated in one process (the order flips every repeat) so that the slowly
changing load of a shared machine affects both alike; the figures reported are medians over the repeats.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import DDPG
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn
from torch.nn import functional as F

from benchmarks.common import (
    RESULTS_DIR,
    atomic_write_json,
    atomic_write_text,
    command_line,
    is_stand_in,
    load_ddpg_plus,
    machine_info,
    make_env,
    now_utc,
    versions,
)

DEFAULT_ENVS = ("Pendulum-v1", "HalfCheetahBulletEnv-v0")
DEFAULT_ARCHS = ((64, 64), (400, 300))
BATCH_SIZE = 256
# Transitions collected before train()-only timing: enough that sampling is not from a tiny, cache-hot buffer.
TRAIN_FILL = 2_000
# Capacity used to measure buffer bytes per transition (numpy's zeros are lazily allocated, so this costs nothing).
BUFFER_PROBE_SIZE = 100_000


def parse_arch(text: str) -> tuple[int, ...]:
    """
    :param text: Layer widths such as ``"400,300"`` or ``"400x300"``.
    :return: The widths as a tuple of ints.
    """
    widths = tuple(int(w) for w in text.replace("x", ",").split(",") if w.strip())
    if not widths or any(w <= 0 for w in widths):
        raise argparse.ArgumentTypeError(f"invalid net_arch {text!r}: expected positive widths like 400,300")
    return widths


def arch_name(arch: Sequence[int]) -> str:
    """
    :param arch: Layer widths.
    :return: The display form ``[400, 300]``.
    """
    return "[" + ", ".join(str(w) for w in arch) + "]"


def default_steps(arch: Sequence[int], quick: bool) -> tuple[int, int]:
    """
    Number of timed env steps (``learn()``) and gradient steps (``train()``) per measurement.
    Small networks are cheap per step, so they get more steps to keep each timing well above timer noise.

    :param arch: Layer widths.
    :param quick: Smoke-test sizes.
    :return: ``(learn_steps, train_steps)``.
    """
    if quick:
        return 64, 16
    if max(arch) <= 128:
        return 1_000, 600
    return 400, 250


def hyperparameters(env_action_dim: int, arch: Sequence[int], seed: int, learning_starts: int) -> dict[str, Any]:
    """
    The constructor arguments shared by both libraries (SB3's DDPG defaults, Gaussian noise 0.1 as in the zoo).

    :param env_action_dim: Dimension of the action space (for the noise).
    :param arch: Layer widths of actor and critic.
    :param seed: Seed.
    :param learning_starts: Steps of uniform random actions before training starts.
    :return: Keyword arguments for ``DDPG`` / ``DDPGPlus``.
    """
    return dict(
        learning_rate=1e-3,
        buffer_size=1_000_000,
        learning_starts=learning_starts,
        batch_size=BATCH_SIZE,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(env_action_dim), 0.1 * np.ones(env_action_dim)),
        policy_kwargs=dict(net_arch=list(arch)),
        seed=seed,
        device="cpu",
        verbose=0,
    )


def build_model(cls: type, env_id: str, arch: Sequence[int], seed: int, learning_starts: int) -> Any:
    """
    :param cls: ``DDPG`` or ``DDPGPlus``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param learning_starts: Steps before training starts.
    :return: A fresh model on a fresh environment.
    """
    env = make_env(env_id)
    action_dim = int(np.prod(env.action_space.shape))
    return cls("MlpPolicy", env, **hyperparameters(action_dim, arch, seed, learning_starts))


class LearnTimer:
    """
    Times the full ``learn()`` loop (acting, env step, storing, one gradient step per env step) after warm-up.

    :param cls: ``DDPG`` or ``DDPGPlus``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param steps: Env steps per measurement.
    """

    def __init__(self, cls: type, env_id: str, arch: Sequence[int], seed: int, steps: int) -> None:
        self.steps = steps
        self.model = build_model(cls, env_id, arch, seed, learning_starts=BATCH_SIZE)
        # Fill past learning_starts and run a few updates so that first-call costs (lazy allocations) are not timed.
        self.model.learn(BATCH_SIZE + 32)

    def measure(self) -> float:
        """
        :return: Env steps per second of ``learn()``.
        """
        start = time.perf_counter()
        self.model.learn(self.steps, reset_num_timesteps=False)
        return self.steps / (time.perf_counter() - start)


class EnvStepTimer:
    """
    Times ``VecEnv.step`` alone, in the wrappers ``learn()`` puts around a single environment (``Monitor`` inside a
    ``DummyVecEnv``), with uniform random actions drawn beforehand: the part of a ``learn()`` step that both
    libraries pay alike.

    :param env_id: Environment id.
    :param seed: Seed.
    :param steps: Env steps per measurement.
    """

    def __init__(self, env_id: str, seed: int, steps: int) -> None:
        self.env = DummyVecEnv([lambda: Monitor(make_env(env_id, seed=seed))])
        self.env.reset()
        self.env.action_space.seed(seed)
        self.actions = [np.array([self.env.action_space.sample()]) for _ in range(steps)]

    def measure(self) -> float:
        """
        :return: Env steps per second of ``VecEnv.step``.
        """
        start = time.perf_counter()
        for action in self.actions:
            self.env.step(action)
        return len(self.actions) / (time.perf_counter() - start)


class TrainTimer:
    """
    Times ``model.train(gradient_steps=K, batch_size=256)`` on a buffer filled with random-action transitions.

    :param cls: ``DDPG`` or ``DDPGPlus``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param steps: Gradient steps per measurement.
    """

    def __init__(
        self, cls: type, env_id: str, arch: Sequence[int], seed: int, steps: int, autograd_only: bool = False
    ) -> None:
        self.steps = steps
        # learning_starts above the fill size: learn() only collects (and sets up the logger and progress that
        # train() reads), it never trains.
        self.model = build_model(cls, env_id, arch, seed, learning_starts=10 * TRAIN_FILL)
        if autograd_only:
            # DDPGPlus without its hand-written gradients (shows what they contribute)
            self.model.manual_backward = False
        self.model.learn(TRAIN_FILL)
        self.model.train(gradient_steps=8, batch_size=BATCH_SIZE)

    def measure(self) -> float:
        """
        :return: Gradient updates per second of ``train()``.
        """
        start = time.perf_counter()
        self.model.train(gradient_steps=self.steps, batch_size=BATCH_SIZE)
        return self.steps / (time.perf_counter() - start)


def mlp(in_dim: int, arch: Sequence[int], out_dim: int, squash: bool) -> nn.Sequential:
    """
    :param in_dim: Input size.
    :param arch: Hidden layer widths (ReLU).
    :param out_dim: Output size.
    :param squash: Add a final ``Tanh`` (the actor).
    :return: The network, shaped like SB3's actor / critic for ``net_arch=arch``.
    """
    layers: list[nn.Module] = []
    last = in_dim
    for width in arch:
        layers += [nn.Linear(last, width), nn.ReLU()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    if squash:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class FloorDDPG:
    """
    The minimal eager PyTorch DDPG update, the floor that a library's ``train()`` can approach: one batch sampled by
    index from tensors, critic step, actor step with the critic's parameters frozen (no critic gradients are computed
    that would be thrown away), polyak update of both targets with fused ``torch._foreach`` ops.

    :param obs_dim: Observation size.
    :param action_dim: Action size.
    :param arch: Hidden layer widths of both networks.
    :param steps: Gradient steps per measurement.
    :param seed: Seed.
    :param buffer_size: Number of random transitions to sample from.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, arch: Sequence[int], steps: int, seed: int, buffer_size: int = TRAIN_FILL
    ) -> None:
        th.manual_seed(seed)
        self.steps = steps
        self.gamma, self.tau = 0.99, 0.005
        self.actor = mlp(obs_dim, arch, action_dim, squash=True)
        self.critic = mlp(obs_dim + action_dim, arch, 1, squash=False)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = th.optim.Adam(self.actor.parameters(), lr=1e-3)
        self.critic_opt = th.optim.Adam(self.critic.parameters(), lr=1e-3)
        self.params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.target_params = list(self.actor_target.parameters()) + list(self.critic_target.parameters())
        self.obs = th.randn(buffer_size, obs_dim)
        self.next_obs = th.randn(buffer_size, obs_dim)
        self.actions = th.rand(buffer_size, action_dim) * 2 - 1
        self.rewards = th.randn(buffer_size, 1)
        self.dones = (th.rand(buffer_size, 1) < 0.01).float()
        self.update()

    def update(self) -> None:
        """One DDPG gradient step."""
        idx = th.randint(self.obs.shape[0], (BATCH_SIZE,))
        obs, actions, next_obs = self.obs[idx], self.actions[idx], self.next_obs[idx]
        with th.no_grad():
            next_q = self.critic_target(th.cat([next_obs, self.actor_target(next_obs)], dim=1))
            target_q = self.rewards[idx] + (1.0 - self.dones[idx]) * self.gamma * next_q
        critic_loss = F.mse_loss(self.critic(th.cat([obs, actions], dim=1)), target_q)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        actor_loss = -self.critic(th.cat([obs, self.actor(obs)], dim=1)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        with th.no_grad():
            th._foreach_mul_(self.target_params, 1.0 - self.tau)
            th._foreach_add_(self.target_params, self.params, alpha=self.tau)

    def measure(self) -> float:
        """
        :return: Gradient updates per second.
        """
        start = time.perf_counter()
        for _ in range(self.steps):
            self.update()
        return self.steps / (time.perf_counter() - start)


def buffer_nbytes(buffer: Any) -> int:
    """
    Bytes held by a replay buffer: its own ``nbytes`` report when it has one, else the sum over its numpy arrays and
    torch tensors.

    :param buffer: The replay buffer.
    :return: Total bytes.
    """
    report = getattr(buffer, "nbytes", None)
    if callable(report):
        report = report()
    if isinstance(report, (int, np.integer)):
        return int(report)
    total = 0
    for value in vars(buffer).values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, th.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, dict):  # dict observation spaces
            total += sum(v.nbytes for v in value.values() if isinstance(v, np.ndarray))
    return total


def buffer_bytes_per_transition(cls: type, env_id: str, optimize_memory_usage: bool) -> float:
    """
    :param cls: ``DDPG`` or ``DDPGPlus``.
    :param env_id: Environment id (its spaces decide the sizes).
    :param optimize_memory_usage: Ask for the memory-optimised buffer.
    :return: Bytes per stored transition of the model's replay buffer with one env.
    """
    env = make_env(env_id)
    kwargs: dict[str, Any] = dict(buffer_size=BUFFER_PROBE_SIZE, optimize_memory_usage=optimize_memory_usage, device="cpu")
    if optimize_memory_usage and cls is DDPG:
        # SB3 refuses memory optimisation together with timeout handling (SB3 issue #934).
        kwargs["replay_buffer_kwargs"] = dict(handle_timeout_termination=False)
    model = cls("MlpPolicy", env, policy_kwargs=dict(net_arch=[8]), **kwargs)
    return buffer_nbytes(model.replay_buffer) / BUFFER_PROBE_SIZE


def median(values: Sequence[float]) -> float:
    """
    :param values: Non-empty sequence.
    :return: Its median.
    """
    return float(statistics.median(values))


def run_case(ours_cls: type, env_id: str, arch: Sequence[int], repeats: int, quick: bool, seed: int) -> dict[str, Any]:
    """
    Measure one (environment, network) case: both libraries' ``learn()`` and ``train()``, and the floor, alternated.

    :param ours_cls: The ``DDPGPlus`` class.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param repeats: Number of alternated repeats.
    :param quick: Smoke-test sizes.
    :param seed: Seed.
    :return: Raw per-repeat figures and their medians.
    """
    learn_steps, train_steps = default_steps(arch, quick)
    env = make_env(env_id)
    obs_dim, action_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    timers: dict[str, dict[str, Any]] = {
        "learn": {name: LearnTimer(cls, env_id, arch, seed, learn_steps) for name, cls in (("sb3", DDPG), ("ours", ours_cls))},
        "train": {name: TrainTimer(cls, env_id, arch, seed, train_steps) for name, cls in (("sb3", DDPG), ("ours", ours_cls))},
    }
    timers["train"]["floor"] = FloorDDPG(obs_dim, action_dim, arch, train_steps, seed)
    timers["env"] = {"env_step": EnvStepTimer(env_id, seed, learn_steps)}
    if not is_stand_in(ours_cls):
        timers["train"]["ours_autograd"] = TrainTimer(ours_cls, env_id, arch, seed, train_steps, autograd_only=True)
    raw: dict[str, dict[str, list[float]]] = {kind: {name: [] for name in group} for kind, group in timers.items()}
    for repeat in range(repeats):
        for kind, group in timers.items():
            names = list(group)
            # Flip the order every repeat (A B, B A, ...) so that a drift in machine load favours neither side.
            if repeat % 2 == 1:
                names.reverse()
            for name in names:
                raw[kind][name].append(group[name].measure())
    learn = {name: median(v) for name, v in raw["learn"].items()}
    train = {name: median(v) for name, v in raw["train"].items()}
    # Ratio within each repeat (measurements adjacent in time), then the median: robust to load drifting between repeats.
    learn_ratio = median([o / s for o, s in zip(raw["learn"]["ours"], raw["learn"]["sb3"], strict=True)])
    train_ratio = median([o / s for o, s in zip(raw["train"]["ours"], raw["train"]["sb3"], strict=True)])
    floor_ratio = median([o / f for o, f in zip(raw["train"]["ours"], raw["train"]["floor"], strict=True)])
    case = {
        "env": env_id,
        "arch": list(arch),
        "learn_steps": learn_steps,
        "train_steps": train_steps,
        "learn_steps_per_s": learn,
        "train_updates_per_s": train,
        "env_steps_per_s": median(raw["env"]["env_step"]),
        "learn_ratio_ours_sb3": learn_ratio,
        "train_ratio_ours_sb3": train_ratio,
        "train_ratio_ours_floor": floor_ratio,
        "raw": raw,
    }
    if "ours_autograd" in raw["train"]:
        autograd = raw["train"]["ours_autograd"]
        case["train_ratio_ours_autograd"] = median([o / a for o, a in zip(raw["train"]["ours"], autograd, strict=True)])
    return case


def buffer_case(ours_cls: type, env_id: str) -> dict[str, Any]:
    """
    :param ours_cls: The ``DDPGPlus`` class.
    :param env_id: Environment id.
    :return: Bytes per transition of SB3's and our buffers, default and memory-optimised.
    """
    env = make_env(env_id)
    row = {
        "env": env_id,
        "obs_shape": list(env.observation_space.shape),
        "action_shape": list(env.action_space.shape),
        "sb3_default": buffer_bytes_per_transition(DDPG, env_id, optimize_memory_usage=False),
        "sb3_optimized": buffer_bytes_per_transition(DDPG, env_id, optimize_memory_usage=True),
        "ours_default": buffer_bytes_per_transition(ours_cls, env_id, optimize_memory_usage=False),
        "ours_optimized": buffer_bytes_per_transition(ours_cls, env_id, optimize_memory_usage=True),
    }
    env.close()
    row["ratio_ours_optimized_sb3_default"] = row["ours_optimized"] / row["sb3_default"]
    return row


#: Targets of issue 4 (1 torch thread, CPU, ratios from one run): (net_arch, figure key, threshold, text).
TARGETS = (
    ((64, 64), "learn_ratio_ours_sb3", 2.5, "full learn() loop >= 2.5x SB3 at [64, 64]"),
    ((400, 300), "learn_ratio_ours_sb3", 1.15, "full learn() loop >= 1.15x SB3 at [400, 300]"),
    ((400, 300), "train_ratio_ours_floor", 0.9, "train() within 10% of the PyTorch floor at [400, 300]"),
)
BUFFER_TARGET = 0.55


def target_lines(report: dict[str, Any]) -> list[str]:
    """
    :param report: What :func:`main` collected.
    :return: Markdown lines: each throughput and memory target of issue 4 with the measured figure.
    """
    lines = []
    for arch, key, threshold, text in TARGETS:
        for case in report["cases"]:
            if tuple(case["arch"]) == arch:
                value = case[key]
                mark = "met" if value >= threshold else "**not met**"
                lines.append(f"| {text} | {case['env']} | {value:.2f} | {mark} |")
    for row in report["buffers"]:
        value = row["ratio_ours_optimized_sb3_default"]
        mark = "met" if value <= BUFFER_TARGET else "**not met**"
        text = f"memory-optimised buffer <= {BUFFER_TARGET}x SB3 default bytes/transition"
        lines.append(f"| {text} | {row['env']} | {value:.2f} | {mark} |")
    if not lines:
        return []
    return ["## Targets (issue 4)", "", "| target | env | measured | |", "|---|---|---:|---|", *lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """
    :param report: What :func:`main` collected.
    :return: ``speed.md``.
    """
    machine, vers, settings = report["machine"], report["versions"], report["settings"]
    ours_label = "DDPGPlus" + (" (STAND-IN: upstream DDPG)" if report["stand_in"] else "")
    lines = [
        "# Throughput: SB3 DDPG vs DDPGPlus",
        "",
        f"Generated {report['date']} by `{report['command']}`.",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores ({machine['usable_cores']} usable), "
        f"load average at start {machine['load_average']}; the machine may be shared, so compare the ratios (measured "
        "side by side in one run) rather than absolute figures across runs.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- Settings: torch threads {settings['torch_threads']}, batch {BATCH_SIZE}, lr 1e-3, tau 0.005, gamma 0.99, "
        "Gaussian action noise 0.1, train_freq 1, gradient_steps 1, device cpu; "
        f"{settings['repeats']} alternated repeats (order flips each repeat), median reported.",
        f"- Ours: {ours_label}.",
        "",
        *target_lines(report),
        "## Full `learn()` loop (env steps/s, after `learning_starts=256`, one gradient step per env step)",
        "",
        "| env | net_arch | steps timed | SB3 DDPG | DDPGPlus | ratio ours/SB3 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        learn = case["learn_steps_per_s"]
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {case['learn_steps']} | {learn['sb3']:.1f} | {learn['ours']:.1f} "
            f"| **{case['learn_ratio_ours_sb3']:.2f}x** |"
        )
    lines += [
        "",
        "## Where one `learn()` step goes (microseconds per env step, medians)",
        "",
        "`env.step` is `VecEnv.step` alone in the wrappers `learn()` uses (Monitor in a DummyVecEnv), random actions: "
        "both libraries pay it. `train()` alone is one gradient update from the table below. The last column is the "
        "whole step DDPGPlus may take for the 2.5x target.",
        "",
        "| env | net_arch | SB3 DDPG | DDPGPlus | env.step | DDPGPlus outside env.step | DDPGPlus train() alone | SB3 / 2.5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        learn, train = case["learn_steps_per_s"], case["train_updates_per_s"]
        sb3_us, ours_us, env_us = 1e6 / learn["sb3"], 1e6 / learn["ours"], 1e6 / case["env_steps_per_s"]
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {sb3_us:.0f} | {ours_us:.0f} | {env_us:.0f} "
            f"| {ours_us - env_us:.0f} | {1e6 / train['ours']:.0f} | {sb3_us / 2.5:.0f} |"
        )
    lines += [
        "",
        f"## `train()` only (gradient updates/s, batch {BATCH_SIZE}, buffer of {TRAIN_FILL} random transitions)",
        "",
        "The floor is a minimal eager PyTorch DDPG update on the same networks (Adam, critic parameters frozen during "
        "the actor's backward pass, polyak update with `torch._foreach`), see `FloorDDPG` in `benchmarks/speed.py`.",
        "",
        "DDPGPlus (autograd) is DDPGPlus with `manual_backward=False`: its gradients computed by autograd instead of "
        "by hand (`sb3_ddpg_plus/manual_backward.py`); the last column is what the hand-written gradients contribute.",
        "",
        "| env | net_arch | updates timed | SB3 DDPG | DDPGPlus | floor | DDPGPlus (autograd) | ratio ours/SB3 "
        "| ratio ours/floor | ratio ours/autograd |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        train = case["train_updates_per_s"]
        autograd = f"{train['ours_autograd']:.1f}" if "ours_autograd" in train else "-"
        autograd_ratio = f"{case['train_ratio_ours_autograd']:.2f}" if "train_ratio_ours_autograd" in case else "-"
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {case['train_steps']} | {train['sb3']:.1f} | {train['ours']:.1f} "
            f"| {train['floor']:.1f} | {autograd} | **{case['train_ratio_ours_sb3']:.2f}x** "
            f"| {case['train_ratio_ours_floor']:.2f} | {autograd_ratio} |"
        )
    lines += [
        "",
        "Ratios are medians of the per-repeat ratios (the two measurements of a ratio are adjacent in time).",
        "",
        "## Replay buffer bytes per transition (one env)",
        "",
        "| env | obs | action | SB3 default | SB3 optimize_memory_usage* | DDPGPlus | DDPGPlus optimize_memory_usage "
        "| ours optimised / SB3 default |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["buffers"]:
        lines.append(
            f"| {row['env']} | {tuple(row['obs_shape'])} | {tuple(row['action_shape'])} | {row['sb3_default']:.1f} "
            f"| {row['sb3_optimized']:.1f} | {row['ours_default']:.1f} | {row['ours_optimized']:.1f} "
            f"| **{row['ratio_ours_optimized_sb3_default']:.2f}x** |"
        )
    lines += [
        "",
        "\\* SB3 allows `optimize_memory_usage=True` only with `handle_timeout_termination=False`, i.e. it then treats "
        "time-limit truncation as termination.",
        "",
        "Figures come from the buffer's own `nbytes` report when it has one, else from the sum of its arrays' `nbytes`, "
        f"at a capacity of {BUFFER_PROBE_SIZE} transitions.",
        "",
        "Raw per-repeat figures: `speed.json` beside this file.",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    :param parser: Parser to add the ``speed`` options to.
    """
    parser.add_argument("--quick", action="store_true", help="tiny step counts, one repeat (CI smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="alternated repeats per case (default 5, quick 1)")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="environment ids")
    parser.add_argument(
        "--archs", nargs="+", type=parse_arch, default=list(DEFAULT_ARCHS), help="network widths, e.g. 64,64 400,300"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the models")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark's contract is 1)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="folder for speed.md and speed.json (default benchmarks/results)"
    )
    parser.add_argument("--no-buffer", action="store_true", help="skip the replay-buffer size table")


def main(args: argparse.Namespace) -> dict[str, Any]:
    """
    Run the speed benchmark and write ``speed.md`` and ``speed.json``.

    :param args: Parsed options (see :func:`add_arguments`).
    :return: The report written to ``speed.json``.
    """
    th.set_num_threads(args.threads)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    ours_cls = load_ddpg_plus()
    report: dict[str, Any] = {
        "command": command_line(),
        "date": now_utc(),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {"torch_threads": th.get_num_threads(), "repeats": repeats, "quick": args.quick, "seed": args.seed},
        "stand_in": is_stand_in(ours_cls),
        "cases": [],
        "buffers": [],
    }
    start = time.perf_counter()
    for env_id in args.envs:
        for arch in args.archs:
            case = run_case(ours_cls, env_id, arch, repeats, args.quick, args.seed)
            report["cases"].append(case)
            print(
                f"[speed] {env_id} {arch_name(arch)}: learn {case['learn_steps_per_s']['sb3']:.1f} -> "
                f"{case['learn_steps_per_s']['ours']:.1f} steps/s ({case['learn_ratio_ours_sb3']:.2f}x); train "
                f"{case['train_updates_per_s']['sb3']:.1f} -> {case['train_updates_per_s']['ours']:.1f} updates/s "
                f"({case['train_ratio_ours_sb3']:.2f}x), floor {case['train_updates_per_s']['floor']:.1f} "
                f"[{time.perf_counter() - start:.0f}s]",
                flush=True,
            )
        if not args.no_buffer:
            report["buffers"].append(buffer_case(ours_cls, env_id))
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "speed.json", report)
    atomic_write_text(args.out / "speed.md", render_markdown(report))
    print(f"[speed] wrote {args.out / 'speed.md'} and speed.json in {report['elapsed_s']}s", flush=True)
    return report


def cli(argv: Sequence[str] | None = None) -> None:
    """
    Entry point of ``python -m benchmarks.speed``.

    :param argv: Arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks speed", description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    main(parser.parse_args(argv))


if __name__ == "__main__":
    cli()
