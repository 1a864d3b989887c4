"""
rl-zoo3 integration: ``python -m sb3_ddpg_plus.zoo train --algo ddpg_plus --env Pendulum-v1 ...`` (and ``enjoy``).

rl-zoo3 has no plugin entry point and checks ``--algo`` against its ``ALGOS`` dict before importing anything else,
so this module registers DDPGPlus (algorithm, Optuna sampler and converter) in the zoo's shared dicts and then runs
the zoo's own ``train()`` or ``enjoy()`` (the route the zoo documents for SBX). Without ``--conf-file``, the package's
default hyperparameters (``sb3_ddpg_plus/hyperparams/ddpg_plus.yml``) are used. ``--gym-packages pybullet_envs_gymnasium``
registers the PyBullet tasks.
"""

import sys
from pathlib import Path
from typing import Any

from sb3_ddpg_plus.ddpg_plus import DDPGPlus

ALGO_NAME = "ddpg_plus"
DEFAULT_HYPERPARAMS = Path(__file__).parent / "hyperparams" / "ddpg_plus.yml"
NET_ARCHS = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}
NOISE_TYPES = ("none", "normal", "ornstein-uhlenbeck", "param", "param+normal")


def convert_ddpg_plus_params(params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn a trial's flat parameters (as sampled by :func:`sample_ddpg_plus_params`) into DDPGPlus keyword arguments.
    Used by the zoo for ``--trial-id``. "none" noise means no noise at all (the zoo's own sampler keeps the yml's).

    :param params: ``trial.params``
    :return: Constructor keyword arguments (plain data for the noises)
    """
    hyperparams: dict[str, Any] = {
        "gamma": 1 - params["one_minus_gamma"],
        "actor_learning_rate": params["actor_learning_rate"],
        "critic_learning_rate": params["critic_learning_rate"],
        "batch_size": 2 ** params["batch_size_pow"],
        "tau": params["tau"],
        "train_freq": params["train_freq"],
        "gradient_steps": params["train_freq"],  # update-to-data ratio of 1 (n_envs=1), as the zoo does
        "n_steps": params["n_steps"],
        "policy_kwargs": {
            "net_arch": NET_ARCHS[params["net_arch"]],
            "actor_layer_norm": params["layer_norm"],
            "critic_layer_norm": params["layer_norm"],
        },
        "action_noise": {"type": "none"},
        "param_noise": None,
    }
    noise_type = params["noise_type"]
    if noise_type in ("normal", "param+normal"):
        hyperparams["action_noise"] = {"type": "normal", "sigma": params["noise_std"]}
    elif noise_type == "ornstein-uhlenbeck":
        hyperparams["action_noise"] = {"type": "ornstein-uhlenbeck", "sigma": params["ou_sigma"]}
    if noise_type.startswith("param"):
        std = params["param_noise_std"]
        hyperparams["param_noise"] = {"initial_stddev": std, "desired_action_stddev": std}
    if params.get("td3_tricks", False):
        hyperparams.update(n_critics=2, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5)
    return hyperparams


def sample_ddpg_plus_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
    """
    Optuna sampler with rl-zoo3's signature (``-optimize``), over DDPGPlus's knobs. Sigma ranges differ per noise type
    (an OU sigma is not a Gaussian sigma).

    :param trial: The Optuna trial
    :param n_actions: Action dimension (unused: noises are built from plain data)
    :param n_envs: Number of environments (unused)
    :param additional_args: Zoo extras (unused)
    :return: Constructor keyword arguments
    """
    trial.suggest_float("one_minus_gamma", 1e-4, 0.05, log=True)
    trial.suggest_float("actor_learning_rate", 1e-5, 2e-3, log=True)
    trial.suggest_float("critic_learning_rate", 1e-5, 2e-3, log=True)
    trial.suggest_int("batch_size_pow", 5, 9)
    trial.suggest_float("tau", 1e-3, 0.05, log=True)
    trial.suggest_categorical("train_freq", [1, 4, 8])
    trial.suggest_categorical("n_steps", [1, 3])
    trial.suggest_categorical("net_arch", list(NET_ARCHS))
    trial.suggest_categorical("layer_norm", [False, True])
    trial.suggest_categorical("td3_tricks", [False, True])
    noise_type = trial.suggest_categorical("noise_type", list(NOISE_TYPES))
    if noise_type in ("normal", "param+normal"):
        trial.suggest_float("noise_std", 0.02, 0.5)
    elif noise_type == "ornstein-uhlenbeck":
        trial.suggest_float("ou_sigma", 0.05, 1.0)
    if noise_type.startswith("param"):
        trial.suggest_float("param_noise_std", 0.02, 0.5, log=True)
    return convert_ddpg_plus_params(trial.params)


def register() -> None:
    """Register DDPGPlus in rl-zoo3's shared dicts (algorithm, sampler, converter)."""
    import rl_zoo3
    import rl_zoo3.hyperparams_opt as hyperparams_opt

    rl_zoo3.ALGOS[ALGO_NAME] = DDPGPlus
    hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_ddpg_plus_params
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_ddpg_plus_params


def _with_default_conf_file(argv: list[str]) -> list[str]:
    if any(arg in ("-conf", "--conf-file") or arg.startswith("--conf-file=") for arg in argv):
        return argv
    return [*argv, "--conf-file", str(DEFAULT_HYPERPARAMS)]


def main(argv: list[str] | None = None) -> None:
    """
    :param argv: ``["train" | "enjoy", <rl-zoo3 arguments>...]`` (``sys.argv[1:]`` by default)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "enjoy"):
        print("usage: python -m sb3_ddpg_plus.zoo {train,enjoy} --algo ddpg_plus --env ENV [rl-zoo3 options]", file=sys.stderr)
        print("Runs rl-zoo3's train/enjoy with DDPGPlus registered; see `python -m rl_zoo3.train --help`.", file=sys.stderr)
        raise SystemExit(2)
    command, rest = argv[0], argv[1:]
    register()
    if command == "train":
        import rl_zoo3.train

        sys.argv = ["rl_zoo3.train", *_with_default_conf_file(rest)]
        rl_zoo3.train.train()
    else:
        import rl_zoo3.enjoy

        sys.argv = ["rl_zoo3.enjoy", *rest]
        rl_zoo3.enjoy.enjoy()


if __name__ == "__main__":
    main()
