"""
Registry of the algorithms the benchmark compares, and how each one is built for an environment.

Every algorithm starts from the RL-Zoo's hyperparameters for the environment, read from the files rl-zoo3 installs
(:mod:`sb3_ddpg_plus.experiments.zoo_hyperparams`: ``td3.yml`` for SB3 TD3, ``ddpg.yml`` for the others), so that
the comparison is at identical settings; a DDPGPlus variant changes only what its name says. ``ddpg_plus`` is
therefore the one-line swap: DDPGPlus with exactly the zoo's DDPG hyperparameters, every DDPGPlus-specific option at
its default. Models are built from the same plain data: :func:`sb3_ddpg_plus.hyperparams.make_model` for DDPGPlus,
:func:`sb3_kwargs` (the same conversion, plus SB3's noise objects) for upstream SB3.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise

from sb3_ddpg_plus.experiments.search_space import TD3_TRICKS
from sb3_ddpg_plus.experiments.zoo_hyperparams import merge_hyperparams, zoo_hyperparams

#: Where tuned hyperparameters live (one ``<ENV>.yml`` per environment, written by ``tuning/``).
TUNED_DIR = Path(__file__).resolve().parent.parent / "tuning" / "hyperparams"

#: OU sigma per env: MountainCar uses the zoo's 0.5; elsewhere 0.1, the scale of the zoo's Gaussian noise.
OU_SIGMA = {"MountainCarContinuous-v0": 0.5, "default": 0.1}

#: Adaptive parameter noise per env (Plappert et al. 2018 use a desired action stddev of 0.2; MountainCar needs larger
#: perturbations to leave the do-nothing optimum: see ``benchmarks/results/mountaincar_exploration.md``).
PARAM_NOISE = {
    "MountainCarContinuous-v0": {"initial_stddev": 0.5, "desired_action_stddev": 0.5, "adoption_coefficient": 1.01},
    "default": {"initial_stddev": 0.2, "desired_action_stddev": 0.2, "adoption_coefficient": 1.01},
}


def _per_env(table: dict[str, Any], env_id: str) -> Any:
    return copy.deepcopy(table.get(env_id, table["default"]))


@dataclass(frozen=True)
class AlgoSpec:
    """
    One benchmarked algorithm.

    :param name: Registry key (used in file names and tables).
    :param library: ``"sb3_ddpg"``, ``"sb3_td3"`` or ``"ddpg_plus"``.
    :param description: One line for the report.
    :param overrides: Maps an env id to the hyperparameters changed relative to the zoo's.
    :param tuned: Use ``tuning/hyperparams/<ENV>.yml`` instead of the zoo's hyperparameters.
    :param recommended: Use the package's recommended configuration (:mod:`sb3_ddpg_plus.recommended`, the same for
        every env) instead of the zoo's hyperparameters.
    """

    name: str
    library: str
    description: str
    overrides: Callable[[str], dict[str, Any]] = field(default=lambda env_id: {})
    tuned: bool = False
    recommended: bool = False


ALGOS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in (
        AlgoSpec("sb3_ddpg", "sb3_ddpg", "upstream SB3 DDPG, zoo hyperparameters"),
        AlgoSpec("sb3_td3", "sb3_td3", "upstream SB3 TD3, zoo hyperparameters"),
        AlgoSpec("ddpg_plus", "ddpg_plus", "DDPGPlus, zoo DDPG hyperparameters (the drop-in swap)"),
        AlgoSpec(
            "ddpg_plus_ou",
            "ddpg_plus",
            "DDPGPlus, Ornstein-Uhlenbeck action noise (sigma 0.5 on MountainCar, else 0.1)",
            lambda env_id: {"action_noise": {"type": "ornstein-uhlenbeck", "sigma": _per_env(OU_SIGMA, env_id)}},
        ),
        AlgoSpec(
            "ddpg_plus_param",
            "ddpg_plus",
            "DDPGPlus, adaptive parameter noise only (no action noise; actor layer norm)",
            lambda env_id: {"action_noise": {"type": "none"}, "param_noise": _per_env(PARAM_NOISE, env_id)},
        ),
        AlgoSpec(
            "ddpg_plus_ou_param",
            "ddpg_plus",
            "DDPGPlus, adaptive parameter noise plus the OU action noise of ddpg_plus_ou",
            lambda env_id: {
                "action_noise": {"type": "ornstein-uhlenbeck", "sigma": _per_env(OU_SIGMA, env_id)},
                "param_noise": _per_env(PARAM_NOISE, env_id),
            },
        ),
        AlgoSpec(
            "ddpg_plus_nstep",
            "ddpg_plus",
            "DDPGPlus, 5-step TD targets (n_steps=5): a found reward reaches earlier states 5x faster",
            lambda env_id: {"n_steps": 5},
        ),
        AlgoSpec(
            "ddpg_plus_ln_critic",
            "ddpg_plus",
            "DDPGPlus, layer norm in the critic",
            lambda env_id: {"policy_kwargs": {"critic_layer_norm": True}},
        ),
        AlgoSpec(
            "ddpg_plus_td3",
            "ddpg_plus",
            "DDPGPlus with TD3's tricks (2 critics, delay 2, target smoothing)",
            lambda env_id: dict(TD3_TRICKS),
        ),
        AlgoSpec(
            "ddpg_plus_tuned", "ddpg_plus", "DDPGPlus, tuned hyperparameters from tuning/hyperparams/<ENV>.yml", tuned=True
        ),
        AlgoSpec(
            "ddpg_plus_recommended",
            "ddpg_plus",
            "DDPGPlus, the recommended configuration (sb3_ddpg_plus/hyperparams/recommended.yml, one for every env)",
            recommended=True,
        ),
        # Prioritised replay (issue 15): the same settings as the uniform variant they extend
        *(
            AlgoSpec(
                f"{base}_{kind}",
                "ddpg_plus",
                f"{description}, {label}",
                lambda env_id, extra=extra, kind=kind: {**extra, "replay_buffer_kwargs": {"prioritized": kind}},
            )
            for kind, label in (("per", "prioritized replay (PER)"), ("lap", "loss-adjusted prioritized replay (LAP)"))
            for base, description, extra in (
                ("ddpg_plus", "DDPGPlus, zoo DDPG hyperparameters", {}),
                ("ddpg_plus_nstep", "DDPGPlus, 5-step TD targets", {"n_steps": 5}),
                ("ddpg_plus_td3", "DDPGPlus with TD3's tricks", dict(TD3_TRICKS)),
            )
        ),
    )
}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """
    :param base: Hyperparameters.
    :param overrides: Values to change; nested dicts (``policy_kwargs``) are merged key by key, other values (and
        ``action_noise``) replaced: the merge of the package's zoo defaults
        (:func:`sb3_ddpg_plus.experiments.zoo_hyperparams.merge_hyperparams`).
    :return: A new merged dict.
    """
    return merge_hyperparams(base, overrides)


def tuned_path(env_id: str, tuned_dir: Path = TUNED_DIR) -> Path:
    """
    :param env_id: Environment id.
    :param tuned_dir: Folder of tuned hyperparameter files.
    :return: Path of the tuned hyperparameters of ``env_id`` (it may not exist).
    """
    return tuned_dir / f"{env_id}.yml"


def get_algo(name: str) -> AlgoSpec:
    """
    :param name: Registry key.
    :return: Its spec.
    """
    try:
        return ALGOS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGOS)}") from None


def hyperparams_for(name: str, env_id: str, budget: int | None = None, tuned_dir: Path = TUNED_DIR) -> dict[str, Any] | None:
    """
    Plain-data hyperparameters of an algorithm on an environment.

    :param name: Registry key.
    :param env_id: Environment id.
    :param budget: Env steps of training (replaces ``n_timesteps``, so that every algorithm gets the same budget).
    :param tuned_dir: Folder of tuned hyperparameter files.
    :return: The hyperparameters, or ``None`` when the algorithm is not available for this env (no tuned file).
    """
    spec = get_algo(name)
    if spec.recommended:
        from sb3_ddpg_plus.recommended import recommended_hyperparams

        try:
            hyperparams = recommended_hyperparams()
        except FileNotFoundError:
            return None
    elif spec.tuned:
        path = tuned_path(env_id, tuned_dir)
        if not path.exists():
            return None
        from sb3_ddpg_plus.hyperparams import load_hyperparams

        hyperparams = dict(load_hyperparams(path, env_id))
    else:
        zoo_file = "td3" if spec.library == "sb3_td3" else "ddpg"
        hyperparams = deep_merge(zoo_hyperparams(env_id, zoo_file), spec.overrides(env_id))
    if budget is not None:
        hyperparams["n_timesteps"] = int(budget)
    return hyperparams


def make_action_noise(noise: dict[str, Any] | None, action_dim: int) -> ActionNoise | None:
    """
    Build an SB3 action noise object from the plain form (for upstream SB3, which only takes objects).

    :param noise: ``{"type": "normal"|"ornstein-uhlenbeck"|"none", "sigma": float, ["theta", "dt"]}`` or ``None``.
    :param action_dim: Dimension of the action space.
    :return: The noise object, or ``None``.
    """
    if noise is None or noise.get("type", "none") in ("none", None):
        return None
    unknown = set(noise) - {"type", "sigma", "theta", "dt"}
    if unknown:
        raise ValueError(f"upstream SB3 noise does not support {sorted(unknown)} (in {noise})")
    mean, sigma = np.zeros(action_dim), float(noise["sigma"]) * np.ones(action_dim)
    if noise["type"] == "normal":
        return NormalActionNoise(mean, sigma)
    if noise["type"] == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean, sigma, theta=noise.get("theta", 0.15), dt=noise.get("dt", 1e-2))
    raise ValueError(f"unknown action noise type {noise['type']!r}")


def sb3_kwargs(hyperparams: dict[str, Any], action_dim: int) -> dict[str, Any]:
    """
    Constructor kwargs of upstream SB3 ``DDPG``/``TD3`` from plain hyperparameters: the package's conversion
    (:func:`sb3_ddpg_plus.hyperparams.to_constructor_kwargs`: schedules, activations, runner keys dropped), with the
    noise built as SB3's own objects (upstream SB3 takes no plain data).

    :param hyperparams: Plain hyperparameters (zoo keys).
    :param action_dim: Dimension of the action space (for the noise).
    :return: Keyword arguments.
    """
    from sb3_ddpg_plus.hyperparams import to_constructor_kwargs

    kwargs = to_constructor_kwargs(copy.deepcopy(hyperparams))
    kwargs["action_noise"] = make_action_noise(kwargs.pop("action_noise", None), action_dim)
    return kwargs


def make_model(name: str, env: gym.Env, hyperparams: dict[str, Any], seed: int, verbose: int = 0) -> Any:
    """
    Build the model of a registered algorithm.

    :param name: Registry key.
    :param env: Training environment.
    :param hyperparams: Plain hyperparameters from :func:`hyperparams_for`.
    :param seed: Seed.
    :param verbose: SB3 verbosity.
    :return: The model (``DDPG``, ``TD3`` or ``DDPGPlus``), on the CPU.
    """
    spec = get_algo(name)
    common = dict(seed=seed, device="cpu", verbose=verbose)
    if spec.library == "ddpg_plus":
        from sb3_ddpg_plus.hyperparams import make_model as make_ddpg_plus

        return make_ddpg_plus(copy.deepcopy(hyperparams), env, **common)
    from stable_baselines3 import DDPG, TD3

    cls = TD3 if spec.library == "sb3_td3" else DDPG
    return cls(env=env, **sb3_kwargs(hyperparams, int(np.prod(env.action_space.shape))), **common)
