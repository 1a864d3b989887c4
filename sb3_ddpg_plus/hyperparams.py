"""
Plain-data hyperparameters (YAML / JSON / dicts) <-> DDPGPlus constructor arguments.

Files are read with ``yaml.safe_load`` and every value is checked against a schema: nothing is ever ``eval()``-ed,
so a hyperparameter file is data only. Unknown keys and wrong types are refused with an error naming them.

Example::

    policy: MlpPolicy
    gamma: 0.98
    actor_learning_rate: 0.0003
    critic_learning_rate: lin_0.001      # linear schedule from 1e-3 to 0, as rl-zoo writes it
    action_noise: {type: ornstein-uhlenbeck, sigma: 0.5}
    param_noise: {initial_stddev: 0.2, desired_action_stddev: 0.2}
    policy_kwargs: {net_arch: [400, 300], actor_layer_norm: true, activation_fn: relu}
    n_timesteps: 20000                   # runner keys: used by scripts, not by the constructor
    normalize: false

A file may also hold several environments at its top level (``Pendulum-v1: {...}``, ``default: {...}``), as rl-zoo's do.
"""

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_ddpg_plus.checkpoints import atomic_write
from sb3_ddpg_plus.ddpg_plus import DDPGPlus

RUNNER_KEYS = ("n_timesteps", "n_envs", "normalize")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")

_INT = "int"
_FLOAT = "float"
_BOOL = "bool"
_LR = "learning rate"
_OPTIONAL_INT = "optional int"
_OPTIONAL_FLOAT = "optional float"
_OPTIONAL_STR = "optional str"
_SCHEMA: dict[str, Any] = {
    "policy": str,
    "learning_rate": _LR,
    "actor_learning_rate": _LR,
    "critic_learning_rate": _LR,
    "buffer_size": _INT,
    "learning_starts": _INT,
    "batch_size": _INT,
    "tau": _FLOAT,
    "gamma": _FLOAT,
    "train_freq": "train_freq",
    "gradient_steps": _INT,
    "optimize_memory_usage": _BOOL,
    "n_steps": _INT,
    "action_noise": dict,
    "param_noise": dict,
    "param_noise_adaption_interval": _INT,
    "critic_weight_decay": _FLOAT,
    "n_critics": _INT,
    "policy_delay": _INT,
    "target_policy_noise": _FLOAT,
    "target_noise_clip": _FLOAT,
    "check_numerics": _BOOL,
    "manual_backward": _BOOL,
    "policy_kwargs": dict,
    "replay_buffer_kwargs": dict,
    "seed": _INT,
    "n_timesteps": _INT,
    "n_envs": _INT,
    "normalize": "normalize",
}
_POLICY_KWARGS_SCHEMA: dict[str, Any] = {
    "net_arch": "net_arch",
    "activation_fn": "activation",
    "actor_layer_norm": _BOOL,
    "critic_layer_norm": _BOOL,
    "share_features_extractor": _BOOL,
    "n_critics": _INT,
    "normalize_images": _BOOL,
    "critic_weight_decay": _FLOAT,
    "optimizer_kwargs": dict,
}
_REPLAY_BUFFER_KWARGS_SCHEMA: dict[str, Any] = {
    "handle_timeout_termination": _BOOL,
    "storage_device": str,
    # Prioritised replay (see DDPGPlusReplayBuffer; null means the default, ranges are checked by the buffer)
    "prioritized": _OPTIONAL_STR,
    "alpha": _OPTIONAL_FLOAT,
    "beta": _OPTIONAL_FLOAT,
    "beta_final": _OPTIONAL_FLOAT,
    "beta_schedule_steps": _OPTIONAL_INT,
    "eps": _OPTIONAL_FLOAT,
}


def _type_error(where: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"Hyperparameter `{where}` must be {expected}, got {value!r} ({type(value).__name__})")


def _is_int(value: Any) -> bool:
    # YAML writes 1e6 as a float: an integral float is an integer
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _check_int(where: str, value: Any) -> None:
    if not _is_int(value):
        raise _type_error(where, "an integer", value)


def _check_float(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(where, "a number", value)


def _check_bool(where: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _type_error(where, "true or false", value)


def _check_learning_rate(where: str, value: Any) -> None:
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"Hyperparameter `{where}` must be a number or 'lin_<number>', got {value!r}")
        try:
            float(value[4:])
        except ValueError as error:
            raise ValueError(f"Hyperparameter `{where}`: cannot read a number in {value!r}") from error
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(where, "a number or 'lin_<number>'", value)


def _check_train_freq(where: str, value: Any) -> None:
    if _is_int(value):
        return
    if isinstance(value, list | tuple) and len(value) == 2 and _is_int(value[0]) and value[1] in ("step", "episode"):
        return
    raise _type_error(where, "an integer or [integer, 'step'|'episode']", value)


def _check_normalize(where: str, value: Any) -> None:
    if isinstance(value, dict):
        unknown = set(value) - {"norm_obs", "norm_reward", "gamma", "clip_obs", "clip_reward"}
        if unknown:
            raise ValueError(f"Unknown key(s) {sorted(unknown)} in hyperparameter `{where}`")
    elif not isinstance(value, bool):
        raise _type_error(where, "true/false or a mapping of VecNormalize options", value)


def _check_net_arch(where: str, value: Any) -> None:
    # What validation.check_net_arch accepts, except that unknown keys are refused here as everywhere in a file
    if isinstance(value, dict):
        if set(value) != {"pi", "qf"}:
            raise ValueError(f"Hyperparameter `{where}` as a mapping takes the keys 'pi' and 'qf', got {sorted(value)}")
        for key, arch in value.items():
            _check_net_arch(f"{where}.{key}", arch)
    elif not (isinstance(value, list) and all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in value)):
        raise _type_error(where, "a list of positive integers such as [400, 300] or {pi: [...], qf: [...]}", value)


