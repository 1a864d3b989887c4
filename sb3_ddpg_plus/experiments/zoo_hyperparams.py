"""
rl-zoo3's DDPG and TD3 hyperparameters, read from the files rl-zoo3 installs (``rl_zoo3/hyperparams/ddpg.yml`` and
``td3.yml``) and turned into the plain data of :mod:`sb3_ddpg_plus.hyperparams`. The benchmarks start every algorithm
from them, so the comparison runs at the zoo's own settings, whatever zoo version is installed.

The files are read with ``yaml.safe_load``. rl-zoo3 ``eval``-s some of their strings; here they are parsed as data:

- ``noise_type``/``noise_std`` become an ``action_noise`` mapping (``{type: normal, sigma: 0.1}``);
- ``policy_kwargs`` (and ``replay_buffer_kwargs``, ``normalize``) written as Python, e.g.
  ``"dict(net_arch=[400, 300])"``, go through :func:`parse_kwargs`, which accepts only ``dict(key=literal, ...)`` or
  a dict literal, each value read by ``ast.literal_eval``; anything else (a name such as ``nn.ReLU``, a call, an
  attribute) is refused with an error naming it.

DDPGPlus's own defaults (those of ``python -m sb3_ddpg_plus.zoo train``) are derived from the same file:
:func:`ddpg_plus_hyperparams` is the zoo's ``ddpg.yml`` with our differences, and only those, merged in from
``sb3_ddpg_plus/hyperparams/ddpg_plus.yml`` (:data:`OVERRIDES_FILE`); a new rl-zoo3 release is followed without
copying its values by hand.
"""

import ast
import copy
import functools
import importlib.util
from pathlib import Path
from typing import Any

import yaml

#: The zoo's files per algorithm.
ZOO_FILES = {"ddpg": "ddpg.yml", "td3": "td3.yml"}
#: Keys whose values rl-zoo3 writes as Python source.
_PYTHON_KEYS = ("policy_kwargs", "replay_buffer_kwargs", "normalize")
EXTRA_HINT = 'pip install "sb3_ddpg_plus[zoo]"'
#: Our differences from rl-zoo3's ``ddpg.yml`` (see :func:`ddpg_plus_hyperparams`).
OVERRIDES_FILE = Path(__file__).resolve().parent.parent / "hyperparams" / "ddpg_plus.yml"
#: Values that an override replaces whole: an action noise is one choice (``{type: normal, sigma: 0.1}`` and an OU
#: noise share no parameter), where other mappings (``policy_kwargs``, ``param_noise``) are merged key by key.
REPLACED_WHOLE = ("action_noise",)


def zoo_hyperparams_dir() -> Path:
    """
    :return: The ``hyperparams`` folder of the installed rl-zoo3 (found without importing rl-zoo3)
    """
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        message = f"the zoo's hyperparameters are read from rl-zoo3's files, and rl-zoo3 is not installed: {EXTRA_HINT}"
        raise ModuleNotFoundError(message, name="rl_zoo3")
    return Path(next(iter(spec.submodule_search_locations))) / "hyperparams"


