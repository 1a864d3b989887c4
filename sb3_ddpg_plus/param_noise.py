"""
Adaptive parameter-space noise (Plappert et al. 2017, https://arxiv.org/abs/1706.01905).

Exploration comes from acting with a perturbed copy of the actor, ``theta + sigma * N(0, I)``. ``sigma`` adapts so that
the perturbed actor's actions differ from the clean actor's by ``desired_action_stddev`` (RMS, in the scaled
``[-1, 1]`` action space, so it means the same as a Gaussian action-noise sigma).

Semantics, as openai/baselines and SB2: every Linear (and Conv) weight and bias of the actor is perturbed,
normalisation layers (LayerNorm, BatchNorm, ...) are copied exactly; the trained actor and the targets are never
touched: perturbed actors are separate, gradient-free copies.
"""

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from torch import nn

from sb3_ddpg_plus.noise import SigmaSchedule, make_sigma_schedule

# Layers whose parameters are perturbed; anything else (normalisation layers in particular) is copied as is.
PERTURBABLE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class AdaptiveParamNoiseSpec:
    """
    The adaptive parameter noise specification, with the semantics of openai/baselines and SB2.

    After each measurement ``d`` of the distance between the clean and a freshly perturbed actor,
    ``current_stddev`` is divided by ``adoption_coefficient`` if ``d > desired_action_stddev``, multiplied otherwise.

    :param initial_stddev: Initial standard deviation of the parameter perturbation
    :param desired_action_stddev: Target RMS distance between perturbed and clean actions (scaled action space)
    :param adoption_coefficient: Factor by which the standard deviation is adapted, > 1
    :param schedule: Optional schedule for ``desired_action_stddev`` (same format as action-noise schedules)
    """

    def __init__(
        self,
        initial_stddev: float = 0.2,
        desired_action_stddev: float = 0.2,
        adoption_coefficient: float = 1.01,
        schedule: SigmaSchedule | Mapping[str, Any] | None = None,
    ) -> None:
        for name, value in (("initial_stddev", initial_stddev), ("desired_action_stddev", desired_action_stddev)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Parameter noise `{name}` must be a finite number > 0, got {value!r}")
        if not isinstance(adoption_coefficient, int | float) or not (
            math.isfinite(adoption_coefficient) and adoption_coefficient > 1
        ):
            raise ValueError(f"Parameter noise `adoption_coefficient` must be > 1, got {adoption_coefficient!r}")
        self.initial_stddev = float(initial_stddev)
        self.initial_desired_action_stddev = float(desired_action_stddev)
        self.adoption_coefficient = float(adoption_coefficient)
        self.schedule = make_sigma_schedule(schedule)
        self.current_stddev = float(initial_stddev)
        self.last_distance: float | None = None
        self.num_steps = 0
        self.num_episodes = 0

    @property
    def desired_action_stddev(self) -> float:
        """The current target distance (after the schedule, if any)."""
        initial = np.array([self.initial_desired_action_stddev])
        if self.schedule is None:
            return self.initial_desired_action_stddev
        return float(self.schedule.value(initial, self.num_steps, self.num_episodes)[0])

    def adapt(self, distance: float) -> None:
        """
        Adapt the standard deviation from a measured distance.

        :param distance: RMS distance between the clean and perturbed actors' actions
        """
        self.last_distance = float(distance)
        if distance > self.desired_action_stddev:
            self.current_stddev /= self.adoption_coefficient
        else:
            self.current_stddev *= self.adoption_coefficient

    def to_dict(self) -> dict[str, Any]:
        """:return: The specification as plain data (accepted by :func:`make_param_noise`)."""
        data: dict[str, Any] = {
            "initial_stddev": self.initial_stddev,
            "desired_action_stddev": self.initial_desired_action_stddev,
            "adoption_coefficient": self.adoption_coefficient,
        }
        if self.schedule is not None:
            data["schedule"] = self.schedule.to_dict()
        return data

    def __repr__(self) -> str:
        return (
            f"AdaptiveParamNoiseSpec(initial_stddev={self.initial_stddev}, "
            f"desired_action_stddev={self.desired_action_stddev}, adoption_coefficient={self.adoption_coefficient}, "
            f"current_stddev={self.current_stddev})"
        )


def make_param_noise(config: "AdaptiveParamNoiseSpec | Mapping[str, Any] | None") -> AdaptiveParamNoiseSpec | None:
    """
    Build a parameter noise specification from plain data, e.g.
    ``{"initial_stddev": 0.2, "desired_action_stddev": 0.2, "adoption_coefficient": 1.01}``.

    :param config: A specification (returned unchanged), a mapping, or ``None``
    :return: The specification or ``None``
    """
    if config is None or isinstance(config, AdaptiveParamNoiseSpec):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"`param_noise` must be an AdaptiveParamNoiseSpec, a mapping or None, got {type(config).__name__}")
    allowed = {"initial_stddev", "desired_action_stddev", "adoption_coefficient", "schedule"}
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"Unknown parameter noise key(s) {sorted(unknown)}, expected a subset of {sorted(allowed)}")
    return AdaptiveParamNoiseSpec(**config)


