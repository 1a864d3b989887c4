"""
Plain outputs of a study: the best configuration as YAML (keyed by environment id, as rl-zoo3 files are, so
``sb3_ddpg_plus.hyperparams.load_hyperparams(path, env_id)`` and ``python -m sb3_ddpg_plus.zoo`` read it) and a CSV
of all trials. Both are written atomically, so several workers finishing together never leave a torn file.
"""

import copy
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from sb3_ddpg_plus.experiments.records import write_file
from sb3_ddpg_plus.experiments.search_space import fixed_trial, sample_hyperparams
from tuning.config import StudyConfig


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    """
    :param study: a study
    :return: its COMPLETE trials, best first
    """
    trials = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trial.value is not None]
    return sorted(trials, key=lambda trial: trial.value, reverse=True)  # type: ignore[arg-type, return-value]


def select_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """
    :param study: a study
    :param number: a trial number, or ``None`` for the best completed trial
    :return: the trial
    :raises LookupError: no completed trial / no such completed trial
    """
    trials = completed_trials(study)
    if not trials:
        raise LookupError(f"study {study.study_name!r} has no completed trial yet")
    if number is None:
        return trials[0]
    for trial in trials:
        if trial.number == number:
            return trial
    raise LookupError(f"trial {number} of study {study.study_name!r} is not a completed trial")


def trial_hyperparams(trial: FrozenTrial, config: StudyConfig) -> dict[str, Any]:
    """
    The plain-data hyperparameters of a trial, with the study's budget as ``n_timesteps``.

    :param trial: a trial of a ``python -m tuning`` study
    :param config: the study's settings
    :return: hyperparameters for ``load_hyperparams``
    """
    if "hyperparams" in trial.user_attrs:
        hyperparams = dict(trial.user_attrs["hyperparams"])
    else:
        # Trials that never reached the objective body (e.g. enqueued by hand) are rebuilt from their params.
        hyperparams = sample_hyperparams(fixed_trial(trial.params), budget=config.budget, net_archs=config.net_archs)
    hyperparams["n_timesteps"] = config.budget
    return hyperparams


def hyperparams_yaml(
    study: optuna.Study,
    config: StudyConfig,
    trial: FrozenTrial,
    notes: Sequence[str] = (),
    default_only: bool = False,
) -> str:
    """
    YAML text of a trial's configuration, one block per environment of the study, with a header comment saying
    where it comes from.

    :param study: the study
    :param config: its settings
    :param trial: the trial to export
    :param notes: extra comment lines for the header
    :param default_only: Write one ``default`` block instead (with the study's ``--budget`` as ``n_timesteps``):
        rl-zoo3's fallback for any environment, the format of the package's recommended configuration
    :return: the YAML text
    """
    counts: dict[str, int] = {}
    for other in study.get_trials(deepcopy=False):
        counts[other.state.name] = counts.get(other.state.name, 0) + 1
    command = study.user_attrs.get("command", "unknown")
    header = [
        f"Tuned by `python -m tuning` (search space v{config.search_space_version}): study {study.study_name!r}, "
        f"trial {trial.number}, objective {trial.value:.4f}",
        "(mean normalised score: 0 = uniform random policy, 1 = rl-zoo3's tuned DDPG, see tuning/reference_scores.yml)",
        f"trials: {sum(counts.values())} ({', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))})",
        "timesteps per run: "
        + ", ".join(f"{env_id} {config.budget_for(env_id)}" for env_id in config.env_ids)
        + f"; {config.seeds_per_trial} seed(s) per env",
        f"envs: {', '.join(config.env_ids)}",
        f"command: {command}",
        *notes,
    ]
    hyperparams = trial_hyperparams(trial, config)
    # Deep copies: shared dicts would be written as YAML anchors and aliases, which readers of the file trip over.
    if default_only:
        sections = {"default": hyperparams}
    else:
        sections = {
            env_id: {**copy.deepcopy(hyperparams), "n_timesteps": config.budget_for(env_id)} for env_id in config.env_ids
        }
    body = yaml.safe_dump(sections, sort_keys=False, default_flow_style=None)
    return "".join(f"# {line}\n" for line in header) + body


def export_best(
    study: optuna.Study,
    config: StudyConfig,
    path: str | Path,
    trial_number: int | None = None,
    notes: Sequence[str] = (),
    default_only: bool = False,
) -> FrozenTrial:
    """
    Write the best (or a chosen) trial's configuration as YAML.

    :param study: the study
    :param config: its settings
    :param path: output file
    :param trial_number: a trial number, or ``None`` for the best completed trial
    :param notes: extra header comment lines
    :param default_only: one ``default`` block instead of one block per environment (:func:`hyperparams_yaml`)
    :return: the exported trial
    """
    trial = select_trial(study, trial_number)
    write_file(path, hyperparams_yaml(study, config, trial, notes, default_only=default_only))
    return trial


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def trials_csv(study: optuna.Study) -> str:
    """
    CSV of every trial: number, state, value, times, worker, then one column per param and per user attribute.

    :param study: the study
    :return: CSV text (written with the ``csv`` module: no pandas needed)
    """
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({name for trial in trials for name in trial.params})
    attr_names = sorted({name for trial in trials for name in trial.user_attrs})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["number", "state", "value", "datetime_start", "datetime_complete", "duration_s", "last_step"]
        + [f"params_{name}" for name in param_names]
        + [f"user_attrs_{name}" for name in attr_names]
    )
    for trial in trials:
        duration = trial.duration.total_seconds() if trial.duration is not None else ""
        last_step = trial.last_step if trial.last_step is not None else ""
        writer.writerow(
            [
                trial.number,
                trial.state.name,
                _cell(trial.value) if trial.value is not None else "",
                trial.datetime_start or "",
                trial.datetime_complete or "",
                duration,
                last_step,
            ]
            + [_cell(trial.params.get(name, "")) for name in param_names]
            + [_cell(trial.user_attrs.get(name, "")) for name in attr_names]
        )
    return buffer.getvalue()


def write_trials_csv(study: optuna.Study, path: str | Path) -> None:
    """
    :param study: the study
    :param path: output CSV file
    """
    write_file(path, trials_csv(study))
