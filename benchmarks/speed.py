"""
Throughput benchmark: upstream SB3 ``DDPG`` against ``DDPGPlus`` and, when installed, SBX's JAX ``DDPG`` with identical
hyperparameters, plus a minimal eager PyTorch DDPG update (the floor), a FLOP-count bound (matrix-product FLOPs of one
update over the best measured GEMM rate), the environment step alone (the part of a ``learn()`` step every library pays)
and replay-buffer bytes per transition.

Run ``python -m benchmarks speed`` (or ``python -m benchmarks.speed``); ``--quick`` is a smoke run for CI.
Each library runs in its own worker process (``benchmarks/speed_worker.py``) pinned to one CPU core (``taskset -c``),
with one torch thread and, for JAX, ``XLA_FLAGS`` set before JAX is imported. The measurements of the libraries are
alternated (the order flips every repeat; only one worker computes at a time) so that the slowly changing load of a
shared machine affects all alike; the figures reported are medians over the repeats and ratios are medians of the
per-repeat ratios. Warm-up (first calls, JAX compilation) is timed separately and never enters a rate.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
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

from benchmarks import replay_cost
from benchmarks.common import RESULTS_DIR, command_line, now_utc
from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.experiments.envs import make_env
from sb3_ddpg_plus.experiments.records import system_info, write_file, write_json

DEFAULT_ENVS = ("Pendulum-v1", "HalfCheetahBulletEnv-v0")
DEFAULT_ARCHS = ((64, 64), (400, 300))
BATCH_SIZE = 256
# Transitions collected before train()-only timing: enough that sampling is not from a tiny, cache-hot buffer.
TRAIN_FILL = 2_000
# Capacity used to measure buffer bytes per transition (numpy's zeros are lazily allocated, so this costs nothing).
BUFFER_PROBE_SIZE = 100_000
#: The libraries measured, in table order: worker name -> display name. ``sbx`` is optional (the ``peers`` extra).
LIBRARIES = {"sb3": "SB3 DDPG", "ours": "DDPGPlus", "sbx": "SBX DDPG"}
#: XLA on one thread: set for the SBX worker before JAX is imported.
XLA_ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
#: GEMM kernels probed for the FLOP bound, in table order (the first three in every worker, JAX in SBX's).
GEMM_BACKENDS = ("numpy", "torch.mm", "oneDNN (torch)", "JAX/XLA")
SBX_SKIP_LINE = "SBX not installed: pip install -e '.[peers]' to compare with it"


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


def is_jax_class(cls: type) -> bool:
    """
    :param cls: An algorithm class.
    :return: Whether it is one of SBX's (JAX) algorithms.
    """
    return cls.__module__.split(".")[0] == "sbx"


def hyperparameters(
    env_action_dim: int, arch: Sequence[int], seed: int, learning_starts: int, jax: bool = False
) -> dict[str, Any]:
    """
    The constructor arguments shared by all libraries (SB3's DDPG defaults, Gaussian noise 0.1 as in the zoo).

    SBX's ``DDPG`` (``jax=True``) takes the critic's learning rate separately (``qf_learning_rate``) and its policy
    has layer norm, dropout and a number of critics as options: they are set to what SB3's DDPG does (one learning
    rate for both, no layer norm, no dropout, one critic) so that the networks and their parameter counts match.

    :param env_action_dim: Dimension of the action space (for the noise).
    :param arch: Layer widths of actor and critic.
    :param seed: Seed.
    :param learning_starts: Steps of uniform random actions before training starts.
    :param jax: Arguments for SBX's ``DDPG``.
    :return: Keyword arguments for ``DDPG`` / ``DDPGPlus`` / ``sbx.DDPG``.
    """
    kwargs = dict(
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
    if jax:
        kwargs["qf_learning_rate"] = kwargs["learning_rate"]
        kwargs["policy_kwargs"].update(n_critics=1, layer_norm=False, dropout_rate=0.0)
    return kwargs


def build_model(cls: type, env_id: str, arch: Sequence[int], seed: int, learning_starts: int) -> Any:
    """
    :param cls: ``DDPG``, ``DDPGPlus`` or ``sbx.DDPG``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param learning_starts: Steps before training starts.
    :return: A fresh model on a fresh environment.
    """
    env = make_env(env_id)
    action_dim = int(np.prod(env.action_space.shape))
    return cls("MlpPolicy", env, **hyperparameters(action_dim, arch, seed, learning_starts, jax=is_jax_class(cls)))


def count_parameters(model: Any) -> int:
    """
    Trainable parameters of the actor and the critic(s), targets excluded.

    :param model: A ``DDPG``, ``DDPGPlus`` (torch modules ``policy.actor`` / ``policy.critic``) or ``sbx.DDPG`` (flax
        parameter trees ``policy.actor_state.params`` / ``policy.qf_state.params``) model.
    :return: The number of scalars.
    """
    policy = model.policy
    if hasattr(policy, "actor_state"):
        import jax  # only ever imported where SBX already imported it

        trees = (policy.actor_state.params, policy.qf_state.params)
        return int(sum(np.size(leaf) for tree in trees for leaf in jax.tree_util.tree_leaves(tree)))
    return int(sum(p.numel() for module in (policy.actor, policy.critic) for p in module.parameters()))


class LearnTimer:
    """
    Times the full ``learn()`` loop (acting, env step, storing, one gradient step per env step) after warm-up.
    The warm-up (``learning_starts`` random steps and 32 steps of acting and training, which is where SBX compiles its
    update and its action selection) is timed in ``warmup_s`` and never enters the rate.

    :param cls: ``DDPG``, ``DDPGPlus`` or ``sbx.DDPG``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param steps: Env steps per measurement.
    """

    def __init__(self, cls: type, env_id: str, arch: Sequence[int], seed: int, steps: int) -> None:
        self.steps = steps
        self.model = build_model(cls, env_id, arch, seed, learning_starts=BATCH_SIZE)
        # Fill past learning_starts and run a few updates so that first-call costs (lazy allocations, JIT compilation)
        # are not timed.
        start = time.perf_counter()
        self.model.learn(BATCH_SIZE + 32)
        self.warmup_s = time.perf_counter() - start

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
    Times ``train()`` on a buffer filled with random-action transitions, either as one call of K gradient steps
    (``model.train(gradient_steps=K, batch_size=256)``, which SBX compiles into one loop) or as K calls of one step
    (what ``learn()`` does with ``train_freq=1, gradient_steps=1``).

    The first call (lazy allocations; for SBX the JIT compilation for this number of steps) is timed in ``warmup_s``
    and never enters the rate.

    :param cls: ``DDPG``, ``DDPGPlus`` or ``sbx.DDPG``.
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param seed: Seed.
    :param steps: Gradient steps per measurement (K).
    :param autograd_only: DDPGPlus with ``manual_backward=False``.
    :param compile_update: DDPGPlus with ``compile_update=True`` and ``native_update=False`` (the compilation is in
        the untimed first call; a fallback to the eager update is an error here, so that it is never timed as the
        compiled one).
    :param native_update: DDPGPlus with this ``native_update`` (``None``: its default, ``"auto"``); ``False`` times
        the eager update.
    :param single_steps: Time K calls of one gradient step instead of one call of K.
    :param fill: Random-action transitions collected before timing.
    :param model: A model another ``TrainTimer`` already built and filled, to time the other form of ``train()`` on
        (``cls``, ``env_id``, ``arch``, ``seed``, ``autograd_only`` and ``fill`` are then not used).
    """

    def __init__(
        self,
        cls: type,
        env_id: str,
        arch: Sequence[int],
        seed: int,
        steps: int,
        autograd_only: bool = False,
        compile_update: bool = False,
        native_update: bool | str | None = None,
        single_steps: bool = False,
        fill: int = TRAIN_FILL,
        model: Any | None = None,
    ) -> None:
        self.steps = steps
        self.single_steps = single_steps
        if model is None:
            # learning_starts above the fill size: learn() only collects (and sets up the logger and progress that
            # train() reads), it never trains.
            model = build_model(cls, env_id, arch, seed, learning_starts=10 * fill)
            if autograd_only:
                # DDPGPlus without its hand-written gradients (shows what they contribute)
                model.manual_backward = False
            if native_update is not None:
                model.native_update = native_update
            if compile_update:
                model.native_update = False  # (it would run first)
                model.compile_update = True
                warnings.filterwarnings("error", message="compile_update:")
            model.learn(fill)
        self.model = model
        # One untimed call of the timed form: SBX compiles one program per number of gradient steps.
        start = time.perf_counter()
        self.model.train(gradient_steps=1 if single_steps else steps, batch_size=BATCH_SIZE)
        self.warmup_s = time.perf_counter() - start
        if single_steps:
            for _ in range(2):
                self.model.train(gradient_steps=1, batch_size=BATCH_SIZE)

    def measure(self) -> float:
        """
        :return: Gradient updates per second of ``train()``.
        """
        start = time.perf_counter()
        if self.single_steps:
            for _ in range(self.steps):
                self.model.train(gradient_steps=1, batch_size=BATCH_SIZE)
        else:
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
    The minimal eager PyTorch DDPG update, the floor that an eager PyTorch ``train()`` can approach: one batch sampled
    by index from tensors, critic step, actor step with the critic's parameters frozen (no critic gradients are
    computed that would be thrown away), polyak update of both targets with fused ``torch._foreach`` ops. Its matrix
    products run on PyTorch's default CPU kernels (``torch.mm`` / ``addmm``); a compiled update or a faster GEMM
    kernel can beat it, see :func:`ddpg_update_flops` and :func:`gemm_rates` for the bound that does not depend on
    PyTorch.

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


