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
