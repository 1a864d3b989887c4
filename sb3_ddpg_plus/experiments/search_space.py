"""
The search space over DDPGPlus's knobs: the one definition behind ``python -m tuning`` and rl-zoo3's ``-optimize``
(``python -m sb3_ddpg_plus.zoo train --algo ddpg_plus -optimize``).

:func:`sample_hyperparams` returns the plain-data hyperparameters of :mod:`sb3_ddpg_plus.hyperparams`, so a trial, an
exported ``best.yml`` and a re-training use the same values. rl-zoo3 calls a sampler with its own signature and
rebuilds a trial with a converter (``--trial-id``): :func:`sample_ddpg_plus_params` and
:func:`convert_ddpg_plus_params` are those, around the same space. The zoo does not tell a sampler its budget, so
there the budget-bound knobs (``buffer_size``, ``learning_starts``) stay those of the zoo's hyperparameter file.

Parameter names and ranges are what stored trials mean. Changing one means bumping :data:`SEARCH_SPACE_VERSION`
(a tuning study records it and refuses workers of another version); a parameter added later gets a default in
:data:`PARAM_DEFAULTS`, the value that reproduces the older space, so trials of older studies are still rebuilt
(:func:`fixed_trial`). Versions: 1, the first; 2 adds ``prioritized`` (default ``None``, uniform replay).
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # optuna is needed to run a search, not to import this module
    import optuna

SEARCH_SPACE_VERSION = 2

NOISE_TYPES = ("none", "normal", "ornstein-uhlenbeck", "param", "param+normal")
NET_ARCHS: dict[str, list[int]] = {"tiny": [32, 32], "small": [64, 64], "medium": [256, 256], "big": [400, 300]}
#: Replay sampling of ``DDPGPlusReplayBuffer``: uniform (``None``), prioritised (``"per"``) or loss-adjusted (``"lap"``).
PRIORITIZED: tuple[str | None, ...] = (None, "per", "lap")
# TD3's published settings (Fujimoto et al. 2018), switched on and off together. The number of critics is a policy
# option (as in SB3's TD3), so it sits in policy_kwargs.
TD3_TRICKS: dict[str, Any] = {
    "policy_delay": 2,
    "target_policy_noise": 0.2,
    "target_noise_clip": 0.5,
    "policy_kwargs": {"n_critics": 2},
}
DDPG_PLAIN: dict[str, Any] = {
    "policy_delay": 1,
    "target_policy_noise": 0.0,
    "target_noise_clip": 0.0,
    "policy_kwargs": {"n_critics": 1},
}
#: Parameters added after version 1, with the value that reproduces the space before them.
PARAM_DEFAULTS: dict[str, Any] = {"prioritized": None}

_BUFFER_SIZES = (10_000, 50_000, 200_000, 1_000_000)
_LEARNING_STARTS = (100, 500, 1_000, 5_000, 10_000, 20_000)
_TRAIN_FREQS = (1, 4, 16, 64)
_UPDATES_PER_STEP = (0.5, 1.0, 2.0)


def buffer_size_choices(budget: int) -> list[int]:
    """
    Buffer sizes worth trying: those below the budget, plus the smallest one that holds the whole run
    (larger buffers behave identically and only cost memory).

    :param budget: Training timesteps per run
    :return: Candidate buffer sizes
    """
    below = [size for size in _BUFFER_SIZES if size < budget]
    holding = [size for size in _BUFFER_SIZES if size >= budget]
    return below + holding[:1] if holding else below


def learning_starts_choices(budget: int) -> list[int]:
    """
    Warm-up lengths worth trying: at most a quarter of the budget, so a trial always learns for most of its run.

    :param budget: Training timesteps per run
    :return: Candidate ``learning_starts`` values (always at least one)
    """
    return [steps for steps in _LEARNING_STARTS if steps <= budget // 4] or [_LEARNING_STARTS[0]]


def sample_hyperparams(
    trial: "optuna.trial.BaseTrial", budget: int | None, net_archs: Sequence[str] | None = None
) -> dict[str, Any]:
    """
    Sample one configuration.

    Noise sigmas are sampled only for the noise type that uses them, with a range per type: an OU sigma is not a
    Gaussian sigma (with SB3's ``dt=0.01`` OU is a slow random walk, see ``sb3_ddpg_plus.noise``). ``"none"`` yields
    ``action_noise: {type: none}`` and no ``param_noise`` key, i.e. really no exploration noise (rl-zoo3's own
    samplers keep the file's noise in their "None" arm).

    :param trial: Optuna trial (a ``FixedTrial`` re-creates a configuration from its params, see :func:`fixed_trial`)
    :param budget: Training timesteps per run; bounds ``buffer_size`` and ``learning_starts`` (fixed per study, so
        the distributions are the same for every trial). ``None`` (rl-zoo3, which does not say): those two are not
        sampled
    :param net_archs: Names of :data:`NET_ARCHS` to choose from (default: all); small machines can leave out the
        big ones
    :return: Plain-data hyperparameters accepted by :func:`sb3_ddpg_plus.hyperparams.load_hyperparams`
    """
    gamma = 1.0 - trial.suggest_float("one_minus_gamma", 0.002, 0.08, log=True)
    actor_lr = trial.suggest_float("actor_learning_rate", 1e-5, 3e-3, log=True)
    critic_lr = trial.suggest_float("critic_learning_rate", 1e-5, 3e-3, log=True)
    tau = trial.suggest_float("tau", 1e-3, 0.08, log=True)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    budget_bound: dict[str, Any] = {}
    if budget is not None:
        budget_bound["buffer_size"] = trial.suggest_categorical("buffer_size", buffer_size_choices(budget))
        budget_bound["learning_starts"] = trial.suggest_categorical("learning_starts", learning_starts_choices(budget))
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
    prioritized = trial.suggest_categorical("prioritized", list(PRIORITIZED))
    tricks = TD3_TRICKS if td3_tricks else DDPG_PLAIN

    hyperparams: dict[str, Any] = {
        "policy": "MlpPolicy",
        "gamma": gamma,
        "actor_learning_rate": actor_lr,
        "critic_learning_rate": critic_lr,
        "tau": tau,
        "batch_size": batch_size,
        **budget_bound,
        "train_freq": train_freq,
        "gradient_steps": max(1, round(train_freq * updates_per_step)),
        "n_steps": n_steps,
        "action_noise": action_noise,
        **{key: value for key, value in tricks.items() if key != "policy_kwargs"},
        "policy_kwargs": {
            **tricks["policy_kwargs"],
            "net_arch": list(NET_ARCHS[net_arch]),
            # Parameter noise perturbs the actor's weights; layer norm keeps the perturbation's effect comparable
            # across layers (Plappert et al. 2018), so the actor always gets it when parameter noise is on.
            "actor_layer_norm": bool(layer_norm or param_noise is not None),
            "critic_layer_norm": bool(layer_norm),
        },
    }
    if param_noise is not None:
        hyperparams["param_noise"] = param_noise
    if prioritized is not None:
        # Uniform replay (None) leaves the key out, so version-1 configurations stay exactly what they were.
        hyperparams["replay_buffer_kwargs"] = {"prioritized": prioritized}
    return hyperparams


def fixed_trial(params: Mapping[str, Any]) -> "optuna.trial.FixedTrial":
    """
    A ``FixedTrial`` that re-creates a configuration from a trial's params, including trials of older search-space
    versions (parameters added since then take their :data:`PARAM_DEFAULTS`).

    :param params: ``trial.params`` (or an enqueued configuration)
    :return: The fixed trial, for :func:`sample_hyperparams`
    """
    import optuna

    return optuna.trial.FixedTrial({**PARAM_DEFAULTS, **params})


def hyperparams_to_zoo_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """
    Constructor keyword arguments that rl-zoo3 merges over its hyperparameter file. The policy stays the file's, and
    no parameter noise is an explicit ``None``, so that "none" overrides a file's ``param_noise`` too.

    :param hyperparams: From :func:`sample_hyperparams`
    :return: ``DDPGPlus`` keyword arguments (noises as plain data: ``DDPGPlus`` builds them)
    """
    from sb3_ddpg_plus.hyperparams import to_constructor_kwargs

    kwargs = to_constructor_kwargs(hyperparams)
    kwargs.pop("policy")
    kwargs.setdefault("param_noise", None)
    return kwargs


def sample_ddpg_plus_params(
    trial: "optuna.Trial", n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """
    rl-zoo3's sampler (``HYPERPARAMS_SAMPLER["ddpg_plus"]``, ``-optimize``): :func:`sample_hyperparams` without a
    budget.

    :param trial: The Optuna trial
    :param n_actions: Action dimension (unused: noises are built from plain data)
    :param n_envs: Number of environments (unused)
    :param additional_args: Zoo extras (unused)
    :return: ``DDPGPlus`` keyword arguments
    """
    return hyperparams_to_zoo_kwargs(sample_hyperparams(trial, budget=None))


def convert_ddpg_plus_params(params: dict[str, Any]) -> dict[str, Any]:
    """
    rl-zoo3's converter (``HYPERPARAMS_CONVERTER["ddpg_plus"]``, ``--trial-id``): the keyword arguments of a trial
    from its params, as :func:`sample_ddpg_plus_params` made them.

    :param params: ``trial.params``
    :return: ``DDPGPlus`` keyword arguments
    """
    # Params of a tuning study also hold its budget-bound knobs, which a zoo trial does not sample: they are ignored.
    return hyperparams_to_zoo_kwargs(sample_hyperparams(fixed_trial(params), budget=None))
