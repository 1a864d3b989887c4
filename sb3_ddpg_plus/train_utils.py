"""
Helpers of ``DDPGPlus.train()`` that keep it as short as SB3's TD3: replay samples shared by several gradient steps,
losses summed on the device and read once per call, and freezing parameters for the actor's backward pass.
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize
from torch.nn import functional as F

# Largest replay sample drawn at once in train() (several gradient steps share one sample up to this size)
SAMPLE_CHUNK_BYTES = 32 * 1024 * 1024


def critic_loss_fn(current_q: th.Tensor, target_q: th.Tensor, weights: th.Tensor | None, huber: bool) -> th.Tensor:
    """
    One critic's loss: ``F.mse_loss`` (DDPG/TD3), weighted by importance weights (PER), or the Huber loss with
    ``delta=1`` (LAP: with priorities ``max(|delta|^alpha, 1)`` it makes prioritised sampling unbiased for the MSE).

    :param current_q: The critic's Q-values, ``(batch, 1)``
    :param target_q: The TD targets, ``(batch, 1)``
    :param weights: Importance-sampling weights ``(batch, 1)``, or ``None``
    :param huber: Huber loss instead of the squared error
    :return: The loss
    """
    if weights is None and not huber:
        return F.mse_loss(current_q, target_q)
    per_sample = F.huber_loss(current_q, target_q, reduction="none", delta=1.0) if huber else (current_q - target_q).square()
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def detached(tensor: th.Tensor) -> th.Tensor:
    """
    :param tensor: A loss
    :return: The loss detached from autograd's graph; itself when it has none (the hand-written gradients), without
        the dispatch of a ``detach()``
    """
    return tensor.detach() if tensor.requires_grad else tensor


def smoothed_target_actions(next_actions: th.Tensor, noise_std: float, noise_clip: float) -> th.Tensor:
    """
    TD3's target policy smoothing: ``clamp(a' + clamp(N(0, std), -clip, clip), -1, 1)``.

    The noise is drawn row by row as SB3 draws it (``randn_like`` of its contiguous actor output): the hand-written
    path may give the actions as a transposed view (skinny products), which ``randn_like`` would otherwise fill in
    that view's memory order, so that a seeded run would draw the same numbers into other elements.

    :param next_actions: The target actor's actions (scaled)
    :param noise_std: Standard deviation of the noise
    :param noise_clip: Limit of its absolute value
    :return: The smoothed actions
    """
    noise = th.randn_like(next_actions, memory_format=th.contiguous_format).mul_(noise_std)
    noise = noise.clamp_(-noise_clip, noise_clip)
    return (next_actions + noise).clamp_(-1, 1)


def min_over_critics(q_values: tuple[th.Tensor, ...] | list[th.Tensor]) -> th.Tensor:
    """
    :param q_values: Each target Q-network's values, ``(batch, 1)`` each
    :return: Their minimum per sample, ``(batch, 1)``: the one network's values as they are when there is one (DDPG),
        without the ``cat`` and ``min`` that give the same numbers
    """
    if len(q_values) == 1:
        return q_values[0]
    return th.min(th.cat(q_values, dim=1), dim=1, keepdim=True)[0]


class frozen:
    """
    Context manager: the parameters do not require gradients inside it, and do again after it.

    :param params: The parameters
    """

    def __init__(self, params: list[th.nn.Parameter]) -> None:
        self.params = params

    def __enter__(self) -> None:
        for param in self.params:
            param.requires_grad_(False)

    def __exit__(self, *_: object) -> None:
        for param in self.params:
            param.requires_grad_(True)


class LossSums:
    """Losses of a ``train()`` call, summed on the device and read with one sync at the end (no ``.item()`` per step)."""

    def __init__(self) -> None:
        self.critic: th.Tensor | None = None
        self.mean_q: th.Tensor | None = None
        self.actor: th.Tensor | None = None
        self.n_critic = 0
        self.n_actor = 0

    def add_critic(self, critic_loss: th.Tensor, current_q1: th.Tensor) -> None:
        """
        :param critic_loss: The critic loss of a gradient step (detached)
        :param current_q1: The first critic's Q-values of the batch (detached)
        """
        mean_q = current_q1.mean()
        self.critic = critic_loss if self.critic is None else self.critic + critic_loss
        self.mean_q = mean_q if self.mean_q is None else self.mean_q + mean_q
        self.n_critic += 1

    def add_actor(self, actor_loss: th.Tensor) -> None:
        """:param actor_loss: The actor loss of a gradient step (detached)"""
        self.actor = actor_loss if self.actor is None else self.actor + actor_loss
        self.n_actor += 1

    def record(self, logger: Any) -> None:
        """:param logger: SB3's logger: ``train/critic_loss``, ``train/mean_q`` and ``train/actor_loss`` (means)"""
        if self.critic is None or self.mean_q is None:
            return
        sums = [self.critic, self.mean_q] if self.actor is None else [self.critic, self.mean_q, self.actor]
        values = th.stack(sums).tolist()  # the one device sync of the call
        logger.record("train/critic_loss", values[0] / self.n_critic)
        logger.record("train/mean_q", values[1] / self.n_critic)
        if self.actor is not None:
            logger.record("train/actor_loss", values[2] / self.n_actor)