def perturbable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """
    The parameters that parameter noise perturbs: weights and biases of Linear and Conv layers, selected by module
    type (never by name, which is how other ports ended up perturbing LayerNorm gains).

    :param module: The actor
    :return: The parameters to perturb
    """
    return [param for layer in module.modules() if isinstance(layer, PERTURBABLE_MODULES) for param in layer.parameters()]


def check_perturbable(actor: nn.Module) -> None:
    """
    :param actor: The actor
    :raises ValueError: if the actor has no layer that parameter noise can perturb
    """
    if not perturbable_parameters(actor):
        raise ValueError(
            f"Parameter noise needs an actor with Linear or Conv layers, but {type(actor).__name__} has none: "
            "use action noise instead"
        )


def make_perturbed_copy(actor: nn.Module) -> nn.Module:
    """
    :param actor: The trained actor
    :return: A gradient-free copy in eval mode, outside every optimizer
    """
    perturbed = copy.deepcopy(actor)
    perturbed.requires_grad_(False)
    perturbed.train(False)
    # The copy must not carry the actor's optimizer along (it would be pickled/checked needlessly).
    if hasattr(perturbed, "optimizer"):
        del perturbed.optimizer
    return perturbed


@th.no_grad()
def perturb(source: nn.Module, target: nn.Module, stddev: float, seed: int) -> None:
    """
    Write ``source``'s parameters plus Gaussian noise into ``target`` (perturbable layers only; every other
    parameter and buffer is copied exactly). ``source`` is not modified.

    :param source: The clean actor
    :param target: A copy made with :func:`make_perturbed_copy`
    :param stddev: Standard deviation of the perturbation
    :param seed: Seed of the perturbation (the same seed and source give the same perturbation)
    """
    target.load_state_dict(source.state_dict())
    generator = th.Generator(device="cpu").manual_seed(int(seed))
    for param in perturbable_parameters(target):
        noise = th.randn(param.shape, generator=generator, dtype=param.dtype)
        param.add_(noise.to(param.device), alpha=stddev)


@th.no_grad()
def action_distance(actor: nn.Module, perturbed: nn.Module, observations: th.Tensor | dict[str, th.Tensor]) -> float:
    """
    :param actor: The clean actor (tanh output, scaled action space)
    :param perturbed: The perturbed actor
    :param observations: A batch of (normalised) observations
    :return: RMS difference of their actions, ``sqrt(mean((pi(s) - pi_tilde(s))^2))``
    """
    return float(th.sqrt(th.mean((actor(observations) - perturbed(observations)) ** 2)))