def layer_shapes(obs_dim: int, action_dim: int, arch: Sequence[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """
    :param obs_dim: Observation size.
    :param action_dim: Action size.
    :param arch: Hidden layer widths of both networks.
    :return: ``(in, out)`` of each linear layer of the actor and of the critic.
    """
    actor_widths = [obs_dim, *arch, action_dim]
    critic_widths = [obs_dim + action_dim, *arch, 1]
    return (
        list(itertools.pairwise(actor_widths)),
        list(itertools.pairwise(critic_widths)),
    )


def ddpg_update_flops(obs_dim: int, action_dim: int, arch: Sequence[int], batch_size: int = BATCH_SIZE) -> int:
    """
    Floating-point operations of the matrix products of one DDPG update (what any implementation must compute):

    - targets: actor target and critic target forward on the next observations;
    - critic step: critic forward, weight gradients of every layer, input gradients of every layer but the first;
    - actor step: actor forward, critic forward, critic input gradients down to the action columns of its first
      layer (no critic weight gradients), actor weight gradients and input gradients of every layer but the first.

    A linear layer ``in -> out`` on a batch of B costs ``2 * B * in * out`` for the forward pass and the same again for
    each of its two gradients. Element-wise work (activations, loss, Adam, polyak) is left out: the count is a lower
    bound of the work, so FLOPs / GEMM rate is an upper bound of the updates per second.

    :param obs_dim: Observation size.
    :param action_dim: Action size.
    :param arch: Hidden layer widths of both networks.
    :param batch_size: Batch size.
    :return: FLOPs per update.
    """
    actor, critic = layer_shapes(obs_dim, action_dim, arch)
    actor_flops = sum(2 * batch_size * i * o for i, o in actor)
    critic_flops = sum(2 * batch_size * i * o for i, o in critic)
    first = arch[0]
    targets = actor_flops + critic_flops
    critic_step = 3 * critic_flops - 2 * batch_size * (obs_dim + action_dim) * first
    # forward of actor and critic, critic input gradients (only the action's columns of its first layer), actor weight
    # and input gradients (none for its first layer's input)
    actor_step = 3 * actor_flops + 2 * critic_flops - 4 * batch_size * obs_dim * first
    return int(targets + critic_step + actor_step)


def gemm_probe_shape(obs_dim: int, action_dim: int, arch: Sequence[int], batch_size: int = BATCH_SIZE) -> tuple[int, int, int]:
    """
    :param obs_dim: Observation size.
    :param action_dim: Action size.
    :param arch: Hidden layer widths.
    :param batch_size: Batch size.
    :return: ``(m, k, n)`` of the largest matrix product of the update, ``(batch, in) @ (in, out)``; for ``[400, 300]``
        that is ``256x400 @ 400x300``.
    """
    _, critic = layer_shapes(obs_dim, action_dim, arch)
    k, n = max(critic, key=lambda shape: shape[0] * shape[1])
    return batch_size, k, n


def best_rate(call: Callable[[], Any], flops: float, budget_s: float, rounds: int) -> float:
    """
    :param call: One matrix product (blocking until its result is ready).
    :param flops: Its floating-point operations.
    :param budget_s: Rough seconds per round.
    :param rounds: Rounds; the best is kept (the machine may be shared).
    :return: The best rate over the rounds, in GFLOP/s.
    """
    call()
    start = time.perf_counter()
    call()
    reps = max(1, int(budget_s / max(time.perf_counter() - start, 1e-7)))
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        best = max(best, flops * reps / (time.perf_counter() - start) / 1e9)
    return best


def gemm_rates(m: int, k: int, n: int, budget_s: float = 0.05, rounds: int = 5) -> dict[str, float]:
    """
    Single-process float32 GEMM rates of ``(m, k) @ (k, n)`` through the kernels a CPU library may use, in the threads
    the process was given (one, in this benchmark): numpy's BLAS, ``torch.mm`` (PyTorch's default CPU path) and
    oneDNN through PyTorch (``torch._C._nn.mkldnn_linear`` on ``to_mkldnn()`` tensors, both conversions included, the
    weight converted every call as a training step must) when this build has it.

    :param m: Rows of the left factor (the batch).
    :param k: Inner size.
    :param n: Columns of the right factor.
    :param budget_s: Rough seconds per round.
    :param rounds: Rounds per backend; the best is kept.
    :return: GFLOP/s per backend.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    x, w = th.from_numpy(a), th.from_numpy(b)
    flops = 2.0 * m * k * n
    rates = {
        "numpy": best_rate(lambda: a @ b, flops, budget_s, rounds),
        "torch.mm": best_rate(lambda: th.mm(x, w), flops, budget_s, rounds),
    }
    mkldnn_linear = getattr(th._C._nn, "mkldnn_linear", None)
    if mkldnn_linear is not None and th.backends.mkldnn.is_available():
        weight, bias = w.t().contiguous(), th.zeros(n)
        try:
            mkldnn_linear(x.to_mkldnn(), weight.to_mkldnn(), bias.to_mkldnn()).to_dense()
        except RuntimeError:  # a build or CPU without the oneDNN path
            return rates
        rates["oneDNN (torch)"] = best_rate(
            lambda: mkldnn_linear(x.to_mkldnn(), weight.to_mkldnn(), bias.to_mkldnn()).to_dense(), flops, budget_s, rounds
        )
    return rates


def jax_gemm_rates(m: int, k: int, n: int, budget_s: float = 0.05, rounds: int = 5) -> dict[str, float]:
    """
    :func:`gemm_rates` for JAX/XLA: a jitted ``jnp.dot`` (imports JAX: call it only in the SBX worker, where
    ``XLA_FLAGS`` was set before).

    :param m: Rows of the left factor.
    :param k: Inner size.
    :param n: Columns of the right factor.
    :param budget_s: Rough seconds per round.
    :param rounds: Rounds; the best is kept.
    :return: ``{"JAX/XLA": GFLOP/s}``.
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((m, k), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((k, n), dtype=np.float32))
    dot = jax.jit(jnp.dot)
    return {"JAX/XLA": best_rate(lambda: dot(a, b).block_until_ready(), 2.0 * m * k * n, budget_s, rounds)}


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


def sbx_missing_reason() -> str | None:
    """
    Whether SBX can be measured, without importing it here (importing JAX takes seconds, and the SBX worker must import
    it only after ``XLA_FLAGS`` is set).

    :return: ``None`` when ``sbx`` and ``jax`` are importable, else why not.
    """
    for module in ("sbx", "jax"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install, or a module whose import is blocked
            found = False
        if not found:
            return f"{module} is not importable"
    return None


def peer_versions() -> dict[str, str]:
    """
    :return: Versions of SBX and the JAX packages it runs on (``"-"`` when one is not installed).
    """
    from importlib import metadata

    result = {}
    for dist in ("sbx-rl", "jax", "jaxlib", "flax", "optax"):
        try:
            result[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            result[dist] = "-"
    return result


def default_core() -> int | None:
    """
    :return: The first CPU core this process may run on (``None`` where affinity cannot be read).
    """
    try:
        return min(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def pinning(core: int | None) -> tuple[list[str], Callable[[], None] | None, str]:
    """
    How to start a worker on one core: ``taskset -c <core>`` when the tool exists, else ``os.sched_setaffinity`` in
    the child before it runs Python (the same effect: every thread the worker starts inherits the affinity).

    :param core: The core, or ``None`` not to pin.
    :return: Command prefix, ``preexec_fn`` for ``subprocess.Popen`` and a description for the report.
    """
    if core is None:
        return [], None, "not pinned"
    taskset = shutil.which("taskset")
    if taskset is not None:
        return [taskset, "-c", str(core)], None, f"taskset -c {core}"
    if hasattr(os, "sched_setaffinity"):
        return [], lambda: os.sched_setaffinity(0, {core}), f"os.sched_setaffinity to core {core}"
    return [], None, "not pinned (neither taskset nor sched_setaffinity on this system)"


def worker_environment(library: str, threads: int) -> dict[str, str]:
    """
    :param library: ``sb3``, ``ours`` or ``sbx``.
    :param threads: Threads of the worker's math libraries.
    :return: The worker's environment: this one with the repository importable, BLAS/OpenMP threads set and, for
        SBX, JAX on the CPU with ``XLA_FLAGS`` for one thread (set before the worker imports JAX).
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    if library == "sbx":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD_FLAGS).strip()
    return env


class WorkerProcess:
    """
    One library's worker process (``python -m benchmarks.speed_worker``), pinned to one core, spoken to one request
    at a time.

    :param library: ``sb3``, ``ours`` or ``sbx``.
    :param threads: Torch (and BLAS) threads of the worker.
    :param core: Core to pin it to (``None``: not pinned).
    """

    def __init__(self, library: str, threads: int, core: int | None) -> None:
        self.library = library
        prefix, preexec_fn, self.pinning = pinning(core)
        command = [*prefix, sys.executable, "-m", "benchmarks.speed_worker", library, "--threads", str(threads)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=worker_environment(library, threads),
            preexec_fn=preexec_fn,  # only sched_setaffinity
        )
        self.info: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        """
        :return: The worker's next answer (raises when it has exited).
        """
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"speed worker {self.library!r} exited (code {self.process.wait()}); see its stderr above")
        return json.loads(line)

    def ready(self) -> dict[str, Any]:
        """
        Wait for the worker to have imported its library.

        :return: Its first answer: ``ready`` (bool), and ``import_error`` when it could not import the library.
        """
        self.info = self._read()
        return self.info

    def call(self, op: str, **request: Any) -> dict[str, Any]:
        """
        :param op: Request (see ``benchmarks/speed_worker.py``).
        :param request: Its fields.
        :return: The worker's answer.
        """
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"speed worker {self.library!r} failed on {op!r}:\n{answer['error']}")
        return answer

    def close(self) -> None:
        """End the worker (closing its stdin ends its request loop)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_workers(libraries: Sequence[str], threads: int, core: int | None) -> dict[str, WorkerProcess]:
    """
    Start one worker per library (their imports overlap) and wait until each is ready. A worker for SBX that cannot
    import it is dropped with :data:`SBX_SKIP_LINE`; any other failure raises.

    :param libraries: Names from :data:`LIBRARIES`.
    :param threads: Torch threads per worker.
    :param core: Core to pin every worker to (``None``: not pinned).
    :return: The ready workers by library name.
    """
    workers: dict[str, WorkerProcess] = {}
    try:
        for name in libraries:
            workers[name] = WorkerProcess(name, threads, core)
        for name in list(workers):
            info = workers[name].ready()
            if info.get("ready"):
                continue
            workers.pop(name).close()
            if name != "sbx":
                raise RuntimeError(f"speed worker {name!r} could not import its library: {info.get('import_error')}")
            print(f"{SBX_SKIP_LINE} ({info.get('import_error')})", flush=True)
    except BaseException:
        for worker in workers.values():
            worker.close()
        raise
    return workers


def ratio_list(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """
    :param numerators: Per-repeat figures.
    :param denominators: Per-repeat figures measured next to them.
    :return: The per-repeat ratios.
    """
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


#: Ratios computed per repeat: (group, numerator, denominator); stored as ``<group>_ratio_<num>_<den>`` (median) and
#: under ``ratios`` (per repeat) when both sides were measured.
RATIOS = (
    ("learn", "ours", "sb3"),
    ("learn", "ours", "sbx"),
    ("train", "ours", "sb3"),
    ("train", "ours", "sbx"),
    ("train", "ours", "floor"),
    ("train", "ours", "ours_autograd"),
    ("train", "ours", "ours_eager"),
    ("train_1step", "ours", "ours_eager"),
    ("train", "ours_compiled", "sbx"),
    ("train", "ours_compiled", "ours"),
    ("train_1step", "ours", "sb3"),
    ("train_1step", "ours", "sbx"),
)


def setup_timers(
    workers: dict[str, WorkerProcess], plan: dict[str, dict[str, tuple[str, str, dict[str, Any]]]]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]], dict[str, str]]:
    """
    Build every timer of a case in its worker, one at a time (so that warm-ups are timed without each other), and check
    that all models have the same number of parameters.

    :param workers: Ready workers by library.
    :param plan: group -> timer name -> (worker, timer kind, constructor arguments).
    :return: Warm-up seconds and parameter counts, by group and timer name, and the BLAS each DDPGPlus timer's
        native update picked (by ``group/name``; none when the native update did not run).
    """
    warmup: dict[str, dict[str, float]] = {group: {} for group in plan}
    params: dict[str, dict[str, int]] = {group: {} for group in plan}
    blas: dict[str, str] = {}
    for group, timers in plan.items():
        for name, (worker, kind, kwargs) in timers.items():
            answer = workers[worker].call("setup", key=f"{group}/{name}", timer=kind, kwargs=kwargs)
            if answer.get("warmup_s") is not None:
                warmup[group][name] = answer["warmup_s"]
            if "params" in answer:
                params[group][name] = answer["params"]
            if answer.get("native_blas"):
                blas[f"{group}/{name}"] = answer["native_blas"]
    counts = {f"{group}/{name}": n for group, by_name in params.items() for name, n in by_name.items()}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"parameter counts differ between the libraries (actor + critic): {counts}")
    return warmup, params, blas


def run_case(
    workers: dict[str, WorkerProcess],
    env_id: str,
    arch: Sequence[int],
    repeats: int,
    seed: int,
    learn_steps: int,
    train_steps: int,
    quick: bool = False,
    compiled: bool = False,
) -> dict[str, Any]:
    """
    Measure one (environment, network) case: every library's ``learn()``, ``train()`` as one call of K steps and as K
    calls of one step, the floor and the env step, alternated; the GEMM rates for the FLOP bound.

    :param workers: Ready workers by library (``sb3`` and ``ours`` required, ``sbx`` optional).
    :param env_id: Environment id.
    :param arch: Layer widths.
    :param repeats: Number of alternated repeats.
    :param seed: Seed.
    :param learn_steps: Env steps per ``learn()`` measurement.
    :param train_steps: Gradient steps per ``train()`` measurement (K).
    :param quick: Smoke-test budgets: a smaller buffer fill before ``train()`` timing, a shorter GEMM probe.
    :param compiled: Also time DDPGPlus's ``train()`` with ``compile_update=True`` (one call of K steps)
    :return: Raw per-repeat figures, their medians, the ratios, warm-up times, parameter counts and the FLOP bound.
    """
    env = make_env(env_id)
    obs_dim, action_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    libraries = [name for name in LIBRARIES if name in workers]
    model = dict(env_id=env_id, arch=list(arch), seed=seed)
    train = dict(model, steps=train_steps, fill=2 * BATCH_SIZE if quick else TRAIN_FILL)
    # group -> timer name -> (worker, timer kind, constructor arguments); K calls of one step are timed on the model
    # (and buffer) that one call of K steps is timed on.
    plan: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {
        "learn": {name: (name, "learn", dict(model, steps=learn_steps)) for name in libraries},
        "train": {name: (name, "train", train) for name in libraries},
        "train_1step": {
            name: (name, "train", dict(steps=train_steps, single_steps=True, model_of=f"train/{name}")) for name in libraries
        },
        "env": {"env_step": ("sb3", "env_step", dict(env_id=env_id, seed=seed, steps=learn_steps))},
    }
    floor_kwargs = dict(obs_dim=obs_dim, action_dim=action_dim, arch=list(arch), steps=train_steps, seed=seed)
    plan["train"]["floor"] = ("sb3", "floor", floor_kwargs)
    plan["train"]["ours_autograd"] = ("ours", "train", dict(train, autograd_only=True))
    # DDPGPlus's eager update (native_update=False): what the C update contributes, in both forms of train()
    plan["train"]["ours_eager"] = ("ours", "train", dict(train, native_update=False))
    plan["train_1step"]["ours_eager"] = (
        "ours",
        "train",
        dict(steps=train_steps, single_steps=True, model_of="train/ours_eager"),
    )
    if compiled:
        plan["train"]["ours_compiled"] = ("ours", "train", dict(train, compile_update=True))

    warmup, params, blas = setup_timers(workers, plan)

    budget_s, rounds = (0.005, 2) if quick else (0.05, 5)
    shape = gemm_probe_shape(obs_dim, action_dim, arch)
    gflops: dict[str, float] = {}
    for name in ("sb3", "sbx"):
        if name in workers:
            gflops.update(workers[name].call("gemm", shape=list(shape), budget_s=budget_s, rounds=rounds)["gflops"])

    raw: dict[str, dict[str, list[float]]] = {group: {name: [] for name in timers} for group, timers in plan.items()}
    for repeat in range(repeats):
        for group, timers in plan.items():
            names = list(timers)
            # Flip the order every repeat (A B C, C B A, ...) so that a drift in machine load favours no library.
            if repeat % 2 == 1:
                names.reverse()
            for name in names:
                raw[group][name].append(workers[timers[name][0]].call("measure", key=f"{group}/{name}")["rate"])
    for worker in workers.values():
        worker.call("clear")

    flops = ddpg_update_flops(obs_dim, action_dim, arch)
    best_backend = max(gflops, key=gflops.__getitem__)
    bound = gflops[best_backend] * 1e9 / flops
    case: dict[str, Any] = {
        "env": env_id,
        "arch": list(arch),
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "libraries": libraries,
        "learn_steps": learn_steps,
        "train_steps": train_steps,
        "learn_steps_per_s": {name: median(v) for name, v in raw["learn"].items()},
        "train_updates_per_s": {name: median(v) for name, v in raw["train"].items()},
        "train_1step_updates_per_s": {name: median(v) for name, v in raw["train_1step"].items()},
        "env_steps_per_s": median(raw["env"]["env_step"]),
        "params": params["learn"],
        "warmup_s": warmup,
        "gemm": {"shape": list(shape), "gflops": gflops, "best_backend": best_backend},
        "flops_per_update": flops,
        "gemm_bound_updates_per_s": bound,
        "native_blas": blas,
        "train_ratio_ours_gemm_bound": median(raw["train"]["ours"]) / bound,
        "ratios": {},
        "raw": raw,
    }
    # Ratio within each repeat (measurements adjacent in time), then the median: robust to load drifting between repeats.
    for group, num, den in RATIOS:
        if num in raw[group] and den in raw[group]:
            values = ratio_list(raw[group][num], raw[group][den])
            case["ratios"][f"{group}_{num}_{den}"] = values
            case[f"{group}_ratio_{num}_{den.removeprefix('ours_')}"] = median(values)
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


#: Targets (1 torch thread, CPU, one core each, ratios from one run): (issue, net_arch, env or None for every env,
#: figure key, threshold, text). A target whose figure was not measured (SBX not installed) is left out.
TARGETS = (
    (4, (64, 64), None, "learn_ratio_ours_sb3", 2.5, "full learn() loop >= 2.5x SB3 at [64, 64]"),
    (4, (400, 300), None, "learn_ratio_ours_sb3", 1.15, "full learn() loop >= 1.15x SB3 at [400, 300]"),
    (4, (400, 300), None, "train_ratio_ours_floor", 0.9, "train() within 10% of the eager PyTorch floor at [400, 300]"),
    (14, (64, 64), None, "learn_ratio_ours_sbx", 1.0, "full learn() loop >= 1.0x SBX at [64, 64]"),
    (14, (400, 300), "Pendulum-v1", "learn_ratio_ours_sbx", 1.0, "full learn() loop >= 1.0x SBX at [400, 300]"),
    (14, (64, 64), None, "train_ratio_ours_sbx", 1.0, "train() as one call of K steps >= 1.0x SBX at [64, 64]"),
    (14, (400, 300), None, "train_ratio_ours_sbx", 1.0, "train() as one call of K steps >= 1.0x SBX at [400, 300]"),
)
BUFFER_TARGET = 0.55


def target_lines(report: dict[str, Any]) -> list[str]:
    """
    :param report: What :func:`main` collected.
    :return: Markdown lines: each throughput and memory target (issues 4 and 14) with the measured figure.
    """
    lines = []
    for issue, arch, env_id, key, threshold, text in TARGETS:
        for case in report["cases"]:
            if tuple(case["arch"]) == arch and env_id in (None, case["env"]) and key in case:
                value = case[key]
                mark = "met" if value >= threshold else "**not met**"
                lines.append(f"| {issue} | {text} | {case['env']} | {value:.2f} | {mark} |")
    for row in report["buffers"]:
        value = row["ratio_ours_optimized_sb3_default"]
        mark = "met" if value <= BUFFER_TARGET else "**not met**"
        text = f"memory-optimised buffer <= {BUFFER_TARGET}x SB3 default bytes/transition"
        lines.append(f"| 4 | {text} | {row['env']} | {value:.2f} | {mark} |")
    if not lines:
        return []
    return ["## Targets", "", "| issue | target | env | measured | |", "|---|---|---|---:|---|", *lines, ""]


def shortfall_lines(report: dict[str, Any]) -> list[str]:
    """
    :param report: What :func:`main` collected.
    :return: Markdown lines: for each throughput target of issues 4 and 14 that is not met, where the time of a step
        or of an update goes (microseconds, from the tables below), which shows why; empty when all are met.
    """
    has_sbx = report.get("sbx", {}).get("measured", False)
    lines = []
    for case in report["cases"]:
        arch = tuple(case["arch"])
        where = f"{case['env']} {arch_name(arch)}"
        learn, train, single = case["learn_steps_per_s"], case["train_updates_per_s"], case["train_1step_updates_per_s"]
        env_us = 1e6 / case["env_steps_per_s"]
        ours_step, ours_call = 1e6 / learn["ours"], 1e6 / single["ours"]
        ours_rest = ours_step - env_us - ours_call
        if arch == (64, 64) and case.get("learn_ratio_ours_sb3", math.inf) < 2.5:
            allowed = 1e6 / learn["sb3"] / 2.5
            fixed = env_us + ours_call
            if fixed >= allowed:
                why = (
                    f"`env.step` ({env_us:.0f} us) and one `train(1)` call ({ours_call:.0f} us) alone take {fixed:.0f} us, "
                    f"more than the {allowed:.0f} us per step that 2.5x SB3 allows: no collection loop reaches it "
                    "without a faster update"
                )
            else:
                why = (
                    f"`env.step` ({env_us:.0f} us) and one `train(1)` call ({ours_call:.0f} us) leave "
                    f"{allowed - fixed:.0f} us of the {allowed:.0f} us per step that 2.5x SB3 allows for acting, storing, "
                    "callbacks and the logger; "
                    f"they take {ours_rest:.0f} us"
                )
            lines.append(f"- {where}, `learn()` 2.5x SB3: {why}.")
        if has_sbx and "sbx" in learn and case.get("learn_ratio_ours_sbx", math.inf) < 1.0:
            sbx_step, sbx_call = 1e6 / learn["sbx"], 1e6 / single["sbx"]
            sbx_rest = sbx_step - env_us - sbx_call
            lines.append(
                f"- {where}, `learn()` vs SBX: a step costs DDPGPlus {ours_step:.0f} us and SBX {sbx_step:.0f} us "
                f"({ours_step - sbx_step:+.0f}): one `train(1)` call {ours_call:.0f} vs {sbx_call:.0f} us "
                f"({ours_call - sbx_call:+.0f}), the rest of the step (acting, storing, callbacks, logger) {ours_rest:.0f} "
                f"vs {sbx_rest:.0f} us ({ours_rest - sbx_rest:+.0f})."
            )
        if has_sbx and "sbx" in train and case.get("train_ratio_ours_sbx", math.inf) < 1.0:
            bound = 1e6 / case["gemm_bound_updates_per_s"]
            ours_update, sbx_update = 1e6 / train["ours"], 1e6 / train["sbx"]
            compiled = (
                f" ({1e6 / train['ours_compiled']:.0f} us with `compile_update=True`)" if "ours_compiled" in train else ""
            )
            lines.append(
                f"- {where}, `train()` as one call of K vs SBX: an update costs DDPGPlus {ours_update:.0f} us"
                f"{compiled} and SBX {sbx_update:.0f} us; its matrix products alone need {bound:.0f} us at the best GEMM "
                f"rate measured here, so {ours_update - bound:.0f} us per update go to the rest (element-wise work, "
                "Adam, products below the best rate, the host side of a call) against "
                f"{sbx_update - bound:.0f} us in SBX's one compiled program."
            )
    if not lines:
        return []
    return ["## What is not reached, and why", "", *lines, ""]


def format_ratio(case: dict[str, Any], key: str) -> str:
    """
    :param case: One measured case.
    :param key: Key in ``case["ratios"]`` (e.g. ``learn_ours_sbx``).
    :return: The median of the per-repeat ratios in bold, with their range when there are several; ``-`` when not
        measured.
    """
    values = case.get("ratios", {}).get(key)
    if not values:
        return "-"
    text = f"**{median(values):.2f}x**"
    if len(values) > 1:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def format_rate(figures: dict[str, float], name: str) -> str:
    """
    :param figures: Medians by timer name.
    :param name: Timer name.
    :return: The figure to one decimal, ``-`` when not measured.
    """
    return f"{figures[name]:.1f}" if name in figures else "-"


def sbx_lines(report: dict[str, Any]) -> list[str]:
    """
    :param report: What :func:`main` collected.
    :return: Markdown bullet saying how SBX was set up and where it differs, or why it is missing.
    """
    sbx = report.get("sbx", {})
    if not sbx.get("measured"):
        return [f"- SBX DDPG: not measured ({sbx.get('reason', 'not requested')}); `pip install -e '.[peers]'` adds it."]
    return [
        "- SBX DDPG: `sbx.DDPG` (SBX's TD3 with `policy_delay=1` and target-policy noise clipped to 0) with the same "
        "arguments plus `qf_learning_rate=1e-3` (SBX takes the critic's rate separately; its default actor rate is "
        "3e-4, here both are 1e-3 as in SB3) and `policy_kwargs` `n_critics=1, layer_norm=False, dropout_rate=0` (its "
        "DDPG defaults, stated): one critic, no layer norm, the same layer widths, so the actor + critic parameter "
        "counts equal SB3's (checked, column `params`). What differs and does not change the matrix work: its critic "
        "loss is 0.5 x MSE (Adam is invariant to the factor up to eps), it soft-updates the targets between the critic "
        "and the actor step (SB3 after both), it draws target-policy noise and clips it to 0, flax's default "
        "initialisation, and its `train()` samples the K batches in one buffer call and runs the K steps as one "
        "compiled `fori_loop`. Its worker runs with `JAX_PLATFORMS=cpu` and "
        f'`XLA_FLAGS="{report["settings"].get("xla_flags", "")}"` set before JAX is imported.',
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """
    :param report: What :func:`main` collected.
    :return: ``speed.md``.
    """
    machine, vers, settings = report["machine"], report["versions"], report["settings"]
    has_sbx = report.get("sbx", {}).get("measured", False)
    libs = ["sb3", "ours", "sbx"] if has_sbx else ["sb3", "ours"]
    lib_cols = " | ".join(LIBRARIES[name] for name in libs)
    ratio_names = ["ours / SB3", "ours / SBX"] if has_sbx else ["ours / SB3"]
    ratio_cols = " | ".join(ratio_names)
    ratio_dens = ["sb3", "sbx"] if has_sbx else ["sb3"]
    lines = [
        "# Throughput: SB3 DDPG vs DDPGPlus" + (" vs SBX DDPG" if has_sbx else ""),
        "",
        f"Generated {report['date']} by `{report['command']}`.",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores ({machine['usable_cores']} usable), "
        f"load average at start {machine['load_average']}; the machine may be shared, so compare the ratios (measured "
        "side by side in one run) rather than absolute figures across runs.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- Settings: torch threads {settings['torch_threads']}, batch {BATCH_SIZE}, lr 1e-3, tau 0.005, gamma 0.99, "
        "Gaussian action noise 0.1, train_freq 1, gradient_steps 1, device cpu; each library in its own process, "
        f"pinned: {settings.get('pinning', 'not pinned')}; {settings['repeats']} alternated repeats (order flips each "
        "repeat, one process computes at a time), medians reported; ratios are medians of the per-repeat ratios "
        "(range in brackets). Warm-up (first calls, JAX compilation) is excluded from every rate and reported at the end. "
        'DDPGPlus runs with its defaults (`native_update="auto"`: its gradient steps as one C loop wherever it '
        'applies, which is everywhere here; see the table "What the native update contributes").',
        *sbx_lines(report),
        "",
        *target_lines(report),
        *shortfall_lines(report),
        "## Full `learn()` loop (env steps/s, after `learning_starts=256`, one gradient step per env step)",
        "",
        f"| env | net_arch | params | steps timed | {lib_cols} | {ratio_cols} |",
        "|---|---|---:|---:|" + "---:|" * (len(libs) + len(ratio_dens)),
    ]
    for case in report["cases"]:
        learn = case["learn_steps_per_s"]
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {case['params']['sb3']} | {case['learn_steps']} | "
            + " | ".join(format_rate(learn, name) for name in libs)
            + " | "
            + " | ".join(format_ratio(case, f"learn_ours_{den}") for den in ratio_dens)
            + " |"
        )
    lines += [
        "",
        "`params`: trainable scalars of actor + critic (targets excluded), checked equal across the libraries.",
        "",
        "## Where one `learn()` step goes (microseconds per env step, medians)",
        "",
        "`env.step` is `VecEnv.step` alone in the wrappers `learn()` uses (Monitor in a DummyVecEnv), random actions: "
        "every library pays it. `train()` alone is one gradient update from the table below. The last column is the "
        "whole step DDPGPlus may take for the 2.5x target.",
        "",
        f"| env | net_arch | {lib_cols} | env.step | DDPGPlus outside env.step | DDPGPlus train() alone | SB3 / 2.5 |",
        "|---|---|" + "---:|" * (len(libs) + 4),
    ]
    for case in report["cases"]:
        learn, train = case["learn_steps_per_s"], case["train_updates_per_s"]
        sb3_us, ours_us, env_us = 1e6 / learn["sb3"], 1e6 / learn["ours"], 1e6 / case["env_steps_per_s"]
        lib_us = " | ".join(f"{1e6 / learn[name]:.0f}" if name in learn else "-" for name in libs)
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {lib_us} | {env_us:.0f} "
            f"| {ours_us - env_us:.0f} | {1e6 / train['ours']:.0f} | {sb3_us / 2.5:.0f} |"
        )
    lines += [
        "",
        f"## `train()` as one call of K gradient steps (updates/s, batch {BATCH_SIZE}, buffer of {TRAIN_FILL} random "
        "transitions)",
        "",
        "`model.train(gradient_steps=K, batch_size=256)`; SBX compiles the K steps into one loop. Two floors:",
        "",
        "- **eager floor**: a minimal eager PyTorch DDPG update on the same networks (Adam, critic parameters frozen "
        "during the actor's backward pass, polyak update with `torch._foreach`, matrix products on PyTorch's default "
        "CPU kernels), see `FloorDDPG` in `benchmarks/speed.py`: what an eager PyTorch update can reach, not what the "
        "machine can;",
        "- **GEMM bound**: the matrix-product FLOPs of one update (`ddpg_update_flops`: targets, critic forward and "
        "gradients, actor forward and gradients through the frozen critic; element-wise work, Adam and polyak left "
        "out) divided by the best single-thread GEMM rate measured on this core at the update's largest product "
        "(table below): an upper bound that no implementation reaches.",
        "",
        "DDPGPlus (autograd) is DDPGPlus with `manual_backward=False`: its gradients computed by autograd instead of "
        "by hand (`sb3_ddpg_plus/manual_backward.py`); the last column is what the hand-written gradients contribute.",
        "",
        f"| env | net_arch | K | {lib_cols} | eager floor | GEMM bound | DDPGPlus (autograd) | {ratio_cols} "
        "| ours / eager floor | ours / GEMM bound | ours / autograd |",
        "|---|---|---:|" + "---:|" * (len(libs) + 3 + len(ratio_dens) + 3),
    ]
    for case in report["cases"]:
        train = case["train_updates_per_s"]
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {case['train_steps']} | "
            + " | ".join(format_rate(train, name) for name in libs)
            + f" | {train['floor']:.1f} | {case['gemm_bound_updates_per_s']:.1f} | {format_rate(train, 'ours_autograd')} | "
            + " | ".join(format_ratio(case, f"train_ours_{den}") for den in ratio_dens)
            + f" | {format_ratio(case, 'train_ours_floor')} | {case['train_ratio_ours_gemm_bound']:.2f} "
            f"| {format_ratio(case, 'train_ours_ours_autograd')} |"
        )
    native_cases = [case for case in report["cases"] if "ours_eager" in case["train_updates_per_s"]]
    if native_cases:
        lines += [
            "",
            "### What the native update contributes",
            "",
            'DDPGPlus runs with its defaults, so with `native_update="auto"`: the gradient steps of a `train()` call '
            "as one C loop around a BLAS `sgemm` (`sb3_ddpg_plus/native_update.py`): PyTorch's own `sgemm_` or numpy's "
            "OpenBLAS, chosen once per machine and network shape (`sb3_ddpg_plus/native_blas.py`; column BLAS: the one "
            "this run's DDPGPlus used). DDPGPlus (eager) is the same model with `native_update=False`: the hand-written "
            "update as eager PyTorch operations. Timed in the same repeats; updates/s.",
            "",
            "| env | net_arch | K | BLAS | one call of K: native | eager | native / eager "
            "| K calls of one: native | eager | native / eager |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for case in native_cases:
            train, single = case["train_updates_per_s"], case["train_1step_updates_per_s"]
            used = case.get("native_blas", {}).get("train/ours", "-")
            lines.append(
                f"| {case['env']} | {arch_name(case['arch'])} | {case['train_steps']} | {used} | {train['ours']:.1f} "
                f"| {train['ours_eager']:.1f} | {format_ratio(case, 'train_ours_ours_eager')} "
                f"| {format_rate(single, 'ours')} | {format_rate(single, 'ours_eager')} "
                f"| {format_ratio(case, 'train_1step_ours_ours_eager')} |"
            )
    compiled_cases = [case for case in report["cases"] if "ours_compiled" in case["train_updates_per_s"]]
    if compiled_cases:
        sbx_cols = " | SBX DDPG | compiled / SBX" if "sbx" in libs else ""
        lines += [
            "",
            "### The same with `compile_update=True`",
            "",
            "DDPGPlus's opt-in compiled update (`sb3_ddpg_plus/compiled_update.py`: the K steps as one `torch.compile`-d "
            "scan over the hand-written update, with `native_update=False`), timed in the same repeats against DDPGPlus "
            "with its defaults (the native update); its compilation is the first call, in the warm-up column "
            "(inductor's disk cache makes later processes faster).",
            "",
            f"| env | net_arch | K | DDPGPlus | DDPGPlus compiled | compiled / DDPGPlus{sbx_cols} | compilation (s) |",
            "|---|---|---:|---:|---:|---:|" + ("---:|---:|" if sbx_cols else "") + "---:|",
        ]
        for case in compiled_cases:
            train = case["train_updates_per_s"]
            sbx_cells = f" | {format_rate(train, 'sbx')} | {format_ratio(case, 'train_ours_compiled_sbx')}" if sbx_cols else ""
            lines.append(
                f"| {case['env']} | {arch_name(case['arch'])} | {case['train_steps']} | {train['ours']:.1f} "
                f"| {train['ours_compiled']:.1f} | {format_ratio(case, 'train_ours_compiled_ours')}{sbx_cells} "
                f"| {case['warmup_s']['train']['ours_compiled']:.1f} |"
            )
    lines += [
        "",
        "## `train()` as K calls of one gradient step (updates/s)",
        "",
        "`model.train(gradient_steps=1, batch_size=256)` K times: what `learn()` does with `train_freq=1, "
        "gradient_steps=1`, so every call pays the fixed cost of a call.",
        "",
        f"| env | net_arch | K | {lib_cols} | {ratio_cols} |",
        "|---|---|---:|" + "---:|" * (len(libs) + len(ratio_dens)),
    ]
    for case in report["cases"]:
        single = case["train_1step_updates_per_s"]
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {case['train_steps']} | "
            + " | ".join(format_rate(single, name) for name in libs)
            + " | "
            + " | ".join(format_ratio(case, f"train_1step_ours_{den}") for den in ratio_dens)
            + " |"
        )
    measured = {name for case in report["cases"] for name in case["gemm"]["gflops"]}
    backends = [name for name in GEMM_BACKENDS if name in measured] + sorted(measured - set(GEMM_BACKENDS))
    lines += [
        "",
        "## GEMM rates and the FLOP bound (one thread, float32, best of the rounds)",
        "",
        "The update's largest matrix product `(batch, in) @ (in, out)` timed through each kernel available: numpy's "
        "BLAS, `torch.mm` (PyTorch's default CPU path), oneDNN through PyTorch (`torch._C._nn.mkldnn_linear`, both "
        "`to_mkldnn()` conversions included) and, with SBX, a jitted `jnp.dot`. GEMM bound = best rate / FLOPs per "
        "update.",
        "",
        "| env | net_arch | product | " + " | ".join(f"{b} GFLOP/s" for b in backends) + " | MFLOP per update "
        "| GEMM bound updates/s |",
        "|---|---|---|" + "---:|" * (len(backends) + 2),
    ]
    for case in report["cases"]:
        m, k, n = case["gemm"]["shape"]
        rates = case["gemm"]["gflops"]
        cells = " | ".join(
            ("**{:.1f}**" if b == case["gemm"]["best_backend"] else "{:.1f}").format(rates[b]) if b in rates else "-"
            for b in backends
        )
        lines.append(
            f"| {case['env']} | {arch_name(case['arch'])} | {m}x{k} @ {k}x{n} | {cells} "
            f"| {case['flops_per_update'] / 1e6:.1f} | {case['gemm_bound_updates_per_s']:.1f} |"
        )
    lines += [
        "",
        "## Warm-up, excluded from the rates (seconds)",
        "",
        f"`learn()` warm-up: the first `learning_starts + 32 = {BATCH_SIZE + 32}` steps (random actions, then acting and "
        "training; SBX compiles its update and its action selection here). A `train()` warm-up is one untimed call "
        "of the timed form (SBX compiles one program per number of gradient steps). For SBX, first call minus steady "
        "call is roughly the compile time.",
        "",
        "| env | net_arch | library | learn() warm-up | first train(K) call | steady train(K) call | first train(1) "
        "call | steady train(1) call |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        warmup, k = case["warmup_s"], case["train_steps"]
        for name in libs:
            if name not in case["learn_steps_per_s"]:
                continue
            lines.append(
                f"| {case['env']} | {arch_name(case['arch'])} | {LIBRARIES[name]} | {warmup['learn'][name]:.2f} "
                f"| {warmup['train'][name]:.3f} | {k / case['train_updates_per_s'][name]:.3f} "
                f"| {warmup['train_1step'][name]:.4f} | {1 / case['train_1step_updates_per_s'][name]:.4f} |"
            )
    lines += [
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
    if report.get("prioritized"):
        lines[-2:-2] = [*replay_cost.markdown(report["prioritized"])]
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
    parser.add_argument(
        "--learn-steps",
        type=int,
        default=None,
        help="env steps per learn() measurement (default 1000 for nets <= 128 wide, else 400; quick 64)",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="gradient steps K per train() measurement (default 600 for nets <= 128 wide, else 250; quick 16)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the models")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark's contract is 1)")
    parser.add_argument("--no-sbx", action="store_true", help="do not measure SBX's JAX DDPG even when it is installed")
    parser.add_argument(
        "--core",
        type=int,
        default=None,
        help="CPU core every library's worker is pinned to (default: the first usable one; with --threads > 1: none)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the workers to a core")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="folder for speed.md and speed.json (default benchmarks/results)"
    )
    parser.add_argument("--no-buffer", action="store_true", help="skip the replay-buffer size table")
    parser.add_argument(
        "--no-prioritized", action="store_true", help="skip the prioritized-replay sampling cost table (PER, LAP)"
    )
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="skip DDPGPlus with compile_update=True in the train() table (each case compiles for tens of seconds; "
        "--quick skips it too)",
    )


def progress_line(case: dict[str, Any]) -> str:
    """
    :param case: One measured case.
    :return: One line of progress: each library's ``learn()`` and ``train()`` rates and the ratios.
    """
    names = [name for name in LIBRARIES if name in case["learn_steps_per_s"]]
    parts = []
    for group, unit in (
        ("learn_steps_per_s", "steps/s"),
        ("train_updates_per_s", "updates/s (1 call of K)"),
        ("train_1step_updates_per_s", "updates/s (K calls)"),
    ):
        figures = case[group]
        kind = group.split("_updates")[0].split("_steps")[0]
        ratios = ", ".join(f"ours/{den} {median(case['ratios'][f'{kind}_ours_{den}']):.2f}x" for den in names if den != "ours")
        parts.append(f"{kind} " + " / ".join(f"{figures[n]:.1f}" for n in names) + f" {unit} ({ratios})")
    return (
        f"[speed] {case['env']} {arch_name(case['arch'])} [{' / '.join(names)}]: "
        + "; ".join(parts)
        + (f"; eager floor {case['train_updates_per_s']['floor']:.1f}, GEMM bound {case['gemm_bound_updates_per_s']:.1f}")
    )


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
    for option in ("learn_steps", "train_steps"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    libraries = ["sb3", "ours"]
    sbx_reason = "--no-sbx" if getattr(args, "no_sbx", False) else sbx_missing_reason()
    if sbx_reason is None:
        libraries.append("sbx")
    elif sbx_reason != "--no-sbx":
        print(SBX_SKIP_LINE, flush=True)
    # One core per worker (they take turns), by default the first this process may use; more than one thread per
    # worker only makes sense unpinned (or on the core asked for).
    core = None if getattr(args, "no_pin", False) else getattr(args, "core", None)
    if core is None and not getattr(args, "no_pin", False) and args.threads == 1:
        core = default_core()
    report: dict[str, Any] = {
        "command": command_line(),
        "date": now_utc(),
        **system_info(),
        "settings": {"torch_threads": th.get_num_threads(), "repeats": repeats, "quick": args.quick, "seed": args.seed},
        "cases": [],
        "buffers": [],
    }
    start = time.perf_counter()
    workers = start_workers(libraries, args.threads, core)
    try:
        if "sbx" in workers:
            report["versions"].update(peer_versions())
            report["settings"]["xla_flags"] = worker_environment("sbx", args.threads).get("XLA_FLAGS", "")
            report["sbx"] = {"measured": True}
        else:
            # Dropped by start_workers when its worker could not import SBX (it printed why).
            report["sbx"] = {"measured": False, "reason": sbx_reason or "its worker could not import sbx"}
        report["settings"]["pinning"] = workers["sb3"].pinning
        report["settings"]["workers"] = {name: worker.info for name, worker in workers.items()}
        for env_id in args.envs:
            for arch in args.archs:
                learn_steps, train_steps = default_steps(arch, args.quick)
                case = run_case(
                    workers,
                    env_id,
                    arch,
                    repeats,
                    args.seed,
                    learn_steps=getattr(args, "learn_steps", None) or learn_steps,
                    train_steps=getattr(args, "train_steps", None) or train_steps,
                    quick=args.quick,
                    compiled=not (args.quick or getattr(args, "no_compiled", False)),
                )
                report["cases"].append(case)
                print(f"{progress_line(case)} [{time.perf_counter() - start:.0f}s]", flush=True)
            if not args.no_buffer:
                report["buffers"].append(buffer_case(DDPGPlus, env_id))
        if not getattr(args, "no_prioritized", False):
            # In this process, pinned to the workers' core: sampling + priority update next to a [64, 64] update
            if core is not None and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {core})
            report["prioritized"] = replay_cost.measure(
                repeats=repeats, calls=50 if args.quick else 200, fill=2_000 if args.quick else replay_cost.FILL
            )
            print(f"[speed] prioritized replay: {report['prioritized']['share_of_update']}", flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "speed.json", report)
    write_file(args.out / "speed.md", render_markdown(report))
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