class ReplayBatches:
    """
    The replay samples of a ``train()`` call: few large samples instead of one per gradient step (the buffer does not
    change during the call), capped at ``SAMPLE_CHUNK_BYTES`` so that image observations stay small.

    :param replay_buffer: The replay buffer
    :param gradient_steps: Gradient steps of the call
    :param batch_size: Samples per gradient step
    :param vec_normalize_env: Passed to ``sample`` (observations and rewards normalised at sample time)
    """

    def __init__(
        self, replay_buffer: ReplayBuffer, gradient_steps: int, batch_size: int, vec_normalize_env: VecNormalize | None
    ) -> None:
        self.replay_buffer = replay_buffer
        self.vec_normalize_env = vec_normalize_env
        self.batch_size = batch_size
        self.remaining = gradient_steps
        if gradient_steps <= 1 or getattr(replay_buffer, "prioritized", None) is not None:
            # One step per call (train_freq=1, gradient_steps=1: no chunk size to work out), or prioritised replay:
            # each step samples from the priorities its predecessors wrote (exact prioritised replay)
            self.steps_per_sample = 1
        else:
            per_sample = batch_size * sample_bytes(replay_buffer.observation_space, replay_buffer.action_space)
            self.steps_per_sample = max(1, min(gradient_steps, SAMPLE_CHUNK_BYTES // max(1, per_sample)))
        self.chunk: Any = None
        self.batches: list[Any] = []
        self.offset = 0

    def next(self) -> Any:
        """:return: The next gradient step's batch"""
        if self.chunk is None or self.offset >= self.steps_per_sample:
            steps = min(self.steps_per_sample, self.remaining)
            self.chunk = self.replay_buffer.sample(self.batch_size * steps, env=self.vec_normalize_env)
            self.offset = 0
            # One split per field and chunk instead of one slice per field and gradient step
            self.batches = split_samples(self.chunk, self.batch_size) if self.steps_per_sample > 1 else []
        self.remaining -= 1
        self.offset += 1
        if self.steps_per_sample == 1:
            return self.chunk
        return self.batches[self.offset - 1]


def sample_bytes(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """
    :param observation_space: The observation space
    :param action_space: The action space
    :return: Bytes of one sampled transition (observation and next observation dominate)
    """
    spaces_ = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    obs_bytes = sum(int(np.prod(space.shape or ())) * 4 for space in spaces_)  # sampled as float32 at most
    return 2 * obs_bytes + 4 * int(np.prod(action_space.shape or ())) + 16


def split_samples(data: Any, length: int) -> list[Any]:
    """
    :param data: A batch (a NamedTuple of tensors; observations may be dicts, discounts may be None)
    :param length: Samples per part (the last part may be shorter)
    :return: The consecutive parts ``[0, length), [length, 2 length), ...`` of ``data``, each the same NamedTuple of
        views (one ``split`` per tensor instead of one slice per tensor and part)
    """
    n_parts = -(-len(data.rewards) // length)

    def parts(value: Any) -> Any:
        if isinstance(value, th.Tensor):
            return value.split(length)
        # (a custom buffer's arrays: sliced)
        return [value[idx * length : (idx + 1) * length] for idx in range(n_parts)]

    fields: list[Any] = []
    for value in data:
        if value is None:
            fields.append([None] * n_parts)
        elif isinstance(value, dict):
            split = {key: parts(tensor) for key, tensor in value.items()}
            fields.append([{key: split[key][idx] for key in value} for idx in range(n_parts)])
        else:
            fields.append(parts(value))
    return [type(data)(*values) for values in zip(*fields, strict=True)]
