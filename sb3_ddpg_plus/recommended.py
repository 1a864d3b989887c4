"""
The recommended DDPGPlus configuration: one set of hyperparameters, tuned across tasks, for any continuous-control
(Box action space) environment.

``DDPGPlus()``'s own defaults stay SB3 DDPG's, so that the package is a drop-in; the recommended configuration is
what to start from on a new task when you want what this package adds. It lives as plain data in
``sb3_ddpg_plus/hyperparams/recommended.yml`` (its ``default`` section; no per-environment entries, since it is the
one configuration meant to generalise), written from a cross-task Optuna study of ``tuning/``, whose header says
which study, trial and budgets it comes from. In one line::

    model = DDPGPlus("MlpPolicy", env, **recommended_kwargs())

and from rl-zoo3, for any environment (the zoo reads a ``--conf-file`` that is a module name from the module's
``hyperparams``, and falls back to its ``default`` entry)::

    python -m sb3_ddpg_plus.zoo train --algo ddpg_plus --env ENV --conf-file sb3_ddpg_plus.recommended -n 100000
"""

from pathlib import Path
from typing import Any

#: The shipped file (rl-zoo3 format: a ``default`` section).
RECOMMENDED_FILE = Path(__file__).parent / "hyperparams" / "recommended.yml"


def _load(path: "str | Path | None") -> dict[str, Any]:
    """The validated ``default`` section of ``path`` (default: :data:`RECOMMENDED_FILE`), ``n_timesteps`` included."""
    from sb3_ddpg_plus.hyperparams import load_hyperparams

    path = Path(path) if path is not None else RECOMMENDED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no recommended configuration at {path} (reinstall sb3_ddpg_plus with its data files)")
    return load_hyperparams(path, "default")


def recommended_hyperparams(path: "str | Path | None" = None) -> dict[str, Any]:
    """
    :param path: Another file in the same format (default: :data:`RECOMMENDED_FILE`)
    :return: The plain-data hyperparameters of the ``default`` section (validated), without the study's
        ``n_timesteps``: the budget is the user's
    :raises FileNotFoundError: the file is missing (an installation without package data)
    """
    hyperparams = _load(path)
    hyperparams.pop("n_timesteps", None)
    return hyperparams


def recommended_kwargs(path: "str | Path | None" = None, **overrides: Any) -> dict[str, Any]:
    """
    Constructor keyword arguments of the recommended configuration, for ``DDPGPlus("MlpPolicy", env, **kwargs)``.

    :param path: Another file in the same format (default: :data:`RECOMMENDED_FILE`)
    :param overrides: Arguments to change, merged as hyperparameter overrides are everywhere in the package
        (:func:`~sb3_ddpg_plus.experiments.zoo_hyperparams.merge_hyperparams`: ``policy_kwargs`` key by key, so
        ``policy_kwargs=dict(net_arch=[64, 64])`` keeps the recommended layer norm and number of critics)
    :return: Keyword arguments (noises as plain data, which ``DDPGPlus`` builds), without ``policy``
    """
    from sb3_ddpg_plus.experiments.zoo_hyperparams import merge_hyperparams
    from sb3_ddpg_plus.hyperparams import to_constructor_kwargs

    kwargs = merge_hyperparams(to_constructor_kwargs(recommended_hyperparams(path)), overrides)
    kwargs.pop("policy", None)
    return kwargs


def __getattr__(name: str) -> Any:
    """
    ``hyperparams``: the table rl-zoo3 reads from a ``--conf-file`` module, ``{"default": ...}`` with the file's
    ``n_timesteps`` (the zoo's ``-n`` overrides it). Computed on access: a missing file is an error of the command that
    reads it, not of ``import``.

    :param name: The attribute
    :return: The table, for ``hyperparams``
    :raises AttributeError: for any other name
    """
    if name == "hyperparams":
        return {"default": _load(None)}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
