"""
The train-and-evaluate protocol of every experiment: ``tuning/`` trials and re-trainings, ``benchmarks/`` runs.

One run trains one model on one environment with one seed for ``budget`` timesteps and evaluates it with SB3's
``evaluate_policy``, as SB3's ``EvalCallback`` does (deterministic actions, ``Monitor`` returns, ``VecNormalize``
statistics synced from the training env, training stopped when the hook after an evaluation says so):

- the training env is seeded by the model's seed; the evaluation env, separate, with ``seed + EVAL_SEED_OFFSET``
  (never the training episodes);
- evaluations happen at timestep 0 (the untrained policy: learning curves start there), whenever the timesteps cross
  a multiple of ``eval_freq``, and once more after training when the last one was not of the final model (SB3
  collects whole ``train_freq`` rollouts, so training may end past the budget). ``EvalCallback`` counts ``eval_freq``
  in callback calls, i.e. ``n_envs`` timesteps each; this grid is in timesteps whatever ``n_envs`` is;
- the score of a run is the mean return of its last ``window`` evaluations at or after a timestep
  (:meth:`TrainingResult.score`): ``benchmarks/`` use the last evaluation, ``tuning/`` the last 3 past
  ``learning_starts`` (less noisy, rl-zoo issue #469).

The model is built by a function of the training env, so one protocol serves DDPGPlus (the default: plain-data
hyperparameters through :func:`sb3_ddpg_plus.hyperparams.make_model`) and the upstream SB3 algorithms the benchmarks
compare with. The runner keys ``n_envs`` and ``normalize`` of the hyperparameters shape the envs.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize, sync_envs_normalization

from sb3_ddpg_plus.experiments.envs import make_env

#: The evaluation env of a run with seed ``s`` is seeded ``s + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000


@dataclass
class TrainingResult:
    """
    Evaluations (and training episodes) of one run.

    :param timesteps: Timesteps at which the policy was evaluated
    :param train_s: Seconds of training (evaluations excluded) before each evaluation
    :param returns: Episode returns of each evaluation
    :param episode_timesteps: Timesteps at which training episodes ended
    :param episode_returns: Returns of those training episodes
    :param num_timesteps: Timesteps trained (past the budget when SB3 overshoots it)
    :param wall_s: Seconds from the start of training to its end (or to the final evaluation), evaluations included
    :param eval_s: Seconds spent evaluating
    :param model: The trained model (``None`` once dropped)
    """

    timesteps: list[int] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    returns: list[list[float]] = field(default_factory=list)
    episode_timesteps: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    num_timesteps: int = 0
    wall_s: float = 0.0
    eval_s: float = 0.0
    model: BaseAlgorithm | None = field(default=None, repr=False)

    @property
    def mean_returns(self) -> list[float]:
        """Mean episode return of each evaluation."""
        return [float(np.mean(returns)) for returns in self.returns]

    @property
    def std_returns(self) -> list[float]:
        """Standard deviation (``ddof=0``, as ``evaluate_policy``) of the episode returns of each evaluation."""
        return [float(np.std(returns)) for returns in self.returns]

    def score(self, window: int = 1, after: int = 0) -> float:
        """
        The score of the run: the mean of the mean returns of its last ``window`` evaluations at or after ``after``.

        :param window: Number of evaluations averaged (1: the last evaluation)
        :param after: Ignore evaluations before this timestep (e.g. the random warm-up); when none is left, all count
        :return: The score, ``nan`` without any evaluation
        """
        means = self.mean_returns
        values = [mean for step, mean in zip(self.timesteps, means, strict=True) if step >= after] or means
        return float(np.mean(values[-window:])) if values else math.nan


#: Called after each evaluation with the result so far; ``False`` stops training (as ``EvalCallback``'s
#: ``callback_after_eval``), an exception propagates (the tuning objective prunes that way).
EvaluationHook = Callable[[TrainingResult], "bool | None"]


class EvalCurve(BaseCallback):
    """
    Evaluate on the protocol's grid and record the training episodes (see the module docstring).

    :param eval_env: Evaluation env (``Monitor``-wrapped, ``VecNormalize`` when the training env is)
    :param eval_freq: Timesteps between evaluations
    :param n_eval_episodes: Deterministic episodes per evaluation
    :param result: Where evaluations and episodes are recorded
    :param on_evaluation: Called after each evaluation (see :data:`EvaluationHook`)
    """

    def __init__(
        self,
        eval_env: VecEnv,
        eval_freq: int,
        n_eval_episodes: int,
        result: TrainingResult,
        on_evaluation: EvaluationHook | None = None,
    ):
        super().__init__()
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.result = result
        self.on_evaluation = on_evaluation
        self.next_eval = eval_freq
        self.continue_training = True
        self.start = time.perf_counter()

    def evaluate(self) -> None:
        """Evaluate the current policy and record it at the model's current timestep."""
        assert self.model is not None
        result = self.result
        start = time.perf_counter()
        result.train_s.append(round(start - self.start - result.eval_s, 3))
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.model.get_env(), self.eval_env)  # type: ignore[arg-type]
        returns, _ = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes, deterministic=True, return_episode_rewards=True
        )
        result.eval_s += time.perf_counter() - start
        result.timesteps.append(int(self.model.num_timesteps))
        result.returns.append([float(value) for value in returns])  # type: ignore[union-attr]
        if self.on_evaluation is not None and self.on_evaluation(result) is False:
            self.continue_training = False

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.evaluate()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.result.episode_timesteps.append(int(self.num_timesteps))
                self.result.episode_returns.append(float(info["episode"]["r"]))
        if self.num_timesteps >= self.next_eval:
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.eval_freq
            self.evaluate()
        return self.continue_training