def parse_kwargs(text: str) -> dict[str, Any]:
    """
    Parse a keyword-argument string of a zoo file without evaluating it.

    :param text: ``"dict(net_arch=[400, 300])"`` or ``"{'net_arch': [400, 300]}"``
    :return: The mapping
    :raises ValueError: The text is anything else, or a value is not a Python literal
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"not a keyword-argument mapping: {text!r}") from error
    items: list[tuple[object, ast.expr]]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        items = [(keyword.arg, keyword.value) for keyword in node.keywords]
    elif isinstance(node, ast.Dict) and all(isinstance(key, ast.Constant) for key in node.keys):
        items = [(key.value, value) for key, value in zip(node.keys, node.values, strict=True)]  # type: ignore[union-attr]
    else:
        raise ValueError(f"only dict(key=literal, ...) or a dict literal is read, got {text!r}")
    parsed: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str):  # `**mapping` in a call, a number as a key
            raise ValueError(f"only string keys are read, got {key!r} in {text!r}")
        try:
            parsed[key] = ast.literal_eval(value)
        except ValueError as error:
            raise ValueError(f"{key}={ast.unparse(value)} in {text!r} is not a literal (it is not evaluated)") from error
    return parsed


def to_plain(zoo_entry: dict[str, Any]) -> dict[str, Any]:
    """
    One entry of a zoo file in the plain-data format of :mod:`sb3_ddpg_plus.hyperparams`.

    :param zoo_entry: The entry (after YAML merge keys)
    :return: Plain-data hyperparameters (keys the zoo leaves out keep SB3's defaults)
    """
    plain = copy.deepcopy(zoo_entry)
    noise_type = plain.pop("noise_type", None)
    noise_std = plain.pop("noise_std", None)
    if noise_type is not None:
        plain["action_noise"] = {"type": str(noise_type).strip(), "sigma": noise_std}
    for key in _PYTHON_KEYS:
        if isinstance(plain.get(key), str):
            plain[key] = parse_kwargs(plain[key])
    if "n_timesteps" in plain:
        plain["n_timesteps"] = int(plain["n_timesteps"])
    return plain


@functools.cache
def _read(algo: str) -> dict[str, Any]:
    if algo not in ZOO_FILES:
        raise ValueError(f"rl-zoo3 hyperparameters are read for {sorted(ZOO_FILES)}, not {algo!r}")
    path = zoo_hyperparams_dir() / ZOO_FILES[algo]
    with open(path, encoding="utf-8") as file:
        data = yaml.safe_load(file)
    return {env_id: to_plain(entry) for env_id, entry in data.items()}


def zoo_hyperparams(env_id: str, algo: str = "ddpg") -> dict[str, Any]:
    """
    :param env_id: Environment id
    :param algo: ``"ddpg"`` or ``"td3"``: the zoo file to read
    :return: A copy of the zoo's hyperparameters of ``algo`` for ``env_id`` (its ``default`` entry when the zoo does
        not list the env)
    """
    table = _read(algo)
    return copy.deepcopy(table.get(env_id, table["default"]))


def merge_hyperparams(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """
    :param base: Plain-data hyperparameters
    :param overrides: Values to change: mappings (``policy_kwargs``) are merged key by key, except
        :data:`REPLACED_WHOLE`; other values are replaced
    :return: A new merged dict (neither argument is changed)
    """
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in REPLACED_WHOLE:
            merged[key] = merge_hyperparams(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_overrides(path: "str | Path" = OVERRIDES_FILE) -> dict[str, dict[str, Any]]:
    """
    :param path: A YAML file of differences from the zoo's ``ddpg.yml``, one mapping per environment id (``default``
        changes every environment; an empty file changes nothing)
    :return: The differences per environment id
    :raises ValueError: the file is not a mapping of mappings
    """
    with open(path, encoding="utf-8") as file:
        data = yaml.safe_load(file) or {}
    if not isinstance(data, dict) or not all(isinstance(entry, dict) for entry in data.values()):
        raise ValueError(f"{path} must map environment ids to mappings of hyperparameters")
    return data


def ddpg_plus_hyperparams(overrides: "str | Path" = OVERRIDES_FILE) -> dict[str, dict[str, Any]]:
    """
    DDPGPlus's default hyperparameters, per environment id: rl-zoo3's ``ddpg.yml`` as plain data (:func:`to_plain`)
    with our differences merged in (:func:`merge_hyperparams`). The ``default`` entry of the differences applies to
    every environment; an environment that only the differences list starts from the zoo's ``default``.

    Read it as any file keyed by environment: ``load_hyperparams(ddpg_plus_hyperparams(), env_id)``.

    :param overrides: The file of differences (:func:`read_overrides`)
    :return: A new table ``{env_id: hyperparameters}``, with a ``default`` entry
    :raises ModuleNotFoundError: rl-zoo3 is not installed (the message names the extra that installs it)
    """
    zoo = _read("ddpg")
    ours = read_overrides(overrides)
    common = ours.get("default", {})
    table = {}
    for env_id in [*zoo, *(env_id for env_id in ours if env_id not in zoo)]:
        entry = merge_hyperparams(zoo.get(env_id, zoo["default"]), common)
        table[env_id] = merge_hyperparams(entry, ours.get(env_id, {}))
    return table
