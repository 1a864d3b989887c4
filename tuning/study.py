"""
Create or join a study and run one worker on it.

Samplers and pruners are not stored by Optuna (Optuna PR #4927), so every worker builds the same ones from here;
what differs between workers is only the sampler seed, which must differ, or workers started together propose the
same start-up configurations (seen with TPE: 5 duplicates out of 10 trials when the seeds were equal).
"""

import contextlib
import hashlib
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.storages import BaseStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from sb3_ddpg_plus.experiments.records import system_info
from sb3_ddpg_plus.experiments.search_space import fixed_trial, sample_hyperparams
from tuning.config import CONFIG_ATTR, StudyConfig, StudyConfigError
from tuning.objective import Objective

logger = logging.getLogger(__name__)


class StudyNotFoundError(LookupError):
    """The storage has no study of that name."""


def worker_label() -> str:
    """:return: ``host:pid``, recorded on each trial to tell workers apart"""
    return f"{socket.gethostname()}:{os.getpid()}"


def derive_worker_seed() -> int:
    """
    A sampler seed unique to this process: hash of host name, pid and the current time.

    :return: a 31-bit seed
    """
    material = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "little") & 0x7FFFFFFF


def make_sampler(seed: int, n_startup_trials: int = 10) -> optuna.samplers.TPESampler:
    """
    TPE with Optuna 5's defaults (multivariate, constant liar for parallel workers).

    :param seed: this worker's sampler seed
    :param n_startup_trials: random trials before TPE takes over (counted over the whole study)
    :return: the sampler
    """
    # group=True lets multivariate TPE model the conditional noise sigmas per noise type (experimental flag).
    with _quiet_experimental():
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, group=True)


class MarginMedianPruner(optuna.pruners.BasePruner):
    """
    Optuna's median rule with a margin: prune a trial whose value at a step is worse than the median of the completed
    trials' values at that step by more than ``margin`` (below it when the study maximises, above when it minimises);
    a NaN value is pruned, as by Optuna's rule.

    Without a margin (Optuna's ``MedianPruner``), a cross-task study whose first task saturates (Pendulum near a
    normalised 1.0 after a few thousand steps) prunes configurations on evaluation noise alone: 0.97 against a median
    of 1.0 says nothing about the tasks still to come. With a margin in normalised-score units, only a trial that is
    clearly behind is stopped.

    :param margin: How far below the median a value must be to prune (0: Optuna's median rule on the current value)
    :param n_startup_trials: Completed trials needed before anything is pruned
    :param n_min_trials: Completed trials with a value at the step needed to prune there
    """

    def __init__(self, margin: float = 0.0, n_startup_trials: int = 5, n_min_trials: int = 3) -> None:
        if not margin >= 0:
            raise ValueError(f"the pruning margin must be >= 0, got {margin}")
        self.margin = margin
        self.n_startup_trials = n_startup_trials
        self.n_min_trials = n_min_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self.n_startup_trials:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True  # (as Optuna's median rule: a diverged trial goes)
        others = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        others = [other for other in others if not math.isnan(other)]
        if len(others) < self.n_min_trials:
            return False
        median = float(np.median(others))
        if study.direction == optuna.study.StudyDirection.MINIMIZE:
            return bool(value > median + self.margin)
        return bool(value < median - self.margin)


def make_pruner(n_startup_trials: int = 5, margin: float = 0.0) -> optuna.pruners.BasePruner:
    """
    Median pruner (with a margin, see :class:`MarginMedianPruner`). Warm-up is handled by the objective in timesteps
    past ``learning_starts`` (it only asks ``should_prune`` after that), so the pruner itself has no step warm-up.

    :param n_startup_trials: completed trials needed before anything is pruned
    :param margin: how far below the median (normalised score) a trial must be to be pruned
    :return: the pruner
    """
    return MarginMedianPruner(margin=margin, n_startup_trials=n_startup_trials, n_min_trials=3)


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for a documented, deliberate use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def create_or_join(
    study_name: str,
    storage: BaseStorage,
    config: StudyConfig,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    command: str | None = None,
) -> optuna.Study:
    """
    Create the study, or join it if it exists; a worker whose settings differ from the study's is refused.

    :param study_name: study name
    :param storage: where it lives
    :param config: this worker's settings
    :param sampler: this worker's sampler
    :param pruner: this worker's pruner
    :param command: command line to record (already masked) when this worker creates the study
    :return: the study
    :raises StudyConfigError: the study was created with other settings
    """
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        # First worker (or several started together with the same settings: same value, harmless race).
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
        study.set_user_attr("versions", system_info(packages=("optuna",))["versions"])
        if command:
            study.set_user_attr("command", command)
        return study
    problems = config.mismatches(StudyConfig.from_dict(stored))
    if problems:
        raise StudyConfigError(
            f"study {study_name!r} exists with other settings; use a new --study name or the same settings:\n  "
            + "\n  ".join(problems)
        )
    return study


