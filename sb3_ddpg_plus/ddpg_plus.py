"""DDPGPlus: a drop-in replacement for SB3's DDPG with parameter noise, layer norm, TD3 options and speed."""

import io
import pathlib
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm, maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, get_parameters_by_name, update_learning_rate
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer
from torch.nn import functional as F

from sb3_ddpg_plus.buffers import DDPGPlusReplayBuffer
from sb3_ddpg_plus.checkpoints import atomic_write, capture_rng_states, load_latest_checkpoint, restore_rng_states
from sb3_ddpg_plus.manual_backward import ManualBackward, ModuleSnapshot
from sb3_ddpg_plus.noise import ScheduledActionNoise, current_sigma, make_action_noise
from sb3_ddpg_plus.optim import LeanAdam
from sb3_ddpg_plus.param_noise import (
    AdaptiveParamNoiseSpec,
    action_distance,
    check_perturbable,
    make_param_noise,
    make_perturbed_copy,
    perturb,
)
from sb3_ddpg_plus.policies import Actor, CnnPolicy, Critic, DDPGPlusPolicy, MlpPolicy, MultiInputPolicy
from sb3_ddpg_plus.validation import DDPGPlusInputError, check_action_space, check_bool, check_hyperparameters

SelfDDPGPlus = TypeVar("SelfDDPGPlus", bound="DDPGPlus")

# load(): "not given" for keyword arguments whose None means something
_UNCHANGED = object()

# Largest replay sample drawn at once in train() (several gradient steps share one sample up to this size)
SAMPLE_CHUNK_BYTES = 32 * 1024 * 1024


