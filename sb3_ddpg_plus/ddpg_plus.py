"""
DDPGPlus: a drop-in replacement for SB3's DDPG with parameter noise, layer norm, TD3 options and speed.

This file follows SB3's ``td3/td3.py`` (same variable names, same ``train()``), so the two read side by side. What
differs is marked where it happens: separate actor/critic learning rates, n-step discounts from the replay buffer,
parameter noise (one object, :class:`~sb3_ddpg_plus.param_noise.ParamNoiseExploration`, called at four points),
NaN checks, and the hand-written gradients of :mod:`sb3_ddpg_plus.manual_backward` as one alternative to autograd
chosen in :meth:`DDPGPlus._fast_path`. Saving and loading live in :mod:`sb3_ddpg_plus.checkpoints`.
"""

import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim, is_image_space
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate

from sb3_ddpg_plus.buffers import DDPGPlusReplayBuffer
from sb3_ddpg_plus.checkpoints import SaveLoadMixin
from sb3_ddpg_plus.compiled_update import CompiledUpdate
from sb3_ddpg_plus.fast_path import FastPath
from sb3_ddpg_plus.manual_backward import ManualBackward
from sb3_ddpg_plus.native_update import NativeUpdate
from sb3_ddpg_plus.noise import ScheduledActionNoise, current_sigma, make_action_noise
from sb3_ddpg_plus.param_noise import AdaptiveParamNoiseSpec, ParamNoiseExploration, check_perturbable, make_param_noise
from sb3_ddpg_plus.policies import (
    Actor,
    CnnPolicy,
    Critic,
    DDPGPlusPolicy,
    MlpPolicy,
    MultiInputPolicy,
    ddpg_policy_kwargs,
)
from sb3_ddpg_plus.train_utils import (
    LossSums,
    ReplayBatches,
    critic_loss_fn,
    detached,
    frozen,
    min_over_critics,
    smoothed_target_actions,
)
from sb3_ddpg_plus.validation import (
    check_action_space,
    check_actor_critic_policy,
    check_hyperparameters,
)

SelfDDPGPlus = TypeVar("SelfDDPGPlus", bound="DDPGPlus")


