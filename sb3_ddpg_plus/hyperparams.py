"""
Plain-data hyperparameters (YAML / JSON / dicts) <-> DDPGPlus constructor arguments.

Files are read with ``yaml.safe_load``: nothing is ever ``eval()``-ed, so a hyperparameter file is data only. The
checks come in two layers, so that a file refuses exactly what the constructor refuses:

- this module checks what only files have: the YAML structure (a mapping, or one mapping per environment), unknown
  keys (refused, with the known ones listed), the plain-data forms of values (``lin_<number>`` schedules, activation
  names, policy names, mappings for the noises), the runner keys (:data:`RUNNER_KEYS`) and the older spellings
  (:data:`POLICY_OPTION_KEYS`);
- the values of constructor arguments are checked by :mod:`sb3_ddpg_plus.validation`, the constructor's own checks
  (``check_hyperparameters``, ``check_net_arch``, ...), called here on the file's values.

Errors name the key (``policy_kwargs.net_arch``) and, for a file, the file and its entry.

Example::

    policy: MlpPolicy
    gamma: 0.98
    actor_learning_rate: 0.0003
    critic_learning_rate: lin_0.001      # linear schedule from 1e-3 to 0, as rl-zoo writes it
    action_noise: {type: ornstein-uhlenbeck, sigma: 0.5}
    param_noise: {initial_stddev: 0.2, desired_action_stddev: 0.2}
    policy_kwargs: {net_arch: [400, 300], actor_layer_norm: true, activation_fn: relu, n_critics: 2}
    n_timesteps: 20000                   # runner keys: used by scripts, not by the constructor
    normalize: false

A file may also hold several environments at its top level (``Pendulum-v1: {...}``, ``default: {...}``), as rl-zoo's do.
The defaults of ``python -m sb3_ddpg_plus.zoo train`` are such a table:
:func:`sb3_ddpg_plus.experiments.zoo_hyperparams.ddpg_plus_hyperparams` (rl-zoo3's ``ddpg.yml`` plus our differences).
"""

import functools
import inspect
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_ddpg_plus.checkpoints import atomic_write
from sb3_ddpg_plus.ddpg_plus import DDPGPlus
from sb3_ddpg_plus.validation import (
    check_bool,
    check_float,
    check_hyperparameters,
    check_int,
    check_learning_rate,
    check_net_arch,
)

#: Keys read by the scripts that run a model (rl-zoo3, ``tuning/``, ``benchmarks/``), not by the constructor.
RUNNER_KEYS = ("n_timesteps", "n_envs", "normalize")
#: Policy options that older files and stored Optuna trials write at the top level; they are read into
#: ``policy_kwargs`` (their one spelling, as ``n_critics`` is a ``policy_kwargs`` key of SB3's TD3).
POLICY_OPTION_KEYS = ("n_critics", "critic_weight_decay")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")
_NORMALIZE_KEYS = ("norm_obs", "norm_reward", "gamma", "clip_obs", "clip_reward")

#: A file-layer check: ``check(where, value)`` raises ``TypeError``/``ValueError`` naming the key path ``where``.
Check = Callable[[str, Any], None]


def _reworded(error: Exception, message: str) -> Exception:
    """The same kind of error with another message (``DDPGPlusInputError`` stays one, so SB3-era code catches it)."""
    try:
        return type(error)(message)
    except TypeError:  # an error class with another constructor
        return ValueError(message)


def _type_error(where: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"Hyperparameter `{where}` must be {expected}, got {value!r} ({type(value).__name__})")