def enqueue_params(study: optuna.Study, config: StudyConfig, path: str | Path) -> None:
    """
    Queue a known configuration (Optuna params of the search space) so the next free worker tries it first.

    :param study: the study
    :param config: its settings (the params are checked against the search space before queueing)
    :param path: YAML mapping of param names to values (``yaml.safe_load``)
    :raises StudyConfigError: unreadable file, or params that the search space cannot produce
    """
    try:
        with open(path, encoding="utf-8") as file:
            params = yaml.safe_load(file)
    except (OSError, yaml.YAMLError) as error:
        raise StudyConfigError(f"cannot read --enqueue file {path}: {error}") from None
    if not isinstance(params, dict):
        raise StudyConfigError(f"--enqueue file {path} must be a mapping of search-space params")
    # Parameters added to the space since the file was written take the values that reproduce the older space.
    fixed = fixed_trial(params)
    try:
        with warnings.catch_warnings():
            # FixedTrial only warns about values outside a distribution; here that is an error.
            warnings.simplefilter("error", UserWarning)
            sample_hyperparams(fixed, budget=config.budget, net_archs=config.net_archs)
    except (ValueError, UserWarning) as error:
        raise StudyConfigError(f"--enqueue file {path} does not fit the search space: {error}") from None
    unused = sorted(set(params) - set(fixed.params))
    if unused:
        raise StudyConfigError(f"--enqueue file {path} has params the search space does not use here: {unused}")
    study.enqueue_trial(fixed.params, skip_if_exists=True)


def load_existing(study_name: str, storage: BaseStorage) -> tuple[optuna.Study, StudyConfig]:
    """
    :param study_name: study name
    :param storage: where it lives
    :return: the study and the settings it was created with
    :raises StudyNotFoundError: no such study in the storage
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [summary.study_name for summary in optuna.get_all_study_summaries(storage)]
        known = ", ".join(sorted(names)) or "none"
        raise StudyNotFoundError(f"no study named {study_name!r} in this storage (studies there: {known})") from None
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise StudyConfigError(f"study {study_name!r} was not created by `python -m tuning run` (no stored config)")
    return study, StudyConfig.from_dict(stored)


def run_worker(
    study: optuna.Study,
    config: StudyConfig,
    n_trials: int,
    sampler_seed: int,
    max_total_trials: int | None = None,
    timeout: float | None = None,
) -> None:
    """
    Run ``n_trials`` trials of this worker (fewer if ``max_total_trials`` is reached across all workers).

    :param study: the study (with this worker's sampler and pruner)
    :param config: what the study measures
    :param n_trials: trials for this worker
    :param sampler_seed: recorded on each trial
    :param max_total_trials: stop once the study has this many trials (complete, pruned or running) overall
    :param timeout: start no new trial after this many seconds (a running trial is finished, not cut)
    """
    callbacks = []
    if max_total_trials is not None:
        # Counting RUNNING too, as rl-zoo3 does, so N workers do not overshoot by N - 1.
        callbacks.append(
            MaxTrialsCallback(max_total_trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        )
    objective = Objective(config, sampler_seed=sampler_seed, worker=worker_label())
    # RuntimeError (e.g. a torch error in one configuration) fails that trial but keeps the worker going;
    # gc_after_trial frees envs/models caught in reference cycles (Optuna FAQ on memory).
    study.optimize(
        objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks, catch=(RuntimeError,), gc_after_trial=True
    )


#: User attribute of a re-queued trial: the number of the trial it repeats
REQUEUED_FROM_ATTR = "requeued_from"


def requeue_interrupted(study: optuna.Study, storage: BaseStorage, older_than_s: float = 0.0) -> list[tuple[int, bool]]:
    """
    Mark the study's RUNNING trials FAIL and queue their parameters again, so that the next worker measures them.

    For storages without heartbeats (the journal file): a worker that was killed leaves its trial RUNNING for good.
    Call this only when no worker of the study is running (or with ``older_than_s`` longer than any trial takes): a
    trial that is still being measured would be measured twice.

    :param study: the study
    :param storage: the storage it was loaded from
    :param older_than_s: only trials started at least this many seconds ago
    :return: ``(number, queued)`` of each trial marked FAIL; ``queued`` is False for a trial killed before its
        parameters were drawn (nothing to repeat). A queued trial's repeat carries ``requeued_from``.
    """
    import datetime

    now = datetime.datetime.now()  # (Optuna records trial start times as naive local times)
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if started is not None and (now - started).total_seconds() < older_than_s:
            continue
        params = dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if params:
            study.enqueue_trial(params, user_attrs={REQUEUED_FROM_ATTR: trial.number})
        requeued.append((trial.number, bool(params)))
    return requeued


def state_counts(study: optuna.Study) -> dict[str, int]:
    """
    :param study: a study
    :return: number of trials per state name
    """
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts
