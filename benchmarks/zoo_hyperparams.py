"""
RL-Zoo (rl_zoo3 2.9.2) hyperparameters of DDPG and TD3, as plain data.

Copied from the zoo's ``hyperparams/ddpg.yml`` and ``td3.yml`` (identical for every env listed here) into the format
of ``sb3_ddpg_plus.hyperparams``: the zoo's ``noise_type``/``noise_std`` become an ``action_noise`` dict and its
``policy_kwargs`` string becomes a dict. Keys the zoo leaves out fall back to SB3's defaults (lr 1e-3, batch 256,
tau 0.005, buffer 1e6, learning_starts 100, gamma 0.99). A committed table rather than reading the installed files,
because those files hold Python expressions (``"dict(net_arch=[400, 300])"``) that we do not evaluate;
``tests/test_benchmarks.py`` checks this table against the installed files when rl_zoo3 is present.
"""

from __future__ import annotations

import copy
from typing import Any

_NORMAL_01 = {"type": "normal", "sigma": 0.1}
_BIG = {"net_arch": [400, 300]}

_PYBULLET = {
    "n_timesteps": 1_000_000,
    "policy": "MlpPolicy",
    "gamma": 0.98,
    "buffer_size": 200_000,
    "learning_starts": 10_000,
    "action_noise": _NORMAL_01,
    "gradient_steps": 1,
    "train_freq": 1,
    "batch_size": 256,
    "learning_rate": 7e-4,
    "policy_kwargs": _BIG,
}

#: Per env id; ``"default"`` is what the zoo uses for an env it does not list.
ZOO_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "default": {
        "n_timesteps": 1_000_000,
        "policy": "MlpPolicy",
        "train_freq": 1,
        "gradient_steps": 1,
        "action_noise": _NORMAL_01,
    },
    "MountainCarContinuous-v0": {
        "n_timesteps": 300_000,
        "policy": "MlpPolicy",
        "action_noise": {"type": "ornstein-uhlenbeck", "sigma": 0.5},
        "gradient_steps": 1,
        "train_freq": 1,
        "learning_rate": 1e-3,
        "batch_size": 256,
        "policy_kwargs": _BIG,
    },
    "Pendulum-v1": {
        "n_timesteps": 20_000,
        "policy": "MlpPolicy",
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "action_noise": _NORMAL_01,
        "gradient_steps": 1,
        "train_freq": 1,
        "learning_rate": 1e-3,
        "policy_kwargs": _BIG,
    },
    "LunarLanderContinuous-v3": {
        "n_timesteps": 300_000,
        "policy": "MlpPolicy",
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "action_noise": _NORMAL_01,
        "gradient_steps": 1,
        "train_freq": 1,
        "learning_rate": 1e-3,
        "policy_kwargs": _BIG,
    },
    "HalfCheetahBulletEnv-v0": _PYBULLET,
    "AntBulletEnv-v0": _PYBULLET,
    "HopperBulletEnv-v0": _PYBULLET,
    "Walker2DBulletEnv-v0": _PYBULLET,
    "ReacherBulletEnv-v0": {**_PYBULLET, "n_timesteps": 300_000},
}

#: Published reference results (single trained agent, rl-zoo ``benchmark.md``; SB3 docs, 1M steps, PyBullet: DDPG
#: 6 seeds, TD3 3 seeds), quoted in the report next to ours. Keys: env -> label -> text.
REFERENCE_RESULTS: dict[str, dict[str, str]] = {
    "Pendulum-v1": {"zoo DDPG (1 agent, 20k steps)": "-152 ± 94", "zoo TD3 (1 agent, 20k steps)": "-152 ± 90"},
    "MountainCarContinuous-v0": {
        "zoo DDPG (1 agent, 300k steps)": "93.5 ± 0.05",
        "zoo TD3 (1 agent, 300k steps)": "93.5 ± 0.08",
    },
    "HalfCheetahBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "2272 ± 69",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2774 ± 35",
        "zoo DDPG (1 agent, 1M steps)": "2078 ± 208",
    },
    "AntBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "1651 ± 407",
        "SB3 docs TD3 (3 seeds, 1M steps)": "3305 ± 43",
        "zoo DDPG (1 agent, 1M steps)": "2399 ± 75",
    },
    "HopperBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "1201 ± 211",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2429 ± 126",
        "zoo DDPG (1 agent, 1M steps)": "1157 ± 449",
    },
    "Walker2DBulletEnv-v0": {
        "SB3 docs DDPG (6 seeds, 1M steps)": "882 ± 186",
        "SB3 docs TD3 (3 seeds, 1M steps)": "2063 ± 185",
        "zoo DDPG (1 agent, 1M steps)": "1388 ± 737",
    },
}


def zoo_hyperparams(env_id: str) -> dict[str, Any]:
    """
    :param env_id: Environment id.
    :return: A deep copy of the zoo's DDPG/TD3 hyperparameters for ``env_id`` (the zoo's ``default`` entry if the
        zoo does not list it).
    """
    return copy.deepcopy(ZOO_HYPERPARAMS.get(env_id, ZOO_HYPERPARAMS["default"]))