class DDPGPlus(OffPolicyAlgorithm):
    """
    Deep Deterministic Policy Gradient (DDPG), with what SB3 dropped or never had.

    Paper: https://arxiv.org/abs/1509.02971 (DDPG), https://arxiv.org/abs/1706.01905 (parameter space noise),
    https://arxiv.org/abs/1802.09477 (TD3). This implementation uses SB3's TD3/DDPG implementation as base: with
    ``n_critics=1, policy_delay=1, target_policy_noise=0`` (the defaults) it is SB3's DDPG; with ``n_critics=2,
    policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5`` it is TD3.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Learning rate of both networks (float or schedule of the remaining progress)
    :param buffer_size: Size of the replay buffer
    :param learning_starts: How many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: The soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: The discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and unit
        like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (-1: as many as environment steps)
    :param action_noise: The action noise type (None by default), an ``ActionNoise`` or plain data such as
        ``{"type": "ornstein-uhlenbeck", "sigma": 0.5}`` (see :func:`sb3_ddpg_plus.noise.make_action_noise`)
    :param replay_buffer_class: Replay buffer class to use (``DDPGPlusReplayBuffer`` when ``None``)
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Memory-efficient replay buffer; with ``DDPGPlusReplayBuffer`` it also handles
        time-limit truncations
    :param n_steps: Number of steps of the returns (n-step TD targets)
    :param actor_learning_rate: Learning rate of the actor (float or schedule); ``learning_rate`` when ``None``
        (the DDPG paper used 1e-4)
    :param critic_learning_rate: Learning rate of the critic (float or schedule); ``learning_rate`` when ``None``
        (the DDPG paper used 1e-3)
    :param critic_weight_decay: L2 penalty on the critic's weights only (the DDPG paper used 1e-2)
    :param n_critics: Number of critics (TD3's clipped double Q-learning uses 2); taken from ``policy_kwargs``,
        else 1, when ``None``
    :param policy_delay: The actor and the target networks are updated every ``policy_delay`` critic updates
    :param target_policy_noise: Standard deviation of the Gaussian noise added to the target action (0: none)
    :param target_noise_clip: Limit for the absolute value of the target policy smoothing noise
    :param param_noise: Adaptive parameter-space noise: an ``AdaptiveParamNoiseSpec`` or plain data such as
        ``{"initial_stddev": 0.2, "desired_action_stddev": 0.2}``; combinable with ``action_noise``. When it is on,
        the actor gets layer norm unless ``policy_kwargs`` says otherwise.
    :param param_noise_adaption_interval: Adapt the parameter noise every this many gradient steps
    :param check_numerics: Raise ``FloatingPointError`` at the first NaN/inf in observations, rewards, actions or
        losses, naming the tensor and the step (costs one device sync per gradient step)
    :param manual_backward: Compute the gradients of plain MLP policies (Linear layers with ReLU or Tanh, the
        default extractor, flat Box observations) on the CPU by hand instead of with autograd: the same update,
        faster (``benchmarks/results/speed.md`` measures by how much). ``False`` always uses autograd.
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation (``net_arch``,
        ``activation_fn``, ``actor_layer_norm``, ``critic_layer_norm``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages, 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DDPGPlusPolicy
    actor: Actor
    actor_target: Actor
    critic: Critic
    critic_target: Critic
    replay_buffer: ReplayBuffer

    def __init__(
        self,
        policy: str | type[DDPGPlusPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,  # 1e6
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | Mapping[str, Any] | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        actor_learning_rate: float | Schedule | None = None,
        critic_learning_rate: float | Schedule | None = None,
        critic_weight_decay: float = 0.0,
        n_critics: int | None = None,
        policy_delay: int = 1,
        target_policy_noise: float = 0.0,
        target_noise_clip: float = 0.0,
        param_noise: AdaptiveParamNoiseSpec | Mapping[str, Any] | None = None,
        param_noise_adaption_interval: int = 50,
        check_numerics: bool = False,
        manual_backward: bool = True,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        hyperparameters = check_hyperparameters(
            learning_rate=learning_rate,
            actor_learning_rate=actor_learning_rate,
            critic_learning_rate=critic_learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            n_steps=n_steps,
            critic_weight_decay=critic_weight_decay,
            n_critics=n_critics,
            policy_delay=policy_delay,
            target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip,
            param_noise_adaption_interval=param_noise_adaption_interval,
        )
        # Counts as Python ints (YAML reads 1e6 as a float); train_freq with an int frequency (a YAML list as a tuple)
        buffer_size = hyperparameters["buffer_size"]
        learning_starts = hyperparameters["learning_starts"]
        batch_size = hyperparameters["batch_size"]
        train_freq = hyperparameters["train_freq"]
        gradient_steps = hyperparameters["gradient_steps"]
        n_steps = hyperparameters["n_steps"]
        n_critics = hyperparameters["n_critics"]
        policy_delay = hyperparameters["policy_delay"]
        param_noise_adaption_interval = hyperparameters["param_noise_adaption_interval"]
        check_bool("check_numerics", check_numerics)
        check_bool("manual_backward", manual_backward)
        if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
            raise TypeError(f"`policy_kwargs` must be a dict, got {type(policy_kwargs).__name__}")
        if replay_buffer_kwargs is not None and not isinstance(replay_buffer_kwargs, dict):
            raise TypeError(f"`replay_buffer_kwargs` must be a dict, got {type(replay_buffer_kwargs).__name__}")
        if env is not None:
            # Resolve an env id first so a wrong action space gets a clear error (SB3 only asserts)
            if isinstance(env, str):
                env = maybe_make_env(env, verbose)
            check_action_space(env.action_space)

        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,  # type: ignore[arg-type]
            gradient_steps,
            action_noise=None,  # set below, once the action space is known
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        self.actor_learning_rate = actor_learning_rate
        self.critic_learning_rate = critic_learning_rate
        self.critic_weight_decay = critic_weight_decay
        self.policy_delay = policy_delay
        self.target_policy_noise = target_policy_noise
        self.target_noise_clip = target_noise_clip
        self.param_noise_adaption_interval = param_noise_adaption_interval
        self.check_numerics = check_numerics
        self.manual_backward = manual_backward
        self.param_noise = make_param_noise(param_noise)
        if getattr(self, "action_space", None) is not None:
            self._set_action_noise(action_noise, seed=False)
        elif action_noise is not None:
            self.action_noise = action_noise  # type: ignore[assignment]
        # Perturbation seeds of the behaviour actors, one per environment (saved; the perturbations are rebuilt)
        self._param_noise_seeds = np.zeros(0, dtype=np.int64)
        self._generators_seeded = False
        self._param_noise_rng = np.random.default_rng(seed)

        # Options that the policy builds go into policy_kwargs (so that save/load restores them)
        if n_critics is not None:
            self.policy_kwargs["n_critics"] = n_critics
        else:
            self.policy_kwargs.setdefault("n_critics", 1)
        # Upstream policy classes (stable_baselines3.td3.policies.TD3Policy and subclasses) build neither option
        ours = isinstance(self.policy_class, type) and issubclass(self.policy_class, DDPGPlusPolicy)
        if critic_weight_decay > 0:
            if not ours:
                raise ValueError(
                    f"`critic_weight_decay` needs a DDPGPlusPolicy; {self.policy_class.__name__} is not one (use "
                    "`policy_kwargs=dict(optimizer_kwargs=dict(weight_decay=...))` to decay both networks, as in SB3)"
                )
            self.policy_kwargs["critic_weight_decay"] = critic_weight_decay
        if self.param_noise is not None and ours and "layer_norm" not in self.policy_kwargs:
            # Layer norm makes perturbations of every layer comparable (Plappert et al., "especially important")
            self.policy_kwargs.setdefault("actor_layer_norm", True)
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ construction
    def _setup_lr_schedule(self) -> None:
        self.lr_schedule = FloatSchedule(self.learning_rate)
        actor_lr = self.learning_rate if self.actor_learning_rate is None else self.actor_learning_rate
        critic_lr = self.learning_rate if self.critic_learning_rate is None else self.critic_learning_rate
        self.actor_lr_schedule = FloatSchedule(actor_lr)
        self.critic_lr_schedule = FloatSchedule(critic_lr)

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        # Global generators (numpy, torch, action space); our own generators only once, so a reloaded model
        # continues its noise sequences instead of restarting them
        super().set_random_seed(self.seed)
        if not self._generators_seeded:
            self._seed_own_generators(self.seed)

        if self.replay_buffer is None:
            replay_buffer_kwargs = dict(self.replay_buffer_kwargs)
            if self.replay_buffer_class is None:
                self.replay_buffer_class = DDPGPlusReplayBuffer
            if issubclass(self.replay_buffer_class, DDPGPlusReplayBuffer):
                replay_buffer_kwargs.setdefault("n_steps", self.n_steps)
                replay_buffer_kwargs.setdefault("gamma", self.gamma)
            elif self.n_steps > 1:
                # As SB3: the option is ignored (and said so) with a replay buffer class of the user's
                hint = (
                    "HerReplayBuffer has no n-step returns"
                    if issubclass(self.replay_buffer_class, HerReplayBuffer)
                    else "configure n-step returns in the buffer itself (`replay_buffer_kwargs`), or use the default "
                    "DDPGPlusReplayBuffer, which computes them for Box and Dict observations"
                )
                warnings.warn(
                    f"`n_steps={self.n_steps}` is ignored with `replay_buffer_class={self.replay_buffer_class.__name__}`: "
                    f"{hint}",
                    stacklevel=2,
                )
            if issubclass(self.replay_buffer_class, HerReplayBuffer):
                if self.env is None:
                    raise DDPGPlusInputError("HerReplayBuffer needs the environment: pass `env` to the model")
                replay_buffer_kwargs["env"] = self.env
            self.replay_buffer = self.replay_buffer_class(
                self.buffer_size,
                self.observation_space,
                self.action_space,
                device=self.device,
                n_envs=self.n_envs,
                optimize_memory_usage=self.optimize_memory_usage,
                **replay_buffer_kwargs,
            )

        self.policy = self.policy_class(
            self.observation_space,
            self.action_space,
            self.actor_lr_schedule,
            **self.policy_kwargs,
        )
        self.policy = self.policy.to(self.device)
        _check_actor_critic_policy(self.policy)
        self._convert_train_freq()
        self._create_aliases()
        update_learning_rate(self.critic.optimizer, self.critic_lr_schedule(1.0))
        if self.param_noise is not None:
            check_perturbable(self.actor)
        # Perturbed actors are rebuilt lazily from the saved seeds once the weights are loaded
        self._perturbed_actors: list[th.nn.Module] = []
        self._scratch_actor: th.nn.Module | None = None

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        observation_space = self.policy.observation_space
        # Observations that reach the actor as one tensor, without obs_to_tensor's dict/image handling
        self._flat_box_obs = isinstance(observation_space, spaces.Box) and not is_image_space(observation_space)
        self._cache_networks()

    def _cache_networks(self) -> None:
        """
        What train() and acting read from the networks, computed once (parameter lists, the hand-written path);
        computed again whenever the snapshot shows that a layer or parameter was replaced.
        """
        # Target update pairs, computed once: one fused lerp per update instead of a loop over tensors
        self._actor_params = list(self.actor.parameters())
        self._actor_target_params = list(self.actor_target.parameters())
        critic_params = dict(self.critic.named_parameters())
        critic_target_params = dict(self.critic_target.named_parameters())
        # With a shared features extractor the critic holds the actor's extractor: it is trained (and its target
        # updated) through the actor only
        shared = {id(p) for p in self._actor_params} if self.policy.share_features_extractor else set()
        names = [name for name, param in critic_params.items() if id(param) not in shared]
        self._critic_params = [critic_params[name] for name in names]
        self._critic_target_params = [critic_target_params[name] for name in names]
        # Q-network parameters, frozen while the actor loss is back-propagated (no gradient is computed for them)
        self._q_network_params = [p for q_net in self.critic.q_networks for p in q_net.parameters()]
        # Running mean and variance of batch norm layers are copied to the targets (GH#996)
        self.actor_batch_norm_stats = get_parameters_by_name(self.actor, ["running_"])
        self.critic_batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.actor_batch_norm_stats_target = get_parameters_by_name(self.actor_target, ["running_"])
        self.critic_batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        # Hand-written gradients for plain MLP policies (None: autograd)
        self._manual_backward = ManualBackward.for_policy(self.policy)
        self._network_snapshot = ModuleSnapshot([self.actor, self.actor_target, self.critic, self.critic_target])
        self._actor_snapshot = ModuleSnapshot([self.actor])

    def _fast_path(self, acting: bool = False) -> ManualBackward | None:
        """
        The one place that decides whether the hand-written path runs (see ``manual_backward.py``): it must compute
        exactly what the modules say. A replaced layer or parameter rebuilds the cached lists (and the path, if the
        networks are still plain); a hook, a frozen parameter or a non-CPU device falls back to the modules.

        :param acting: Whether the path is for acting (the actor's forward pass) or for a ``train()`` call
        :return: The hand-written path, or ``None`` to call the modules (autograd)
        """
        snapshot = self._actor_snapshot if acting else self._network_snapshot
        if not snapshot.unchanged():
            self._cache_networks()
        manual = self._manual_backward
        if not self.manual_backward or manual is None:
            return None
        if not (manual.can_act() if acting else manual.usable()):
            return None
        return manual

    def _set_action_noise(self, action_noise: ActionNoise | Mapping[str, Any] | None, seed: bool = True) -> None:
        """
        :param action_noise: An ``ActionNoise``, plain data (see :func:`~sb3_ddpg_plus.noise.make_action_noise`) or None
        :param seed: Seed a new noise's own generator from the model's seed (after loading)
        """
        self.action_noise = make_action_noise(action_noise, int(np.prod(self.action_space.shape)))
        if seed and isinstance(self.action_noise, ScheduledActionNoise) and self.seed is not None:
            self.action_noise.seed(self.seed)

    def _seed_own_generators(self, seed: int | None) -> None:
        base_noise = getattr(self.action_noise, "base_noise", self.action_noise)
        if isinstance(base_noise, ScheduledActionNoise):
            base_noise.seed(seed)
        self._param_noise_rng = np.random.default_rng(None if seed is None else seed + 1)
        self._generators_seeded = True

    def set_random_seed(self, seed: int | None = None) -> None:
        """
        Set the seed of every pseudo-random generator: python, numpy, torch, the action space, the action noise's
        and the parameter noise's own generators.

        :param seed: The seed
        """
        super().set_random_seed(seed)
        if seed is not None:
            self._seed_own_generators(seed)

    # ------------------------------------------------------------------ learning
    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        # Separate schedules for the actor and the critic (SB3 has one for all optimizers)
        actor_lr = self.actor_lr_schedule(self._current_progress_remaining)
        critic_lr = self.critic_lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", actor_lr)
        if self.actor_learning_rate is not None or self.critic_learning_rate is not None:
            self.logger.record("train/critic_learning_rate", critic_lr)
        update_learning_rate(self.actor.optimizer, actor_lr)
        update_learning_rate(self.critic.optimizer, critic_lr)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

        # Losses are summed on the device and read once per call (no per-step .item() sync)
        critic_loss_sum: th.Tensor | None = None
        actor_loss_sum: th.Tensor | None = None
        mean_q_sum: th.Tensor | None = None
        n_actor_updates = 0
        # Few large samples instead of one per gradient step (the buffer does not change during train()); the
        # chunks are capped in bytes so that image observations stay small
        steps_per_sample = (
            max(1, min(gradient_steps, SAMPLE_CHUNK_BYTES // max(1, batch_size * self._sample_bytes())))
            if gradient_steps > 1
            else 1
        )
        chunk = None
        manual = self._fast_path()
        # The target networks' forward passes: the modules, or the same computation without nn.Module overhead
        actor_target, critic_target = (
            (self.actor_target, self.critic_target) if manual is None else (manual.target_actor, manual.target_critic)
        )

        for step in range(gradient_steps):
            self._n_updates += 1
            if step % steps_per_sample == 0:
                n_steps_in_chunk = min(steps_per_sample, gradient_steps - step)
                chunk = self.replay_buffer.sample(batch_size * n_steps_in_chunk, env=self._vec_normalize_env)  # type: ignore[union-attr]
            offset = (step % steps_per_sample) * batch_size
            replay_data = chunk if steps_per_sample == 1 else _slice_samples(chunk, offset, batch_size)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                next_actions = actor_target(replay_data.next_observations)
                if self.target_policy_noise > 0:
                    # Target policy smoothing (TD3); skipped entirely for DDPG instead of drawing zero-clipped noise
                    noise = th.randn_like(next_actions).mul_(self.target_policy_noise)
                    noise = noise.clamp_(-self.target_noise_clip, self.target_noise_clip)
                    next_actions = (next_actions + noise).clamp_(-1, 1)
                next_q_values = critic_target(replay_data.next_observations, next_actions)
                if len(next_q_values) == 1:
                    next_q_value = next_q_values[0]
                else:
                    next_q_value, _ = th.min(th.cat(next_q_values, dim=1), dim=1, keepdim=True)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_value

            critic_loss, current_q1 = self._critic_backward(replay_data, target_q_values, manual)
            if self.check_numerics:
                self._check_finite("critic_loss", critic_loss)
            critic_loss_sum = _accumulate(critic_loss_sum, critic_loss)
            mean_q_sum = _accumulate(mean_q_sum, current_q1.mean())
            _optimizer_step(self.critic.optimizer)

            if self._n_updates % self.policy_delay == 0:
                actor_loss = self._actor_backward(replay_data.observations, manual)
                if self.check_numerics:
                    self._check_finite("actor_loss", actor_loss)
                _optimizer_step(self.actor.optimizer)
                actor_loss_sum = _accumulate(actor_loss_sum, actor_loss)
                n_actor_updates += 1
                self._update_targets()

            if self.param_noise is not None and self._n_updates % self.param_noise_adaption_interval == 0:
                self._adapt_param_noise()

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if critic_loss_sum is not None and mean_q_sum is not None:
            sums = [critic_loss_sum, mean_q_sum] if actor_loss_sum is None else [critic_loss_sum, mean_q_sum, actor_loss_sum]
            losses = th.stack(sums).tolist()  # the one device sync of this call
            self.logger.record("train/critic_loss", losses[0] / gradient_steps)
            self.logger.record("train/mean_q", losses[1] / gradient_steps)
            if actor_loss_sum is not None:
                self.logger.record("train/actor_loss", losses[2] / n_actor_updates)

    def _critic_backward(
        self, replay_data: Any, target_q_values: th.Tensor, manual: ManualBackward | None
    ) -> tuple[th.Tensor, th.Tensor]:
        """Critic loss and its gradients (in the Q-networks' ``.grad``); returns the loss and the first Q-values."""
        if manual is not None:
            # The same gradients, computed by hand (see manual_backward.py)
            return manual.critic_backward(replay_data.observations, replay_data.actions, target_q_values)
        current_q_values = self.critic(replay_data.observations, replay_data.actions)
        critic_loss = F.mse_loss(current_q_values[0], target_q_values)
        for current_q in current_q_values[1:]:
            critic_loss = critic_loss + F.mse_loss(current_q, target_q_values)
        self.critic.optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        return critic_loss.detach(), current_q_values[0].detach()

    def _actor_backward(self, observations: th.Tensor, manual: ManualBackward | None) -> th.Tensor:
        """Actor loss and its gradients (in the actor's ``.grad``); returns the loss."""
        if manual is not None:
            return manual.actor_backward(observations)
        # The critic is frozen during the actor's backward pass: its gradients would be thrown away
        for param in self._q_network_params:
            param.requires_grad_(False)
        actor_loss = -self.critic.q1_forward(observations, self.actor(observations)).mean()
        self.actor.optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        for param in self._q_network_params:
            param.requires_grad_(True)
        return actor_loss.detach()

    def _sample_bytes(self) -> int:
        """Bytes of one sampled transition (observation and next observation dominate)."""
        spaces_ = (
            self.observation_space.spaces.values()
            if isinstance(self.observation_space, spaces.Dict)
            else [self.observation_space]
        )
        obs_bytes = sum(int(np.prod(space.shape)) * 4 for space in spaces_)  # sampled as float32 at most
        return 2 * obs_bytes + 4 * int(np.prod(self.action_space.shape)) + 16

    @th.no_grad()
    def _update_targets(self) -> None:
        # Polyak update, fused: target <- target + tau * (online - target) == (1 - tau) * target + tau * online
        th._foreach_lerp_(
            self._critic_target_params + self._actor_target_params, self._critic_params + self._actor_params, self.tau
        )
        # Copy running stats, see GH issue #996
        for source, target in (
            (self.critic_batch_norm_stats, self.critic_batch_norm_stats_target),
            (self.actor_batch_norm_stats, self.actor_batch_norm_stats_target),
        ):
            for stat, target_stat in zip(source, target, strict=True):
                target_stat.copy_(stat)

    def _check_finite(self, name: str, value: th.Tensor | np.ndarray) -> None:
        finite = bool(th.isfinite(value).all()) if isinstance(value, th.Tensor) else bool(np.all(np.isfinite(value)))
        if not finite:
            raise FloatingPointError(
                f"Non-finite value (NaN or inf) in {name} at timestep {self.num_timesteps} (gradient step {self._n_updates})"
            )

    # ------------------------------------------------------------------ parameter noise
    def _ensure_perturbed_actors(self, n_envs: int) -> None:
        """Build the behaviour actors (one per environment) and the scratch actor used to adapt sigma."""
        assert self.param_noise is not None
        if len(self._perturbed_actors) == n_envs and self._scratch_actor is not None:
            return
        self._perturbed_actors = [make_perturbed_copy(self.actor) for _ in range(n_envs)]
        self._scratch_actor = make_perturbed_copy(self.actor)
        if len(self._param_noise_seeds) != n_envs:
            self._param_noise_seeds = self._param_noise_rng.integers(0, 2**62, size=n_envs)
        # Rebuilt from the saved seeds (after load): the current actor plus the same perturbation
        for idx in range(n_envs):
            perturb(
                self.actor, self._perturbed_actors[idx], self.param_noise.current_stddev, int(self._param_noise_seeds[idx])
            )

    def _resample_perturbations(self, env_indices: np.ndarray) -> None:
        """New behaviour perturbation of the current actor for the given environments (at their episode ends)."""
        assert self.param_noise is not None
        for idx in env_indices:
            self._param_noise_seeds[idx] = self._param_noise_rng.integers(0, 2**62)
            perturb(
                self.actor, self._perturbed_actors[idx], self.param_noise.current_stddev, int(self._param_noise_seeds[idx])
            )

    def _adapt_param_noise(self) -> None:
        """Measure the action distance of a fresh perturbation on a replay batch and adapt sigma."""
        assert self.param_noise is not None and self.replay_buffer is not None
        self._ensure_perturbed_actors(self.n_envs)
        assert self._scratch_actor is not None
        # VecNormalize-aware batch: the actor sees the observations it is trained on
        observations = self.replay_buffer.sample(self.batch_size, env=self._vec_normalize_env).observations
        perturb(
            self.actor, self._scratch_actor, self.param_noise.current_stddev, int(self._param_noise_rng.integers(0, 2**62))
        )
        was_training = self.actor.training
        self.actor.set_training_mode(False)
        distance = action_distance(self.actor, self._scratch_actor, observations)
        self.actor.set_training_mode(was_training)
        self.param_noise.adapt(distance)
        self.logger.record("rollout/param_noise_std", self.param_noise.current_stddev)
        self.logger.record("rollout/param_noise_distance", distance)
        self.logger.record("rollout/param_noise_desired_distance", self.param_noise.desired_action_stddev)

    # ------------------------------------------------------------------ acting and storing
    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            # Warm-up: uniform actions in env units, then scaled (as SB3)
            scaled_action = self.policy.scale_action(np.array([self.action_space.sample() for _ in range(n_envs)]))
        else:
            # The actor's tanh output is already the scaled action: no predict() -> unscale -> scale round trip
            assert self._last_obs is not None, "self._last_obs was not set"
            if isinstance(self._last_obs, np.ndarray) and self._flat_box_obs:
                obs_tensor = th.as_tensor(self._last_obs, device=self.device)
            else:
                obs_tensor = self.policy.obs_to_tensor(self._last_obs)[0]
            manual = self._fast_path(acting=True) if self.param_noise is None else None
            if manual is not None:
                # The same forward pass without nn.Module's call overhead (large next to a small network's layers)
                actions = manual.act(obs_tensor)
            else:
                with th.no_grad():
                    if self.param_noise is not None:
                        self._ensure_perturbed_actors(n_envs)
                        actions = th.cat([self._perturbed_actors[i](_index_obs(obs_tensor, i)) for i in range(n_envs)])
                    else:
                        actions = self.actor(obs_tensor)
            scaled_action = actions.cpu().numpy().reshape((-1, *self.action_space.shape))

        if action_noise is not None:
            base_noise = getattr(action_noise, "base_noise", action_noise)
            if isinstance(base_noise, ScheduledActionNoise):
                base_noise.set_progress(self.num_timesteps, self._episode_num)
            scaled_action = scaled_action + action_noise()
            # np.clip(scaled_action, -1, 1) in place, without np.clip's Python wrappers
            np.minimum(np.maximum(scaled_action, -1, out=scaled_action), 1, out=scaled_action)
        if self.check_numerics:
            self._check_finite("actions", scaled_action)
        buffer_action = scaled_action
        action = self.policy.unscale_action(scaled_action)
        return action, buffer_action

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        if self.check_numerics:
            self._check_finite("rewards", reward)
            for key, value in new_obs.items() if isinstance(new_obs, dict) else [("observations", new_obs)]:
                self._check_finite(key, value)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        if self.param_noise is not None:
            self.param_noise.num_steps = self.num_timesteps
            done_envs = np.flatnonzero(dones)
            if len(done_envs) > 0:
                self.param_noise.num_episodes += len(done_envs)
                if self._perturbed_actors:
                    # A new perturbation for each environment whose episode ended (its own, not a shared one)
                    self._resample_perturbations(done_envs)

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        assert self.env is not None, "You must set the environment before calling learn()"
        resets_env = reset_num_timesteps or self._last_obs is None
        if isinstance(self.replay_buffer, DDPGPlusReplayBuffer):
            if resets_env:
                # The environments restart: close stored episodes as truncated (they bootstrap; nothing is lost)
                self.replay_buffer.start_new_trajectory()
        elif self.optimize_memory_usage and reset_num_timesteps and self.replay_buffer is not None:
            if self.replay_buffer.full or self.replay_buffer.pos > 0:
                # SB3's own memory-optimised buffers: SB3's behaviour (GH#46)
                pos = (self.replay_buffer.pos - 1) % self.replay_buffer.buffer_size
                self.replay_buffer.dones[pos] = True

        if self.action_noise is not None:
            base_noise = getattr(self.action_noise, "base_noise", self.action_noise)
            if isinstance(base_noise, ScheduledActionNoise):
                # Natively vectorised: one state per environment
                self.action_noise = base_noise
                base_noise.set_n_envs(self.env.num_envs)
            elif self.env.num_envs > 1 and not isinstance(self.action_noise, VectorizedActionNoise):
                self.action_noise = VectorizedActionNoise(self.action_noise, self.env.num_envs)

        result = BaseAlgorithm._setup_learn(self, total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if self.param_noise is not None:
            self._ensure_perturbed_actors(self.env.num_envs)
            if resets_env:
                self._resample_perturbations(np.arange(self.env.num_envs))
        return result

    def dump_logs(self) -> None:
        sigma = current_sigma(self.action_noise)
        if sigma is not None:
            self.logger.record("rollout/action_noise_sigma", sigma)
        if self.param_noise is not None:
            self.logger.record("rollout/param_noise_std", self.param_noise.current_stddev)
        super().dump_logs()

    def learn(
        self: SelfDDPGPlus,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DDPGPlus",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDDPGPlus:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # ------------------------------------------------------------------ saving
    def save(
        self,
        path: "str | pathlib.Path | io.BufferedIOBase",
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        Save all the attributes of the object and the model parameters in a zip-file, as SB3 does, plus the state
        of the global random generators (``load(..., restore_rng_state=True)`` restores it, so that a reloaded
        checkpoint continues the same random sequences). A path is written atomically: a temporary file renamed
        over it, so a crash mid-save leaves the previous file intact.

        :param path: Path to the file (or a file-like object) where the agent should be saved
        :param exclude: Names of parameters that should be excluded in addition to the default ones
        :param include: Names of parameters that might be excluded but should be included anyway
        """
        self._rng_states = capture_rng_states(getattr(self, "action_space", None))
        try:
            if isinstance(path, io.BufferedIOBase):
                super().save(path, exclude, include)
            else:
                atomic_write(path, lambda tmp: OffPolicyAlgorithm.save(self, tmp, exclude, include), "zip")
        finally:
            del self._rng_states

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfDDPGPlus],
        path: "str | pathlib.Path | io.BufferedIOBase",
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        restore_rng_state: bool = False,
        **kwargs: Any,
    ) -> SelfDDPGPlus:
        """
        Load a model saved with ``save`` (see SB3's ``BaseAlgorithm.load``): a DDPGPlus file, or a DDPG or TD3 file
        saved by Stable-Baselines3, which then trains on with its own policy class and replay buffer class.

        As in SB3, the global random generators are reseeded from the model's ``seed`` when it has one and left
        alone otherwise. ``restore_rng_state=True`` instead restores them (Python, numpy, torch, the action space)
        to their state at save time, so that training continues the same random sequences (checkpoint resume).

        A missing file raises ``FileNotFoundError``; a truncated or foreign file raises ``ValueError`` naming it and
        what was wrong. **Loading unpickles code: only load files you trust.**

        :param path: Path to the file (or a file-like object) to load the agent from
        :param env: The new environment to run the loaded model on
        :param device: Device on which the code should run
        :param custom_objects: Objects to replace upon loading (see SB3)
        :param print_system_info: Whether to print the system info of the saved model and of the current one
        :param force_reset: Force a call to ``reset()`` before training (see SB3)
        :param restore_rng_state: Restore the global random generators to their state at save time
        :param kwargs: Attributes to change on loading; ``action_noise`` and ``param_noise`` may be plain data,
            as in the constructor
        :return: The model
        """
        action_noise = kwargs.pop("action_noise", _UNCHANGED)
        param_noise = kwargs.pop("param_noise", _UNCHANGED)
        try:
            model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        except FileNotFoundError:
            raise
        except IncompatiblePolicyError as error:
            raise ValueError(f"Cannot load {path} as a DDPGPlus model: {error}") from error
        except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"Cannot load a DDPGPlus model from {path}: truncated or not a model zip ({error})") from error
        except KeyError as error:
            raise ValueError(f"Cannot load a DDPGPlus model from {path}: the saved data has no {error}") from error
        except RuntimeError as error:
            raise ValueError(
                f"Cannot load a DDPGPlus model from {path}: its parameters do not fit the networks its saved arguments "
                f"describe, or a parameter file inside the zip is damaged ({error})"
            ) from error
        states = model.__dict__.pop("_rng_states", None)
        if restore_rng_state:
            if states is None:
                raise ValueError(f"{path} holds no random generator states (it was not saved by DDPGPlus.save)")
            restore_rng_states(states, getattr(model, "action_space", None))
        if action_noise is not _UNCHANGED:
            model._set_action_noise(action_noise)
        if param_noise is not _UNCHANGED:
            model.param_noise = make_param_noise(param_noise)
            if model.param_noise is not None:
                check_perturbable(model.actor)
        return model

    def save_replay_buffer(self, path: "str | pathlib.Path | io.BufferedIOBase") -> None:
        """
        Save the replay buffer as a pickle file, atomically when ``path`` is a path.

        :param path: Where to save it
        """
        if isinstance(path, io.BufferedIOBase):
            super().save_replay_buffer(path)
        else:
            atomic_write(path, lambda tmp: OffPolicyAlgorithm.save_replay_buffer(self, tmp), "pkl")

    def load_replay_buffer(self, path: "str | pathlib.Path | io.BufferedIOBase", truncate_last_traj: bool = True) -> None:
        """
        Load a replay buffer saved with ``save_replay_buffer``. **Loading unpickles code: only load files you trust.**

        :param path: The file
        :param truncate_last_traj: See SB3 (``HerReplayBuffer`` only)
        """
        try:
            super().load_replay_buffer(path, truncate_last_traj)
        except FileNotFoundError:
            raise
        except (EOFError, pickle.UnpicklingError, AssertionError, AttributeError, ValueError) as error:
            raise ValueError(f"Cannot load a replay buffer from {path}: truncated or not a replay buffer ({error})") from error

    @classmethod
    def load_latest_checkpoint(
        cls: type[SelfDDPGPlus], save_path: "str | pathlib.Path", env: GymEnv | None = None, **kwargs: Any
    ) -> SelfDDPGPlus:
        """
        Resume from the latest checkpoint written by :class:`~sb3_ddpg_plus.checkpoints.KeepLastCheckpointCallback`:
        model, replay buffer and VecNormalize statistics. Continue with ``learn(..., reset_num_timesteps=False)``.

        :param save_path: Folder of the checkpoints
        :param env: Environment to continue on
        :param kwargs: Passed to ``load`` (``restore_rng_state`` is True unless given: an exact resume)
        :return: The model
        """
        kwargs.setdefault("restore_rng_state", True)
        return load_latest_checkpoint(cls, save_path, env, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "actor_target",
            "critic_target",
            "actor_lr_schedule",
            "critic_lr_schedule",
            "_actor_params",
            "_actor_target_params",
            "_critic_params",
            "_critic_target_params",
            "_q_network_params",
            "_manual_backward",
            "_network_snapshot",
            "_actor_snapshot",
            "_perturbed_actors",
            "_scratch_actor",
            "actor_batch_norm_stats",
            "critic_batch_norm_stats",
            "actor_batch_norm_stats_target",
            "critic_batch_norm_stats_target",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        return state_dicts, []


def _optimizer_step(optimizer: th.optim.Optimizer) -> None:
    # LeanAdam skips the per-call wrapper when no hook needs it; any other optimizer steps normally
    if isinstance(optimizer, LeanAdam):
        optimizer.lean_step()
    else:
        optimizer.step()


class IncompatiblePolicyError(ValueError):
    """A policy that is not an actor-critic with target networks (for example a file saved by SAC or PPO)."""


def _check_actor_critic_policy(policy: BasePolicy) -> None:
    missing = [name for name in ("actor", "actor_target", "critic", "critic_target") if not hasattr(policy, name)]
    if missing:
        policy_class = type(policy)
        algorithm = policy_class.__module__.split(".")[-2].upper() if "." in policy_class.__module__ else "?"
        raise IncompatiblePolicyError(
            f"the policy {policy_class.__name__} ({policy_class.__module__}, algorithm {algorithm}) has no "
            f"{', '.join(missing)}: DDPGPlus needs a DDPG/TD3 policy (DDPGPlusPolicy, or SB3's TD3Policy for a file "
            "saved by SB3's DDPG or TD3)"
        )


def _accumulate(total: th.Tensor | None, value: th.Tensor) -> th.Tensor:
    return value if total is None else total + value


def _slice_samples(data: Any, start: int, length: int) -> Any:
    """The samples ``[start, start + length)`` of a batch (observations may be dicts; discounts may be None)."""
    end = start + length
    fields = []
    for value in data:
        if value is None:
            fields.append(None)
        elif isinstance(value, dict):
            fields.append({key: tensor[start:end] for key, tensor in value.items()})
        else:
            fields.append(value[start:end])
    return type(data)(*fields)


def _index_obs(obs: th.Tensor | dict[str, th.Tensor], idx: int) -> th.Tensor | dict[str, th.Tensor]:
    if isinstance(obs, dict):
        return {key: value[idx : idx + 1] for key, value in obs.items()}
    return obs[idx : idx + 1]