def make_vec_env(
    env_id: str, seed: int, n_envs: int = 1, normalize: "bool | Mapping[str, Any]" = False, training: bool = True
) -> VecEnv:
    """
    The ``Monitor``-wrapped ``DummyVecEnv`` of a run, seeded, with ``VecNormalize`` when asked.

    :param env_id: Gymnasium id
    :param seed: Seed of the first reset
    :param n_envs: Number of envs
    :param normalize: ``VecNormalize`` options (``True``: its defaults; ``False``: none)
    :param training: Training env (``VecNormalize`` updates its statistics and normalises rewards) or evaluation env
        (true returns; statistics synced from the training env before each evaluation)
    :return: The vectorised env
    """
    vec_env: VecEnv = DummyVecEnv([lambda: Monitor(make_env(env_id))] * n_envs)
    vec_env.seed(seed)
    if normalize:
        options = dict(normalize) if isinstance(normalize, Mapping) else {}
        if training:
            vec_env = VecNormalize(vec_env, **options)
        else:
            vec_env = VecNormalize(vec_env, training=False, norm_obs=options.get("norm_obs", True), norm_reward=False)
    return vec_env


def train_and_evaluate(
    hyperparams: Mapping[str, Any],
    env_id: str,
    seed: int,
    budget: int,
    eval_freq: int,
    n_eval_episodes: int,
    make_model: Callable[[VecEnv], BaseAlgorithm] | None = None,
    on_evaluation: EvaluationHook | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    keep_model: bool = False,
) -> TrainingResult:
    """
    Train one model under the protocol (see the module docstring) and return its evaluations.

    :param hyperparams: Plain-data hyperparameters (:mod:`sb3_ddpg_plus.hyperparams` format); the runner keys
        ``n_envs`` and ``normalize`` shape the envs, ``n_timesteps`` is ignored (``budget`` decides)
    :param env_id: Gymnasium id
    :param seed: Seed of the model and its training env; the evaluation env gets ``seed + EVAL_SEED_OFFSET``
    :param budget: Training timesteps
    :param eval_freq: Timesteps between evaluations
    :param n_eval_episodes: Deterministic episodes per evaluation
    :param make_model: Builds the model on the training env (default: ``DDPGPlus`` from ``hyperparams``, seeded,
        ``verbose=0``)
    :param on_evaluation: Called after each evaluation (see :data:`EvaluationHook`)
    :param model_kwargs: Constructor arguments of the default model that are not part of the configuration
        (e.g. ``check_numerics=True``)
    :param keep_model: Keep the trained model in :attr:`TrainingResult.model` (e.g. to save it)
    :return: The evaluations
    """
    if make_model is None:
        from sb3_ddpg_plus.hyperparams import make_model as make_ddpg_plus

        def make_model(env: VecEnv) -> BaseAlgorithm:
            return make_ddpg_plus(hyperparams, env, seed=seed, verbose=0, **(model_kwargs or {}))

    normalize = hyperparams.get("normalize", False)
    train_env = make_vec_env(env_id, seed, int(hyperparams.get("n_envs", 1)), normalize)
    eval_env = make_vec_env(env_id, seed + EVAL_SEED_OFFSET, 1, normalize, training=False)
    try:
        model = make_model(train_env)
        result = TrainingResult()
        curve = EvalCurve(eval_env, eval_freq, n_eval_episodes, result, on_evaluation)
        model.learn(total_timesteps=budget, callback=curve)
        if curve.continue_training and result.timesteps[-1] != model.num_timesteps:
            curve.evaluate()
        result.num_timesteps = int(model.num_timesteps)
        result.wall_s = time.perf_counter() - curve.start
        if keep_model:
            result.model = model
        return result
    finally:
        train_env.close()
        eval_env.close()