def _check_str(where: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _type_error(where, "a string", value)


def _check_mapping(where: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise _type_error(where, "a mapping", value)


def _check_policy(where: str, value: Any) -> None:
    # By name only: a file cannot hold a class
    if value not in POLICIES:
        raise ValueError(f"Hyperparameter `{where}` must be one of {POLICIES}, got {value!r}")


def _check_learning_rate(where: str, value: Any) -> None:
    # A number is checked with the other constructor arguments; 'lin_<number>' (rl-zoo's schedule) is read here and
    # its number checked as a learning rate
    if not isinstance(value, str):
        return
    if not value.startswith("lin_"):
        raise ValueError(f"Hyperparameter `{where}` must be a number or 'lin_<number>', got {value!r}")
    try:
        initial = float(value[4:])
    except ValueError as error:
        raise ValueError(f"Hyperparameter `{where}`: cannot read a number in {value!r}") from error
    check_learning_rate(where, initial)


def _check_count(minimum: int) -> Check:
    """Integers that no constructor check covers (runner keys, the seed); ``1e6`` from YAML is an integer too."""

    def check_count(where: str, value: Any) -> None:
        check_int(where, value, minimum)

    return check_count


def _check_number(where: str, value: Any) -> None:
    check_float(where, value, -math.inf, math.inf)


def _check_normalize(where: str, value: Any) -> None:
    # VecNormalize's options, as the runners pass them
    if isinstance(value, Mapping):
        unknown = set(value) - set(_NORMALIZE_KEYS)
        if unknown:
            raise ValueError(f"Unknown key(s) {sorted(unknown)} in hyperparameter `{where}`; known: {list(_NORMALIZE_KEYS)}")
    elif not isinstance(value, bool):
        raise _type_error(where, "true/false or a mapping of VecNormalize options", value)


def _check_net_arch(where: str, value: Any) -> None:
    # The form is the constructor's check; a file also refuses the keys that the constructor would ignore
    if isinstance(value, Mapping) and set(value) - {"pi", "qf"}:
        raise ValueError(f"Hyperparameter `{where}` as a mapping takes the keys 'pi' and 'qf', got {sorted(value)}")
    try:
        check_net_arch(dict(value) if isinstance(value, Mapping) else value)
    except (TypeError, ValueError) as error:  # it names `net_arch`: name the file's key path
        raise _reworded(error, f"Hyperparameter `{where}`: {error}") from error


def _check_activation(where: str, value: Any) -> None:
    # By name: a file cannot hold a class
    if value not in ACTIVATIONS:
        raise ValueError(f"Hyperparameter `{where}` must be one of {sorted(ACTIVATIONS)}, got {value!r}")


def _check_n_critics(where: str, value: Any) -> None:
    check_int(where, value, 1)  # as DDPGPlusPolicy checks it


def _check_weight_decay(where: str, value: Any) -> None:
    check_float(where, value, 0.0, math.inf, high_open=True)  # as DDPGPlusPolicy checks it


def _optional(check: Check) -> Check:
    """The check, with null (None) accepted too."""

    def check_optional(where: str, value: Any) -> None:
        if value is not None:
            check(where, value)

    return check_optional


#: Top-level keys: how this layer reads each, ``None`` where the value is the constructor's argument as is. Every key
#: that ``validation.check_hyperparameters`` takes is also checked there (:func:`_check_arguments`).
_SCHEMA: dict[str, Check | None] = {
    "policy": _check_policy,
    "learning_rate": _check_learning_rate,
    "actor_learning_rate": _check_learning_rate,
    "critic_learning_rate": _check_learning_rate,
    "buffer_size": None,
    "learning_starts": None,
    "batch_size": None,
    "tau": None,
    "gamma": None,
    "train_freq": None,
    "gradient_steps": None,
    "optimize_memory_usage": check_bool,
    "n_steps": None,
    # Plain data that DDPGPlus turns into noise objects, and checks, once it knows the action space
    "action_noise": _check_mapping,
    "param_noise": _check_mapping,
    "param_noise_adaption_interval": None,
    "policy_delay": None,
    "target_policy_noise": None,
    "target_noise_clip": None,
    "check_numerics": None,
    "manual_backward": None,
    "compile_update": None,
    "native_update": None,
    "policy_kwargs": _check_mapping,
    "replay_buffer_kwargs": _check_mapping,
    "seed": _check_count(0),
    "n_timesteps": _check_count(0),
    "n_envs": _check_count(1),
    "normalize": _check_normalize,
}
_POLICY_KWARGS_SCHEMA: dict[str, Check | None] = {
    "net_arch": _check_net_arch,
    "activation_fn": _check_activation,
    "actor_layer_norm": check_bool,
    "critic_layer_norm": check_bool,
    "share_features_extractor": check_bool,
    "n_critics": _check_n_critics,
    "normalize_images": check_bool,
    "critic_weight_decay": _check_weight_decay,
    "optimizer_kwargs": _check_mapping,
}
_REPLAY_BUFFER_KWARGS_SCHEMA: dict[str, Check | None] = {
    "handle_timeout_termination": check_bool,
    "storage_device": _check_str,
    # Prioritised replay (see DDPGPlusReplayBuffer; null means the default, ranges are checked by the buffer)
    "prioritized": _optional(_check_str),
    "alpha": _optional(_check_number),
    "beta": _optional(_check_number),
    "beta_final": _optional(_check_number),
    "beta_schedule_steps": _optional(_check_count(0)),
    "eps": _optional(_check_number),
}


def _check_keys(where: str, data: Mapping[str, Any], schema: Mapping[str, Check | None]) -> None:
    for key, value in data.items():
        if key not in schema:
            raise ValueError(f"Unknown hyperparameter `{where}{key}`; known keys are: {', '.join(sorted(schema))}")
        check = schema[key]
        if check is not None:
            check(f"{where}{key}", value)


def _learning_rate(value: float | str) -> Any:
    if isinstance(value, str):
        return LinearSchedule(float(value[4:]), 0.0, 1.0)
    return value


@functools.cache
def _checked_arguments() -> tuple[tuple[str, ...], dict[str, Any]]:
    """
    :return: The arguments of ``validation.check_hyperparameters``, and the constructor's defaults of those it needs
        (it has no default for them)
    """
    parameters = inspect.signature(check_hyperparameters).parameters
    constructor = inspect.signature(DDPGPlus.__init__).parameters
    needed = {
        name: constructor[name].default
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    return tuple(parameters), needed


def _check_arguments(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """
    Check the values of the constructor's arguments with the constructor's own check,
    ``validation.check_hyperparameters``; what the file leaves out is given the constructor's defaults.

    :param hyperparams: Plain-data hyperparameters (keys and forms already checked)
    :return: What ``check_hyperparameters`` returns for the arguments the file gives (counts as Python ints, ...)
    """
    # check_hyperparameters takes every argument (the constructor passes them all); a file gives some
    names, needed = _checked_arguments()
    given: dict[str, Any] = {}
    for name in names:
        if name in hyperparams:
            # 'lin_<number>' as the schedule the constructor gets (its number is checked by _check_learning_rate)
            given[name] = _learning_rate(hyperparams[name]) if "learning_rate" in name else hyperparams[name]
    checked = check_hyperparameters(**{**needed, **given})
    return {name: value for name, value in checked.items() if name in given}


def move_policy_options(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """
    Read the older spelling of the policy options :data:`POLICY_OPTION_KEYS`: ``n_critics: 2`` at the top level (as
    in older files and stored Optuna trials) becomes ``policy_kwargs: {n_critics: 2}``.

    :param hyperparams: Plain-data hyperparameters, in either spelling
    :return: A new dict in the ``policy_kwargs`` spelling (``policy_kwargs`` copied, never changed in place)
    :raises ValueError: a key is given both ways with different values
    :raises TypeError: ``hyperparams`` or ``policy_kwargs`` is not a mapping
    """
    if not isinstance(hyperparams, Mapping):
        raise TypeError(f"Hyperparameters must be a mapping, got {type(hyperparams).__name__}")
    data = dict(hyperparams)
    moved = {key: data.pop(key) for key in POLICY_OPTION_KEYS if key in data}
    if not moved:
        return data
    policy_kwargs = data.get("policy_kwargs", {})
    _check_mapping("policy_kwargs", policy_kwargs)
    policy_kwargs = dict(policy_kwargs)
    for key, value in moved.items():
        if key in policy_kwargs and policy_kwargs[key] != value:
            raise ValueError(
                f"Hyperparameters `{key}: {value!r}` and `policy_kwargs.{key}: {policy_kwargs[key]!r}` disagree: "
                f"`{key}` is a policy option, write it in `policy_kwargs` only"
            )
        policy_kwargs[key] = value
    data["policy_kwargs"] = policy_kwargs
    return data


def validate_hyperparameters(hyperparams: Mapping[str, Any]) -> None:
    """
    Check plain-data hyperparameters: the keys and forms of a file here, the values by the constructor's checks
    (see the module docstring).

    :param hyperparams: The hyperparameters (either spelling of :data:`POLICY_OPTION_KEYS`)
    :raises ValueError: for an unknown key or a bad value
    :raises TypeError: for a value of the wrong type
    """
    hyperparams = move_policy_options(hyperparams)
    _check_keys("", hyperparams, _SCHEMA)
    _check_keys("policy_kwargs.", hyperparams.get("policy_kwargs", {}), _POLICY_KWARGS_SCHEMA)
    _check_keys("replay_buffer_kwargs.", hyperparams.get("replay_buffer_kwargs", {}), _REPLAY_BUFFER_KWARGS_SCHEMA)
    _check_arguments(hyperparams)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"Cannot read hyperparameter file {path}: {error.strerror or error}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"Hyperparameter file {path} is not valid YAML: {error}") from error


def _looks_keyed_by_env(data: Mapping[str, Any]) -> bool:
    keys = set(_SCHEMA) | set(POLICY_OPTION_KEYS)
    return bool(data) and all(isinstance(value, Mapping) for value in data.values()) and not set(data) & keys


def load_hyperparams(source: "str | os.PathLike[str] | Mapping[str, Any]", env_id: str | None = None) -> dict[str, Any]:
    """
    Read and validate plain-data hyperparameters.

    :param source: A YAML/JSON file path or a mapping
    :param env_id: For files keyed by environment id: the entry to use (``"default"`` when it is absent)
    :return: The validated hyperparameters (a new dict), policy options in ``policy_kwargs``
        (:func:`move_policy_options`)
    :raises ValueError: for an unknown key, a bad value or an unreadable file (naming the file and its entry)
    :raises TypeError: for a value of the wrong type (naming the file and its entry)
    """
    is_file = not isinstance(source, Mapping)
    data = _read_yaml(Path(source)) if is_file else dict(source)  # type: ignore[arg-type]
    if data is None:
        data = {}
    origin = f"file {source}" if is_file else "the given mapping"
    if not isinstance(data, Mapping):
        raise ValueError(f"Hyperparameters in {origin} must be a mapping, got {type(data).__name__}")
    entry = None
    if _looks_keyed_by_env(data):
        if env_id is not None and env_id in data:
            entry = env_id
        elif "default" in data:
            entry = "default"
        else:
            raise ValueError(f"No hyperparameters for {env_id!r} in {origin}: it has {sorted(data)}")
        data = data[entry]
    try:
        data = move_policy_options(data)
        validate_hyperparameters(data)
    except (TypeError, ValueError) as error:
        if not is_file and entry is None:
            raise
        where = f"{origin}, entry {entry!r}" if entry is not None else origin
        raise _reworded(error, f"{error} (in {where})") from error
    return data


def to_constructor_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """
    Turn plain-data hyperparameters (validated here) into keyword arguments of ``DDPGPlus(env=..., **kwargs)``.
    Runner keys (:data:`RUNNER_KEYS`) are dropped; :data:`POLICY_OPTION_KEYS` are only ever in ``policy_kwargs``.

    :param hyperparams: Plain-data hyperparameters
    :return: Constructor keyword arguments (``policy`` included, "MlpPolicy" by default)
    """
    hyperparams = move_policy_options(hyperparams)
    validate_hyperparameters(hyperparams)
    kwargs = {key: value for key, value in hyperparams.items() if key not in RUNNER_KEYS}
    kwargs.setdefault("policy", "MlpPolicy")
    for key in ("learning_rate", "actor_learning_rate", "critic_learning_rate"):
        if key in kwargs:
            kwargs[key] = _learning_rate(kwargs[key])
            if not callable(kwargs[key]):
                kwargs[key] = float(kwargs[key])
    for key, value in _check_arguments(hyperparams).items():
        # Counts as Python ints, as the constructor's check returns them (YAML reads 1e6 as a float)
        if type(value) is int:
            kwargs[key] = value
    if isinstance(kwargs.get("train_freq"), list | tuple):
        kwargs["train_freq"] = (int(kwargs["train_freq"][0]), kwargs["train_freq"][1])
    elif "train_freq" in kwargs:
        kwargs["train_freq"] = int(kwargs["train_freq"])
    if "policy_kwargs" in kwargs:
        policy_kwargs = dict(kwargs["policy_kwargs"])
        if "n_critics" in policy_kwargs:
            policy_kwargs["n_critics"] = int(policy_kwargs["n_critics"])
        if "activation_fn" in policy_kwargs:
            policy_kwargs["activation_fn"] = ACTIVATIONS[policy_kwargs["activation_fn"]]
        if isinstance(policy_kwargs.get("net_arch"), Mapping):
            policy_kwargs["net_arch"] = dict(policy_kwargs["net_arch"])
        kwargs["policy_kwargs"] = policy_kwargs
    # action_noise and param_noise stay plain data: DDPGPlus builds them once it knows the action space
    return kwargs


def make_model(hyperparams: Mapping[str, Any], env: Any, **overrides: Any) -> Any:
    """
    Build a ``DDPGPlus`` from plain-data hyperparameters.

    :param hyperparams: Plain-data hyperparameters
    :param env: The environment (or its id)
    :param overrides: Constructor keyword arguments that take precedence (``seed``, ``verbose``, ...)
    :return: The model
    """
    kwargs = to_constructor_kwargs(hyperparams)
    kwargs.update(overrides)
    return DDPGPlus(env=env, **kwargs)


def dump_hyperparams(hyperparams: Mapping[str, Any], path: "str | os.PathLike[str]", header: str | None = None) -> None:
    """
    Write plain-data hyperparameters as YAML, atomically (a temporary file renamed over the target, so a crash
    never leaves a half-written file).

    :param hyperparams: Plain-data hyperparameters (validated first; policy options written in ``policy_kwargs``)
    :param path: Destination
    :param header: Optional comment lines written at the top (e.g. the command that produced them)
    """
    hyperparams = move_policy_options(hyperparams)
    validate_hyperparameters(hyperparams)
    text = yaml.safe_dump(hyperparams, sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
