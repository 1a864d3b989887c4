"""
The search space over ``DDPGPlus`` knobs. Sampling returns the plain-data hyperparameter dict of
``sb3_ddpg_plus.hyperparams`` directly, so a trial, ``best.yml`` and a re-training all use the same values.

Changing a range or a name changes what a study's trials mean: bump :data:`SEARCH_SPACE_VERSION`, which a study
records, so an old study refuses workers that run the new space.
"""

from collections.abc import Sequence
from typing import Any

import optuna

SEARCH_SPACE_VERSION = 1

NOISE_TYPES = ("none", "normal", "ornstein-uhlenbeck", "param", "param+normal")
NET_ARCHS: dict[str, list[int]] = {"tiny": [32, 32], "small": [64, 64], "medium": [256, 256], "big": [400, 300]}
# TD3's published settings (Fujimoto et al. 2018), switched on and off together.
TD3_TRICKS = {"n_critics": 2, "policy_delay": 2, "target_policy_noise": 0.2, "target_noise_clip": 0.5}
DDPG_PLAIN = {"n_critics": 1, "policy_delay": 1, "target_policy_noise": 0.0, "target_noise_clip": 0.0}

_BUFFER_SIZES = (10_000, 50_000, 200_000, 1_000_000)
_LEARNING_STARTS = (100, 500, 1_000, 5_000, 10_000, 20_000)
_TRAIN_FREQS = (1, 4, 16, 64)
_UPDATES_PER_STEP = (0.5, 1.0, 2.0)


def buffer_size_choices(budget: int) -> list[int]:
    """
    Buffer sizes worth trying: those below the budget, plus the smallest one that holds the whole run
    (larger buffers behave identically and only cost memory).

    :param budget: training timesteps per run
    :return: candidate buffer sizes
    """
    below = [size for size in _BUFFER_SIZES if size < budget]
    holding = [size for size in _BUFFER_SIZES if size >= budget]
    return below + holding[:1] if holding else below


def learning_starts_choices(budget: int) -> list[int]:
    """
    Warm-up lengths worth trying: at most a quarter of the budget, so a trial always learns for most of its run.

    :param budget: training timesteps per run
    :return: candidate ``learning_starts`` values (always at least one)
    """
    return [steps for steps in _LEARNING_STARTS if steps <= budget // 4] or [_LEARNING_STARTS[0]]


def sample_hyperparams(trial: optuna.Trial, budget: int, net_archs: Sequence[str] | None = None) -> dict[str, Any]:
    """
    Sample one configuration.

    Noise sigmas are sampled only for the noise type that uses them, with a range per type: an OU sigma is not a
    Gaussian sigma (with SB3's ``dt=0.01`` OU is a slow random walk, see ``sb3_ddpg_plus.noise``). ``"none"`` yields
    ``action_noise: {type: none}`` and no ``param_noise`` key, i.e. really no exploration noise (rl-zoo3's "None"
    arm keeps the YAML's noise).

    :param trial: Optuna trial (a ``FixedTrial`` re-creates a configuration from its params)
    :param budget: training timesteps per run; bounds ``buffer_size`` and ``learning_starts`` (fixed per study, so
        the distributions are the same for every trial)
    :param net_archs: names of :data:`NET_ARCHS` to choose from (default: all); small machines can leave out the
        big ones
    :return: plain-data hyperparameters accepted by ``sb3_ddpg_plus.hyperparams.load_hyperparams``
    """
    gamma = 1.0 - trial.suggest_float("one_minus_gamma", 0.002, 0.08, log=True)
    actor_lr = trial.suggest_float("actor_learning_rate", 1e-5, 3e-3, log=True)
    critic_lr = trial.suggest_float("critic_learning_rate", 1e-5, 3e-3, log=True)
    tau = trial.suggest_float("tau", 1e-3, 0.08, log=True)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    buffer_size = trial.suggest_categorical("buffer_size", buffer_size_choices(budget))
    learning_starts = trial.suggest_categorical("learning_starts", learning_starts_choices(budget))
    train_freq = trial.suggest_categorical("train_freq", list(_TRAIN_FREQS))
    # Updates per environment step (gradient_steps / train_freq), so train_freq and the update ratio are tuned
    # independently; rl-zoo ties gradient_steps = train_freq.
    updates_per_step = trial.suggest_categorical("updates_per_step", list(_UPDATES_PER_STEP))
    net_arch = trial.suggest_categorical("net_arch", list(net_archs or NET_ARCHS))
    layer_norm = trial.suggest_categorical("layer_norm", [False, True])
    n_steps = trial.suggest_categorical("n_steps", [1, 3, 5])
    td3_tricks = trial.suggest_categorical("td3_tricks", [False, True])
    noise_type = trial.suggest_categorical("noise_type", list(NOISE_TYPES))

    action_noise: dict[str, Any] = {"type": "none"}
    param_noise: dict[str, Any] | None = None
    if noise_type in ("normal", "param+normal"):
        action_noise = {"type": "normal", "sigma": trial.suggest_float("normal_sigma", 0.02, 0.5, log=True)}
    elif noise_type == "ornstein-uhlenbeck":
        action_noise = {"type": "ornstein-uhlenbeck", "sigma": trial.suggest_float("ou_sigma", 0.05, 1.0, log=True)}
    if noise_type in ("param", "param+normal"):
        # desired_action_stddev is the target distance in the scaled [-1, 1] action space (Plappert et al. 2018).
        sigma = trial.suggest_float("param_sigma", 0.02, 0.5, log=True)
        param_noise = {"initial_stddev": sigma, "desired_action_stddev": sigma, "adoption_coefficient": 1.01}

    hyperparams: dict[str, Any] = {
        "policy": "MlpPolicy",
        "gamma": gamma,
        "actor_learning_rate": actor_lr,
        "critic_learning_rate": critic_lr,
        "tau": tau,
        "batch_size": batch_size,
        "buffer_size": buffer_size,
        "learning_starts": learning_starts,
        "train_freq": train_freq,
        "gradient_steps": max(1, round(train_freq * updates_per_step)),
        "n_steps": n_steps,
        "action_noise": action_noise,
        **(TD3_TRICKS if td3_tricks else DDPG_PLAIN),
        "policy_kwargs": {
            "net_arch": list(NET_ARCHS[net_arch]),
            # Parameter noise perturbs the actor's weights; layer norm keeps the perturbation's effect comparable
            # across layers (Plappert et al. 2018), so the actor always gets it when parameter noise is on.
            "actor_layer_norm": bool(layer_norm or param_noise is not None),
            "critic_layer_norm": bool(layer_norm),
        },
    }
    if param_noise is not None:
        hyperparams["param_noise"] = param_noise
    return hyperparams
