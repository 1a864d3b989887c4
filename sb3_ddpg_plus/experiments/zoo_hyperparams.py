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