class ParamNoiseExploration:
    """
    Acting with adaptive parameter noise: one perturbed copy of the actor per environment (resampled at that
    environment's episode end), and a scratch copy used to measure the action distance when sigma adapts. The
    algorithm calls it at four points: :meth:`start` (``learn()`` begins), :meth:`act`, :meth:`episodes_ended` and
    :meth:`adapt` (every ``param_noise_adaption_interval`` gradient steps).

    Saved with the model: the specification (with its current sigma), each environment's perturbation seed and the
    generator that draws them; the perturbed copies are rebuilt from the seeds on the current actor after loading.

    :param spec: The specification (sigma and its adaptation)
    :param seed: Seed of the generator of the perturbation seeds
    """

    def __init__(self, spec: AdaptiveParamNoiseSpec, seed: int | None = None) -> None:
        self.spec = spec
        self.seeds = np.zeros(0, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self._actors: list[nn.Module] = []
        self._scratch: nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The perturbed copies are rebuilt from the seeds (they would otherwise double the saved actor's size per env)
        return {**self.__dict__, "_actors": [], "_scratch": None}

    @property
    def perturbed_actors(self) -> list[nn.Module]:
        """The behaviour actors, one per environment (built by :meth:`start` or :meth:`act`)."""
        return self._actors

    def seed(self, seed: int | None) -> None:
        """:param seed: Seed of the generator of the perturbation seeds"""
        self.rng = np.random.default_rng(seed)

    def _build(self, actor: nn.Module, n_envs: int) -> None:
        if len(self._actors) == n_envs and self._scratch is not None:
            return
        self._actors = [make_perturbed_copy(actor) for _ in range(n_envs)]
        self._scratch = make_perturbed_copy(actor)
        if len(self.seeds) != n_envs:
            self.seeds = self.rng.integers(0, 2**62, size=n_envs)
        # After loading: the current actor plus the saved perturbations
        for idx in range(n_envs):
            perturb(actor, self._actors[idx], self.spec.current_stddev, int(self.seeds[idx]))

    def start(self, actor: nn.Module, n_envs: int, new_episodes: bool) -> None:
        """
        ``learn()`` begins.

        :param actor: The trained actor
        :param n_envs: Number of environments
        :param new_episodes: Whether the environments restart (every environment then gets a new perturbation)
        """
        self._build(actor, n_envs)
        if new_episodes:
            self.resample(actor, np.arange(n_envs))

    def resample(self, actor: nn.Module, env_indices: np.ndarray) -> None:
        """
        New behaviour perturbations of the current actor.

        :param actor: The trained actor
        :param env_indices: The environments that get one
        """
        for idx in env_indices:
            self.seeds[idx] = self.rng.integers(0, 2**62)
            perturb(actor, self._actors[idx], self.spec.current_stddev, int(self.seeds[idx]))

    @th.no_grad()
    def act(self, actor: nn.Module, observations: th.Tensor | dict[str, th.Tensor], n_envs: int) -> th.Tensor:
        """
        :param actor: The trained actor (the copies are built from it on first use)
        :param observations: One observation per environment
        :param n_envs: Number of environments
        :return: Each environment's perturbed actor's action (scaled action space)
        """
        self._build(actor, n_envs)
        return th.cat([self._actors[idx](_index_obs(observations, idx)) for idx in range(n_envs)])

    def episodes_ended(self, actor: nn.Module, dones: np.ndarray, num_timesteps: int) -> None:
        """
        After each environment step: advance the schedule and resample the perturbation of each finished episode.

        :param actor: The trained actor
        :param dones: One done flag per environment
        :param num_timesteps: Environment steps so far
        """
        self.spec.num_steps = num_timesteps
        done_envs = np.flatnonzero(dones)
        if len(done_envs) > 0:
            self.spec.num_episodes += len(done_envs)
            if self._actors:
                self.resample(actor, done_envs)

    def adapt(
        self, actor: nn.Module, observations: th.Tensor | dict[str, th.Tensor], n_envs: int, logger: Any = None
    ) -> float:
        """
        Measure the action distance of a fresh perturbation on a batch and adapt sigma.

        :param actor: The trained actor
        :param observations: A replay batch (as the actor is trained on them: normalised when VecNormalize is used)
        :param n_envs: Number of environments
        :param logger: SB3 logger that records the new sigma, the distance and its target (none when ``None``)
        :return: The measured distance
        """
        self._build(actor, n_envs)
        assert self._scratch is not None
        perturb(actor, self._scratch, self.spec.current_stddev, int(self.rng.integers(0, 2**62)))
        was_training = actor.training
        actor.train(False)
        distance = action_distance(actor, self._scratch, observations)
        actor.train(was_training)
        self.spec.adapt(distance)
        if logger is not None:
            logger.record("rollout/param_noise_std", self.spec.current_stddev)
            logger.record("rollout/param_noise_distance", distance)
            logger.record("rollout/param_noise_desired_distance", self.spec.desired_action_stddev)
        return distance


def _index_obs(obs: th.Tensor | dict[str, th.Tensor], idx: int) -> th.Tensor | dict[str, th.Tensor]:
    if isinstance(obs, dict):
        return {key: value[idx : idx + 1] for key, value in obs.items()}
    return obs[idx : idx + 1]
