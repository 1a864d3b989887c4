"""Checks of DDPGPlus's hyperparameters: each raises ``ValueError``/``TypeError`` naming the offending value."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces


def check_action_space(action_space: spaces.Space) -> None:
    """
    :param action_space: The environment's action space
    :raises ValueError: unless it is a Box with finite bounds
    """
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"DDPGPlus needs a continuous Box action space, got {action_space} ({type(action_space).__name__}): "
            "DDPG has no discrete variant"
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"DDPGPlus needs an action space with finite bounds (the actor's tanh output is rescaled to them), "
            f"got low={action_space.low}, high={action_space.high}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False, got {value!r} ({type(value).__name__})")


def check_float(name: str, value: Any, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    if not _is_number(value):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be in {interval}, got {value}")


def check_learning_rate(name: str, value: float | Callable[[float], float] | None, optional: bool = True) -> None:
    if value is None and not optional:
        raise TypeError(f"`{name}` must be a number or a schedule (callable), got None")
    if value is None or callable(value):
        return
    check_float(name, value, 0.0, math.inf, low_open=True, high_open=True)


def check_train_freq(train_freq: Any) -> None:
    if isinstance(train_freq, tuple | list):
        if len(train_freq) != 2 or train_freq[1] not in ("step", "episode"):
            raise ValueError(f"`train_freq` must be an int or (int, 'step'|'episode'), got {train_freq!r}")
        check_int("train_freq", train_freq[0], 1)
    else:
        check_int("train_freq", train_freq, 1)


def check_hyperparameters(
    learning_rate: Any,
    actor_learning_rate: Any,
    critic_learning_rate: Any,
    buffer_size: Any,
    learning_starts: Any,
    batch_size: Any,
    tau: Any,
    gamma: Any,
    train_freq: Any,
    gradient_steps: Any,
    n_steps: Any,
    critic_weight_decay: Any,
    n_critics: Any,
    policy_delay: Any,
    target_policy_noise: Any,
    target_noise_clip: Any,
    param_noise_adaption_interval: Any,
) -> None:
    """Validate DDPGPlus's constructor arguments (see :class:`~sb3_ddpg_plus.DDPGPlus` for their meaning)."""
    check_learning_rate("learning_rate", learning_rate, optional=False)
    check_learning_rate("actor_learning_rate", actor_learning_rate)
    check_learning_rate("critic_learning_rate", critic_learning_rate)
    check_int("buffer_size", buffer_size, 1)
    check_int("learning_starts", learning_starts, 0)
    check_int("batch_size", batch_size, 1)
    check_float("tau", tau, 0.0, 1.0, low_open=True)
    check_float("gamma", gamma, 0.0, 1.0)
    check_train_freq(train_freq)
    check_int("gradient_steps", gradient_steps, -1)
    check_int("n_steps", n_steps, 1)
    check_float("critic_weight_decay", critic_weight_decay, 0.0, math.inf, high_open=True)
    if n_critics is not None:
        check_int("n_critics", n_critics, 1)
    check_int("policy_delay", policy_delay, 1)
    check_float("target_policy_noise", target_policy_noise, 0.0, math.inf, high_open=True)
    check_float("target_noise_clip", target_noise_clip, 0.0, math.inf, high_open=True)
    check_int("param_noise_adaption_interval", param_noise_adaption_interval, 1)