class DDPGPlus(SaveLoadMixin, OffPolicyAlgorithm):
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
    :param compile_update: Run the gradient steps of a ``train()`` call as one ``torch.compile``-d loop over the
        hand-written update (plain MLP policies on the CPU, uniform replay): about 2x the updates per second at
        [64, 64] and 1.15x at [400, 300], for tens of seconds of compilation per process
        (``benchmarks/results/compiled_train.md``). Where it does not apply it warns once and the update stays eager.
        ``native_update`` (on by default) runs first where it applies: set ``native_update=False`` to use this one.
    :param native_update: Run the gradient steps of a ``train()`` call as one C loop around a BLAS ``sgemm``
        (:mod:`sb3_ddpg_plus.native_update`): the same update to float32 rounding, for plain MLP policies (layer norm
        included) on the CPU with uniform replay and Adam, compiled once per machine (about a second) with its C
        compiler. ``"auto"`` (default): wherever it applies, silently the eager update elsewhere (no C compiler,
        prioritized replay, parameter noise, hooks, ...); ``True``: the same, with one warning per reason it does not
        apply; ``False``: never. ``benchmarks/results/speed.md`` measures what it gains.
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation: ``net_arch``,
        ``activation_fn``, ``n_critics`` (1 unless given, as SB3's DDPG; TD3 uses 2), ``actor_layer_norm``,
        ``critic_layer_norm``, ``critic_weight_decay`` (L2 penalty on the critic's weights only; the DDPG paper used
        1e-2), ... (see :class:`~sb3_ddpg_plus.policies.DDPGPlusPolicy`)
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
        policy_delay: int = 1,
        target_policy_noise: float = 0.0,
        target_noise_clip: float = 0.0,
        param_noise: AdaptiveParamNoiseSpec | Mapping[str, Any] | None = None,
        param_noise_adaption_interval: int = 50,
        check_numerics: bool = False,
        manual_backward: bool = True,
        compile_update: bool = False,
        native_update: bool | str = "auto",
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
            policy_delay=policy_delay,
            target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip,
            param_noise_adaption_interval=param_noise_adaption_interval,
            check_numerics=check_numerics,
            manual_backward=manual_backward,
            compile_update=compile_update,
            native_update=native_update,
            policy_kwargs=policy_kwargs,
            replay_buffer_kwargs=replay_buffer_kwargs,
        )
        if isinstance(env, str):
            # Resolved first so that a wrong action space gets our error (SB3 only asserts)
            env = maybe_make_env(env, verbose)
        if env is not None:
            check_action_space(env.action_space)

        super().__init__(
            policy,
            env,
            learning_rate,
            # Counts as Python ints (YAML reads 1e6 as a float); train_freq with an int frequency
            hyperparameters["buffer_size"],
            hyperparameters["learning_starts"],
            hyperparameters["batch_size"],
            tau,
            gamma,
            hyperparameters["train_freq"],
            hyperparameters["gradient_steps"],
            action_noise=None,  # set below, once the action space is known (plain data needs its size)
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=hyperparameters["n_steps"],
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
        self.policy_delay = hyperparameters["policy_delay"]
        self.target_policy_noise = target_policy_noise
        self.target_noise_clip = target_noise_clip
        self.param_noise_adaption_interval = hyperparameters["param_noise_adaption_interval"]
        self.check_numerics = check_numerics
        self.manual_backward = manual_backward
        self.compile_update = compile_update
        self._compiled_update = CompiledUpdate()
        self.native_update = native_update
        self._native_update = NativeUpdate()
        spec = make_param_noise(param_noise)
        self.param_noise_exploration = None if spec is None else ParamNoiseExploration(spec)
        if getattr(self, "action_space", None) is not None:
            self.action_noise = make_action_noise(action_noise, get_action_dim(self.action_space))
        elif action_noise is not None:
            self.action_noise = action_noise  # type: ignore[assignment]
        # Our own generators (action noise, parameter noise) are seeded once, so a reloaded model continues them
        self._generators_seeded = False
        self.policy_kwargs = ddpg_policy_kwargs(self.policy_class, self.policy_kwargs, param_noise=spec is not None)
        if _init_setup_model:
            self._setup_model()

    @property
    def param_noise(self) -> AdaptiveParamNoiseSpec | None:
        """The adaptive parameter noise specification (with its current sigma), or ``None``."""
        exploration = self.param_noise_exploration
        return None if exploration is None else exploration.spec

    def _setup_lr_schedule(self) -> None:
        self.lr_schedule = FloatSchedule(self.learning_rate)
        self.actor_lr_schedule = FloatSchedule(
            self.learning_rate if self.actor_learning_rate is None else self.actor_learning_rate
        )
        self.critic_lr_schedule = FloatSchedule(
            self.learning_rate if self.critic_learning_rate is None else self.critic_learning_rate
        )

    def _setup_model(self) -> None:
        if self.replay_buffer is None and self.replay_buffer_class is None:
            # Our replay buffer by default: it computes n-step returns itself (Box and Dict, any memory mode)
            self.replay_buffer_class = DDPGPlusReplayBuffer
        ours = isinstance(self.replay_buffer_class, type) and issubclass(self.replay_buffer_class, DDPGPlusReplayBuffer)
        if ours:
            self.replay_buffer_kwargs = {"n_steps": self.n_steps, "gamma": self.gamma, **self.replay_buffer_kwargs}
        self._in_setup = True
        try:
            with warnings.catch_warnings():
                if ours:
                    # SB3's "n_steps is ignored with a custom replay_buffer_class" is about its own buffers
                    warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
                super()._setup_model()
        finally:
            self._in_setup = False
        if not self._generators_seeded:
            self._seed_own_generators(self.seed)
        check_actor_critic_policy(self.policy)
        self._create_aliases()
        # Separate learning rates (the parent built both optimizers with `learning_rate`)
        update_learning_rate(self.actor.optimizer, self.actor_lr_schedule(1.0))
        update_learning_rate(self.critic.optimizer, self.critic_lr_schedule(1.0))
        if self.param_noise_exploration is not None:
            check_perturbable(self.actor)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        observation_space = self.policy.observation_space
        # Observations that reach the actor as one tensor, without obs_to_tensor's dict/image handling
        self._flat_box_obs = isinstance(observation_space, spaces.Box) and not is_image_space(observation_space)
        # [speed] What train() and acting read from the networks, and the choice of update path
        self._fast = FastPath(self.policy)

    def _fast_path(self, acting: bool = False) -> ManualBackward | None:
        """
        The hand-written path (see :mod:`sb3_ddpg_plus.fast_path`) or ``None`` for autograd; at ``verbose >= 1`` a
        change of the update path is printed.

        :param acting: For acting (the actor's forward pass) rather than for a ``train()`` call
        :return: The hand-written path, or ``None`` to call the modules
        """
        if acting:
            return self._fast.acting(self.manual_backward)
        return self._fast.update(self.manual_backward, self.verbose)

    def _seed_own_generators(self, seed: int | None) -> None:
        if isinstance(self.action_noise, ScheduledActionNoise):
            self.action_noise.seed(seed)
        if self.param_noise_exploration is not None:
            self.param_noise_exploration.seed(None if seed is None else seed + 1)
        self._generators_seeded = True

    def set_random_seed(self, seed: int | None = None) -> None:
        """
        Set the seed of every pseudo-random generator: python, numpy, torch, the action space, the action noise's
        and the parameter noise's own generators.

        :param seed: The seed
        """
        super().set_random_seed(seed)
        # (_setup_model, also after loading, leaves our own generators as they were saved)
        if seed is not None and not self.__dict__.get("_in_setup", False):
            self._seed_own_generators(seed)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        # One schedule per network (SB3 has one for all optimizers)
        actor_optimizer, critic_optimizer = self.actor.optimizer, self.critic.optimizer
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            schedule: Callable[[float], float]
            if optimizer is actor_optimizer:
                schedule = self.actor_lr_schedule
            elif optimizer is critic_optimizer:
                schedule = self.critic_lr_schedule
            else:
                schedule = self.lr_schedule
            update_learning_rate(optimizer, schedule(self._current_progress_remaining))
        self.logger.record("train/learning_rate", self.actor_lr_schedule(self._current_progress_remaining))
        if self.actor_learning_rate is not None or self.critic_learning_rate is not None:
            self.logger.record("train/critic_learning_rate", self.critic_lr_schedule(self._current_progress_remaining))

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update learning rate according to lr schedule
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

        # [speed] The same gradients without autograd for plain MLPs (None: autograd, as TD3)
        fast = self._fast_path()
        actor_target = self.actor_target if fast is None else fast.target_actor
        critic_target = self.critic_target if fast is None else fast.target_critic
        # [speed] native_update / compile_update: the call's gradient steps as one C or compiled loop (None: not
        # applicable, the next path)
        for enabled, updater in ((self.native_update, self._native_update), (self.compile_update, self._compiled_update)):
            if enabled and (done := updater.run(self, fast, gradient_steps, batch_size)) is not None:
                self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
                done.record(self.logger)
                return
        # [speed] Losses summed on the device and read once per call instead of one .item() per step
        losses = LossSums()
        batches = ReplayBatches(self.replay_buffer, gradient_steps, batch_size, self._vec_normalize_env)  # type: ignore[arg-type]
        # [prioritized] PER: importance weights; LAP: Huber loss (the buffer turns TD errors into priorities)
        prioritized = getattr(self.replay_buffer, "prioritized", None)
        huber = prioritized == "lap"
        if prioritized is not None:
            self.replay_buffer.set_progress(self._current_progress_remaining)  # type: ignore[union-attr,attr-defined]

        for _ in range(gradient_steps):
            self._n_updates += 1
            # Sample replay buffer
            replay_data = batches.next()
            # [n-step] The discount of each sample: gamma**k for a k-step return (gamma for one step)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Select action according to policy and add clipped noise
                next_actions = actor_target(replay_data.next_observations)
                if self.target_policy_noise > 0:  # [DDPG] no noise drawn when off
                    next_actions = smoothed_target_actions(next_actions, self.target_policy_noise, self.target_noise_clip)

                # Compute the next Q-values: min over all critics targets
                next_q_values = min_over_critics(critic_target(replay_data.next_observations, next_actions))
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            weights = getattr(replay_data, "weights", None)
            td_errors = None
            if fast is None:
                # Get current Q-values estimates for each critic network
                current_q_values = self.critic(replay_data.observations, replay_data.actions)

                # Compute critic loss ([prioritized] weighted MSE or Huber; MSE otherwise, as TD3)
                critic_loss = sum(critic_loss_fn(current_q, target_q_values, weights, huber) for current_q in current_q_values)
                assert isinstance(critic_loss, th.Tensor)  # for type checker

                # Optimize the critics
                self.critic.optimizer.zero_grad()
                critic_loss.backward()
                current_q1 = current_q_values[0].detach()
                if prioritized is not None:
                    # The larger absolute TD error of the critics (as TD7)
                    td_errors = th.stack([(q.detach() - target_q_values).abs() for q in current_q_values]).amax(dim=0)
            else:
                critic_loss, current_q1, td_errors = fast.critic_backward(
                    replay_data.observations,
                    replay_data.actions,
                    target_q_values,
                    weights=weights,
                    huber=huber,
                    td_errors=prioritized is not None,
                )
            self._check_finite("critic_loss", critic_loss)
            losses.add_critic(detached(critic_loss), current_q1)
            self.critic.optimizer.step()
            if td_errors is not None:
                self.replay_buffer.update_priorities(replay_data.indices, td_errors)  # type: ignore[union-attr,attr-defined]

            # Delayed policy updates
            if self._n_updates % self.policy_delay == 0:
                if fast is None:
                    # Compute actor loss (the Q-networks are frozen: their gradients would be thrown away)
                    with frozen(self._fast.q_network_params):
                        actor_loss = -self.critic.q1_forward(
                            replay_data.observations, self.actor(replay_data.observations)
                        ).mean()

                        # Optimize the actor
                        self.actor.optimizer.zero_grad()
                        actor_loss.backward()
                else:
                    actor_loss = fast.actor_backward(replay_data.observations)
                self._check_finite("actor_loss", actor_loss)
                losses.add_actor(detached(actor_loss))
                self.actor.optimizer.step()

                self._fast.update_targets(self.tau)

            if self.param_noise_exploration is not None and self._n_updates % self.param_noise_adaption_interval == 0:
                # VecNormalize-aware batch: the actor sees the observations it is trained on
                observations = self.replay_buffer.sample(self.batch_size, env=self._vec_normalize_env).observations
                self.param_noise_exploration.adapt(self.actor, observations, self.n_envs, self.logger)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        losses.record(self.logger)

    def _check_finite(self, name: str, value: th.Tensor | np.ndarray) -> None:
        """With ``check_numerics``: raise at the first NaN/inf, naming the tensor and the step (one device sync)."""
        if not self.check_numerics:
            return
        finite = bool(th.isfinite(value).all()) if isinstance(value, th.Tensor) else bool(np.all(np.isfinite(value)))
        if not finite:
            raise FloatingPointError(
                f"Non-finite value (NaN or inf) in {name} at timestep {self.num_timesteps} (gradient step {self._n_updates})"
            )

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
            obs_tensor: th.Tensor | dict[str, th.Tensor]
            if isinstance(self._last_obs, np.ndarray) and self._flat_box_obs:
                obs_tensor = th.as_tensor(self._last_obs, device=self.device)
            else:
                obs_tensor = self.policy.obs_to_tensor(self._last_obs)[0]
            if self.param_noise_exploration is not None:
                actions = self.param_noise_exploration.act(self.actor, obs_tensor, n_envs)
            elif (fast := self._fast_path(acting=True)) is not None:
                # [speed] The same forward pass without nn.Module's call overhead (large next to small layers)
                actions = fast.act(obs_tensor)  # type: ignore[arg-type]
            else:
                with th.no_grad():
                    actions = self.actor(obs_tensor)
            scaled_action = actions.cpu().numpy().reshape((-1, self._action_dim()))

        if action_noise is not None:
            if isinstance(action_noise, ScheduledActionNoise):
                action_noise.set_progress(self.num_timesteps, self._episode_num)
            scaled_action = scaled_action + action_noise()
            # np.clip(scaled_action, -1, 1) in place, without np.clip's Python wrappers
            np.minimum(np.maximum(scaled_action, -1, out=scaled_action), 1, out=scaled_action)
        self._check_finite("actions", scaled_action)
        buffer_action = scaled_action
        action = self.policy.unscale_action(scaled_action)
        return action, buffer_action

    def _action_dim(self) -> int:
        """:return: ``get_action_dim(self.action_space)``, worked out once per action space object"""
        cached = self.__dict__.get("_action_dim_cache")
        if cached is None or cached[0] is not self.action_space:
            cached = self.__dict__["_action_dim_cache"] = (self.action_space, get_action_dim(self.action_space))
        return cached[1]

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
        if (
            self._vec_normalize_env is None
            and getattr(replay_buffer.add, "__func__", None) is DDPGPlusReplayBuffer.add
            and isinstance(dones, np.ndarray)
            and not dones.any()
        ):
            # [speed] SB3's _store_transition in this case (no VecNormalize, no episode end: no terminal observation
            # to write into the next observations), without its deepcopy of new_obs: our buffer's add() (not a
            # subclass's or a patched one) copies what it is given into its storage and modifies none of its arguments
            self._last_original_obs = self._last_obs
            replay_buffer.add(self._last_original_obs, new_obs, buffer_action, reward, dones, infos)  # type: ignore[arg-type]
            self._last_obs = new_obs  # type: ignore[assignment]
        else:
            super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        if self.param_noise_exploration is not None:
            # A new perturbation for each environment whose episode ended (its own, not a shared one)
            self.param_noise_exploration.episodes_ended(self.actor, dones, self.num_timesteps)

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        assert self.env is not None, "You must set the environment before calling learn()"
        new_episodes = reset_num_timesteps or self._last_obs is None
        ours = isinstance(self.replay_buffer, DDPGPlusReplayBuffer)
        if ours and new_episodes:
            # The environments restart: close stored episodes as truncated (they bootstrap; nothing is lost). SB3's
            # memory-optimised workaround (marking the last row done, GH#46) is for its own buffers only.
            self.replay_buffer.start_new_trajectory()  # type: ignore[union-attr,attr-defined]
        if isinstance(self.action_noise, ScheduledActionNoise):
            # Natively vectorised: one state per environment (SB3 leaves a VectorizedActionNoise as it is)
            self.action_noise.set_n_envs(self.env.num_envs)
        optimize_memory_usage = self.optimize_memory_usage
        self.optimize_memory_usage = optimize_memory_usage and not ours
        try:
            result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        finally:
            self.optimize_memory_usage = optimize_memory_usage
        if self.param_noise_exploration is not None:
            self.param_noise_exploration.start(self.actor, self.env.num_envs, new_episodes)
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

    load_time_kwargs: ClassVar[tuple[str, ...]] = ("action_noise", "param_noise")

    def _apply_load_kwargs(self, kwargs: dict[str, Any]) -> None:
        # Plain data accepted on load as in the constructor (rl-zoo3's resume passes its YAML's noise this way)
        if "action_noise" in kwargs:
            self.action_noise = make_action_noise(kwargs["action_noise"], get_action_dim(self.action_space))
            if isinstance(self.action_noise, ScheduledActionNoise) and self.seed is not None:
                self.action_noise.seed(self.seed)
        if "param_noise" in kwargs:
            spec = make_param_noise(kwargs["param_noise"])
            self.param_noise_exploration = None if spec is None else ParamNoiseExploration(spec, self.seed)
            if spec is not None:
                check_perturbable(self.actor)

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "actor_target",
            "critic_target",
            "actor_lr_schedule",
            "critic_lr_schedule",
            "_fast",
            "_in_setup",
            "_compiled_update",
            "_native_update",
            "_action_dim_cache",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        return state_dicts, []
