"""
Checks of DDPGPlus's inputs: each raises ``ValueError``/``TypeError`` naming the offending value.

Where SB3 itself asserts (an unsupported action space, a malformed ``net_arch``, ``train_freq`` below 1), the error is a
:class:`DDPGPlusInputError`: a ``ValueError`` that is also an ``AssertionError``, so code written for SB3
(``except AssertionError``) keeps catching it.
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit


class DDPGPlusInputError(ValueError, AssertionError):
    """
    A bad input that SB3 reports with an ``assert``: a ``ValueError`` with a clear message that is also an
    ``AssertionError``, so both ``except ValueError`` and SB3-era ``except AssertionError`` catch it.
    """


class IncompatiblePolicyError(ValueError):
    """A policy that is not an actor-critic with target networks (for example in a file saved by SAC or PPO)."""


def check_actor_critic_policy(policy: Any) -> None:
    """
    :param policy: The policy the algorithm built
    :raises IncompatiblePolicyError: unless it has an actor, a critic and their targets (naming the algorithm whose
        policy it looks like)
    """
    missing = [name for name in ("actor", "actor_target", "critic", "critic_target") if not hasattr(policy, name)]
    if missing:
        policy_class = type(policy)
        parts = policy_class.__module__.split(".")
        algorithm = parts[-2].upper() if len(parts) >= 2 else "unknown"
        raise IncompatiblePolicyError(
            f"the policy {policy_class.__name__} ({policy_class.__module__}, algorithm {algorithm}) has no "
            f"{', '.join(missing)}: DDPGPlus needs a DDPG/TD3 policy (DDPGPlusPolicy, or SB3's TD3Policy for a file "
            "saved by SB3's DDPG or TD3)"
        )


def check_action_space(action_space: spaces.Space) -> None:
    """
    :param action_space: The environment's action space
    :raises DDPGPlusInputError: unless it is a Box with finite bounds (SB3 asserts both)
    """
    if not isinstance(action_space, spaces.Box):
        raise DDPGPlusInputError(
            f"DDPGPlus needs a continuous Box action space, got {action_space} ({type(action_space).__name__}): "
            "DDPG has no discrete variant"
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise DDPGPlusInputError(
            f"DDPGPlus needs an action space with finite bounds (the actor's tanh output is rescaled to them), "
            f"got low={action_space.low}, high={action_space.high}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is an integer or an integral float (YAML reads ``1e6`` as a float), else None."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_int(name: str, value: Any, minimum: int) -> int:
    """
    :param name: The argument's name (for the message)
    :param value: Its value: an integer, or a float with an integral value such as ``1e6``
    :param minimum: The smallest value allowed
    :return: The value as a Python int
    :raises TypeError: for a non-integral number or another type (``10.5`` steps is a typo, not a count)
    :raises ValueError: below ``minimum``
    """
    as_int = _as_int(value)
    if as_int is None:
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    if as_int < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return as_int


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


def check_train_freq(train_freq: Any) -> int | tuple[int, TrainFrequencyUnit] | TrainFreq:
    """
    :param train_freq: What SB3 takes: an int, ``(int, "step"|"episode")`` (a list from YAML, or with a
        ``TrainFrequencyUnit``) or a ``TrainFreq``; integral floats are taken as ints
    :return: The same form with an int frequency (a list becomes a tuple, a unit a ``TrainFrequencyUnit``)
    :raises ValueError: for another form (as SB3); :class:`DDPGPlusInputError` for a frequency below 1 (SB3 asserts)
    """
    expected = "an int, (int, 'step'|'episode') or a TrainFreq"
    if isinstance(train_freq, tuple | list):  # TrainFreq is a tuple too
        if len(train_freq) != 2:
            raise ValueError(f"`train_freq` must be {expected}, got {train_freq!r}")
        frequency, unit = train_freq
        try:
            unit = TrainFrequencyUnit(unit)
        except ValueError as error:
            raise ValueError(f"The unit of `train_freq` must be 'step' or 'episode', got {unit!r}") from error
    else:
        frequency, unit = train_freq, None
    as_int = _as_int(frequency)
    if as_int is None:
        raise ValueError(f"The frequency of `train_freq` must be an integer, got {frequency!r} ({type(frequency).__name__})")
    if as_int < 1:
        raise DDPGPlusInputError(f"The frequency of `train_freq` must be >= 1 (one step or episode at least), got {as_int}")
    if unit is None:
        return as_int
    return TrainFreq(as_int, unit) if isinstance(train_freq, TrainFreq) else (as_int, unit)


_NET_ARCH_FORMS = "a list of layer sizes such as [400, 300] (for both networks) or dict(pi=[...], qf=[...])"


def _check_layer_sizes(where: str, sizes: Any) -> None:
    if not isinstance(sizes, list | tuple):
        raise TypeError(f"`{where}` must be a list of layer sizes such as [400, 300], got {sizes!r} ({type(sizes).__name__})")
    for size in sizes:
        if not isinstance(size, int | np.integer) or isinstance(size, bool):
            raise TypeError(f"`{where}` must hold integer layer sizes such as [400, 300], got {size!r} in {sizes!r}")
        if size < 1:
            raise DDPGPlusInputError(f"`{where}`: every layer needs at least one unit, got {size} in {sizes!r}")


def check_net_arch(net_arch: Any) -> None:
    """
    Check a policy's ``net_arch`` (``None``: the default).

    :param net_arch: ``[400, 300]`` (the same hidden layers for the actor and the critic) or
        ``dict(pi=[...], qf=[...])`` (the actor's and the critic's; other keys are ignored, as in SB3)
    :raises DDPGPlusInputError: for another form, such as the string ``"64,64"`` or a dict without ``pi`` or ``qf``
        (SB3 asserts), or a layer of fewer than one unit
    :raises TypeError: for a layer size that is not an integer (SB3's error type)
    """
    if net_arch is None:
        return
    if isinstance(net_arch, list):
        _check_layer_sizes("net_arch", net_arch)
    elif isinstance(net_arch, dict):
        missing = [key for key in ("pi", "qf") if key not in net_arch]
        if missing:
            raise DDPGPlusInputError(
                f"`net_arch` as a dict needs the keys 'pi' (actor) and 'qf' (critic), got {sorted(net_arch)}: "
                f"missing {missing}. Expected {_NET_ARCH_FORMS}"
            )
        for key in ("pi", "qf"):
            _check_layer_sizes(f"net_arch['{key}']", net_arch[key])
    else:
        hint = ""
        if isinstance(net_arch, str):
            sizes = [part.strip() for part in net_arch.strip("[]() ").split(",")]
            if all(part.isdigit() for part in sizes):
                hint = f" (did you mean [{', '.join(sizes)}]?)"
        raise DDPGPlusInputError(f"`net_arch` must be {_NET_ARCH_FORMS}, got {net_arch!r} ({type(net_arch).__name__}){hint}")


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
    policy_delay: Any,
    target_policy_noise: Any,
    target_noise_clip: Any,
    param_noise_adaption_interval: Any,
    check_numerics: Any = False,
    manual_backward: Any = True,
    compile_update: Any = False,
    native_update: Any = "auto",
    policy_kwargs: Any = None,
    replay_buffer_kwargs: Any = None,
) -> dict[str, Any]:
    """
    Validate DDPGPlus's constructor arguments (see :class:`~sb3_ddpg_plus.DDPGPlus` for their meaning).

    Everything SB3's DDPG trains on correctly is accepted (``tau=0``, a ``TrainFreq``, a float ``learning_starts``
    such as ``1e3``); what it would silently mis-train on is refused (negative counts, ``tau`` or ``gamma`` outside
    ``[0, 1]``, an empty buffer, a non-integral count of steps such as ``learning_starts=10.5``).

    :return: The arguments by name, counts as Python ints (``buffer_size=1e6`` gives ``1_000_000``) and
        ``train_freq`` as returned by :func:`check_train_freq`; the other values unchanged
    """
    check_learning_rate("learning_rate", learning_rate, optional=False)
    check_learning_rate("actor_learning_rate", actor_learning_rate)
    check_learning_rate("critic_learning_rate", critic_learning_rate)
    check_float("tau", tau, 0.0, 1.0)
    check_float("gamma", gamma, 0.0, 1.0)
    check_float("target_policy_noise", target_policy_noise, 0.0, math.inf, high_open=True)
    check_float("target_noise_clip", target_noise_clip, 0.0, math.inf, high_open=True)
    check_bool("check_numerics", check_numerics)
    check_bool("manual_backward", manual_backward)
    check_bool("compile_update", compile_update)
    if not (isinstance(native_update, bool) or native_update == "auto"):
        raise ValueError(f"`native_update` must be True, False or 'auto', got {native_update!r}")
    for name, value in (("policy_kwargs", policy_kwargs), ("replay_buffer_kwargs", replay_buffer_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"`{name}` must be a dict, got {type(value).__name__}")
    return dict(
        learning_rate=learning_rate,
        actor_learning_rate=actor_learning_rate,
        critic_learning_rate=critic_learning_rate,
        buffer_size=check_int("buffer_size", buffer_size, 1),
        learning_starts=check_int("learning_starts", learning_starts, 0),
        batch_size=check_int("batch_size", batch_size, 1),
        tau=tau,
        gamma=gamma,
        train_freq=check_train_freq(train_freq),
        gradient_steps=check_int("gradient_steps", gradient_steps, -1),
        n_steps=check_int("n_steps", n_steps, 1),
        policy_delay=check_int("policy_delay", policy_delay, 1),
        target_policy_noise=target_policy_noise,
        target_noise_clip=target_noise_clip,
        param_noise_adaption_interval=check_int("param_noise_adaption_interval", param_noise_adaption_interval, 1),
    )
