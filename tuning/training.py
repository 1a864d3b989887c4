"""
Train one configuration on one environment with one seed, evaluating on a fixed grid of timesteps.

Shared by the objective (which turns evaluations into Optuna reports) and the report (which re-trains the best
configurations with fresh seeds), so both measure exactly the same thing.
"""

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

# Gymnasium plugins that register environments on import; tried when an id is unknown.
_ENV_PLUGINS = ("pybullet_envs_gymnasium",)
# Offsets the evaluation env's seeds from the training env's so the two never replay the same episodes.
_EVAL_SEED_OFFSET = 1_000_003

EvalHook = Callable[[int, float], None]


class UnknownEnvironmentError(ValueError):
    """No Gymnasium registration (nor plugin) knows this environment id."""


def ensure_registered(env_id: str) -> None:
    """
    Import the plugin that registers ``env_id`` if Gymnasium does not know it yet (e.g. PyBullet tasks).

    :param env_id: Gymnasium id
    """
    if env_id in gym.registry:
        return
    for module in _ENV_PLUGINS:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        if env_id in gym.registry:
            return
    raise UnknownEnvironmentError(f"unknown environment {env_id!r} (not registered by gymnasium or {', '.join(_ENV_PLUGINS)})")


def make_env(env_id: str) -> gym.Env:
    """
    :param env_id: Gymnasium id (PyBullet ids are registered on demand)
    :return: a fresh environment
    """
    ensure_registered(env_id)
    return gym.make(env_id)


@dataclass
class TrainingResult:
    """
    Evaluations of one training run.

    :param timesteps: timesteps at which the policy was evaluated
    :param mean_returns: mean episodic return of each evaluation
    """

    timesteps: list[int] = field(default_factory=list)
    mean_returns: list[float] = field(default_factory=list)

    def final_score(self, window: int, after: int = 0) -> float:
        """
        Mean of the last ``window`` evaluations (less noisy than the last one alone, rl-zoo issue #469).

        :param window: number of evaluations to average
        :param after: ignore evaluations before this timestep (e.g. during the random warm-up)
        :return: the score, ``nan`` if no evaluation qualifies
        """
        values = [
            value for step, value in zip(self.timesteps, self.mean_returns, strict=True) if step >= after
        ] or self.mean_returns
        return float(np.mean(values[-window:])) if values else math.nan


class _EvalOnGrid(BaseCallback):
    """Evaluate every ``eval_freq`` timesteps and hand each result to ``hook`` (which may raise to stop training)."""

    def __init__(
        self,
        eval_env: DummyVecEnv,
        eval_freq: int,
        budget: int,
        n_eval_episodes: int,
        result: TrainingResult,
        hook: EvalHook | None,
    ):
        super().__init__()
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.budget = budget
        self.n_eval_episodes = n_eval_episodes
        self.result = result
        self.hook = hook

    def evaluate(self) -> None:
        mean_return, _ = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes, deterministic=True, warn=False
        )
        self.result.timesteps.append(int(self.num_timesteps))
        self.result.mean_returns.append(float(mean_return))
        if self.hook is not None:
            self.hook(int(self.num_timesteps), float(mean_return))

    def _on_step(self) -> bool:
        # One training env, so num_timesteps advances by one per call and hits every multiple of eval_freq and the
        # budget itself; steps past the budget (train_freq > 1 overshoots) are not evaluated, keeping the grid shared.
        if self.num_timesteps <= self.budget and (
            self.num_timesteps % self.eval_freq == 0 or self.num_timesteps == self.budget
        ):
            self.evaluate()
        return True


def train_and_evaluate(
    hyperparams: dict[str, Any],
    env_id: str,
    seed: int,
    budget: int,
    eval_freq: int,
    n_eval_episodes: int,
    hook: EvalHook | None = None,
    model_overrides: dict[str, Any] | None = None,
) -> TrainingResult:
    """
    Build a ``DDPGPlus`` from plain-data hyperparameters, train it for ``budget`` timesteps and evaluate it.

    Evaluations happen every ``eval_freq`` timesteps and at ``budget`` (if the grid misses it); each uses
    ``n_eval_episodes`` deterministic episodes on a separate, separately seeded environment.

    :param hyperparams: plain-data hyperparameters (``sb3_ddpg_plus.hyperparams`` format); runner keys are ignored
    :param env_id: Gymnasium id
    :param seed: seed of the model, the training env and (offset) the evaluation env
    :param budget: training timesteps
    :param eval_freq: timesteps between evaluations
    :param n_eval_episodes: episodes per evaluation
    :param hook: called as ``hook(timesteps, mean_return)`` after each evaluation; raising stops training
    :param model_overrides: extra constructor arguments that are not part of the tuned configuration
        (e.g. ``check_numerics=True``)
    :return: the evaluations
    """
    from sb3_ddpg_plus.hyperparams import make_model  # drops runner keys (n_timesteps, ...) itself

    ensure_registered(env_id)
    train_env = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
    try:
        eval_env.seed(seed + _EVAL_SEED_OFFSET)
        model = make_model(hyperparams, train_env, seed=seed, verbose=0, **(model_overrides or {}))
        result = TrainingResult()
        model.learn(total_timesteps=budget, callback=_EvalOnGrid(eval_env, eval_freq, budget, n_eval_episodes, result, hook))
        return result
    finally:
        train_env.close()
        eval_env.close()