def _check_activation(where: str, value: Any) -> None:
    if value not in ACTIVATIONS:
        raise ValueError(f"Hyperparameter `{where}` must be one of {sorted(ACTIVATIONS)}, got {value!r}")


def _check_str(where: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _type_error(where, "a string", value)


def _check_dict(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _type_error(where, "a mapping", value)


def _optional(check: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    """The check, with null (None) accepted too."""

    def check_optional(where: str, value: Any) -> None:
        if value is not None:
            check(where, value)

    return check_optional


_CHECKERS = {
    _INT: _check_int,
    _FLOAT: _check_float,
    _BOOL: _check_bool,
    _LR: _check_learning_rate,
    "train_freq": _check_train_freq,
    "normalize": _check_normalize,
    "net_arch": _check_net_arch,
    "activation": _check_activation,
    str: _check_str,
    dict: _check_dict,
    _OPTIONAL_INT: _optional(_check_int),
    _OPTIONAL_FLOAT: _optional(_check_float),
    _OPTIONAL_STR: _optional(_check_str),
}


def _check_mapping(where: str, data: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key not in schema:
            raise ValueError(f"Unknown hyperparameter `{where}{key}`; known keys are: {', '.join(sorted(schema))}")
        _CHECKERS[schema[key]](f"{where}{key}", value)


def validate_hyperparameters(hyperparams: Mapping[str, Any]) -> None:
    """
    Check keys and value types of plain-data hyperparameters (values' ranges are checked by ``DDPGPlus``).

    :param hyperparams: The hyperparameters
    :raises ValueError: for an unknown key or value
    :raises TypeError: for a value of the wrong type
    """
    if not isinstance(hyperparams, Mapping):
        raise TypeError(f"Hyperparameters must be a mapping, got {type(hyperparams).__name__}")
    _check_mapping("", hyperparams, _SCHEMA)
    _check_mapping("policy_kwargs.", hyperparams.get("policy_kwargs", {}), _POLICY_KWARGS_SCHEMA)
    _check_mapping("replay_buffer_kwargs.", hyperparams.get("replay_buffer_kwargs", {}), _REPLAY_BUFFER_KWARGS_SCHEMA)
    if "policy" in hyperparams and hyperparams["policy"] not in POLICIES:
        raise ValueError(f"Hyperparameter `policy` must be one of {POLICIES}, got {hyperparams['policy']!r}")


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
    return bool(data) and all(isinstance(value, Mapping) for value in data.values()) and not set(data) & set(_SCHEMA)


def load_hyperparams(source: "str | os.PathLike[str] | Mapping[str, Any]", env_id: str | None = None) -> dict[str, Any]:
    """
    Read and validate plain-data hyperparameters.

    :param source: A YAML/JSON file path or a mapping
    :param env_id: For files keyed by environment id: the entry to use (``"default"`` when it is absent)
    :return: The validated hyperparameters (a new dict)
    """
    data = dict(source) if isinstance(source, Mapping) else _read_yaml(Path(source))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"Hyperparameters in {source} must be a mapping, got {type(data).__name__}")
    if _looks_keyed_by_env(data):
        if env_id is not None and env_id in data:
            data = data[env_id]
        elif "default" in data:
            data = data["default"]
        else:
            raise ValueError(f"No hyperparameters for {env_id!r} in {source}: it has {sorted(data)}")
    data = dict(data)
    validate_hyperparameters(data)
    return data


def _learning_rate(value: float | str) -> Any:
    if isinstance(value, str):
        return LinearSchedule(float(value[4:]), 0.0, 1.0)
    return float(value)


def to_constructor_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """
    Turn validated plain-data hyperparameters into keyword arguments of ``DDPGPlus(env=..., **kwargs)``.
    Runner keys (:data:`RUNNER_KEYS`) are dropped.

    :param hyperparams: Plain-data hyperparameters
    :return: Constructor keyword arguments (``policy`` included, "MlpPolicy" by default)
    """
    validate_hyperparameters(hyperparams)
    kwargs = {key: value for key, value in hyperparams.items() if key not in RUNNER_KEYS}
    kwargs.setdefault("policy", "MlpPolicy")
    for key in ("learning_rate", "actor_learning_rate", "critic_learning_rate"):
        if key in kwargs:
            kwargs[key] = _learning_rate(kwargs[key])
    int_keys = [key for key, kind in _SCHEMA.items() if kind == _INT and key not in RUNNER_KEYS]
    for key in int_keys:
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
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
        if isinstance(policy_kwargs.get("net_arch"), dict):
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

    :param hyperparams: Plain-data hyperparameters (validated first)
    :param path: Destination
    :param header: Optional comment lines written at the top (e.g. the command that produced them)
    """
    validate_hyperparameters(hyperparams)
    text = yaml.safe_dump(dict(hyperparams), sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
