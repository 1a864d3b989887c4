"""
The objective: train a sampled configuration on every (environment, seed) run of the study and return the mean
normalised score. Sampling and the train-and-evaluate protocol are the package's (:mod:`sb3_ddpg_plus.experiments`);
this module adds what only a search needs: seeds per trial, normalisation, intermediate reports and pruning.

Intermediate values are reported on a fixed grid of global steps (the budgets of the runs before plus the run's
timesteps) so that
Optuna's median pruner compares trials at the same point of the same run. Three things differ from rl-zoo3's
objective:

* nothing is reported while a run is still in its random warm-up (``timesteps < learning_starts``), and pruning
  waits another ``prune_warmup * budget`` timesteps, so off-policy trials are not killed before they learn (and the
  final evaluation never prunes: a fully trained trial completes with its true value);
* a running score below ``floor`` after warm-up prunes the trial as diverged, without waiting for the median;
* a NaN/inf evaluation or a ``FloatingPointError`` (``check_numerics=True``) prunes instead of failing, so the
  sampler learns to avoid the region (Optuna's TPE ignores FAIL trials but uses PRUNED ones).
"""

import logging
import math
from typing import NoReturn

import numpy as np
import optuna

from sb3_ddpg_plus.experiments.protocol import TrainingResult, train_and_evaluate
from sb3_ddpg_plus.experiments.search_space import sample_hyperparams
from tuning.config import StudyConfig
from tuning.scoring import ReferenceScore

logger = logging.getLogger(__name__)

# Exceptions that mean "this configuration does not train" rather than "the worker is broken".
_UNTRAINABLE = (FloatingPointError, ValueError, AssertionError)


def trial_seeds(trial_number: int, seeds_per_trial: int) -> list[int]:
    """
    Training seeds of a trial: distinct across trials (trial numbers are unique in a study, whatever the worker)
    and reproducible from the trial number alone.

    :param trial_number: ``trial.number``
    :param seeds_per_trial: seeds per environment
    :return: the seeds
    """
    return [trial_number * seeds_per_trial + index for index in range(seeds_per_trial)]


class Objective:
    """
    Callable passed to ``study.optimize``.

    :param config: what the study measures
    :param sampler_seed: this worker's sampler seed (recorded on each trial)
    :param worker: a label of this worker (host:pid), recorded on each trial
    :param check_numerics: ask ``DDPGPlus`` to raise ``FloatingPointError`` on NaN/inf in training
    """

    def __init__(self, config: StudyConfig, sampler_seed: int | None = None, worker: str = "", check_numerics: bool = True):
        self.config = config
        self.sampler_seed = sampler_seed
        self.worker = worker
        self.check_numerics = check_numerics

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config
        hyperparams = sample_hyperparams(trial, budget=config.budget, net_archs=config.net_archs)
        seeds = trial_seeds(trial.number, config.seeds_per_trial)
        trial.set_user_attr("hyperparams", hyperparams)
        trial.set_user_attr("seeds", seeds)
        trial.set_user_attr("worker", self.worker)
        if self.sampler_seed is not None:
            trial.set_user_attr("sampler_seed", self.sampler_seed)

        learning_starts = int(hyperparams["learning_starts"])
        finished: list[float] = []
        # One list per env, in the order of ``seeds`` (one user attribute per env keeps trials.csv narrow).
        returns: dict[str, list[float]] = {env_id: [] for env_id in config.env_ids}
        best_evals: dict[str, list[float]] = {env_id: [] for env_id in config.env_ids}
        runs = [(env_id, seed) for env_id in config.env_ids for seed in seeds]
        offset = 0  # global step of this run's timestep 0: the budgets of the runs before it
        for run_index, (env_id, seed) in enumerate(runs):
            reference = config.reference(env_id)
            budget = config.budget_for(env_id)
            prune_after = learning_starts + int(config.prune_warmup * budget)

            def on_eval(
                result: TrainingResult,
                run_index: int = run_index,
                env_id: str = env_id,
                reference: ReferenceScore = reference,
                offset: int = offset,
                budget: int = budget,
                prune_after: int = prune_after,
            ) -> None:
                # Loop variables bound as defaults: the hook runs inside this iteration only, but explicit is safer.
                timesteps, mean_return = result.timesteps[-1], result.mean_returns[-1]
                if not math.isfinite(mean_return):
                    self._prune(trial, f"non-finite evaluation on {env_id}")
                if timesteps < learning_starts:
                    return
                running = float(np.mean([*finished, reference.normalise(mean_return)]))
                trial.report(running, step=offset + timesteps)
                # Nothing to save by pruning at the very last evaluation: let the trial complete with its true value.
                if timesteps < prune_after or (run_index == len(runs) - 1 and timesteps >= budget):
                    return
                if running < config.floor:
                    self._prune(trial, f"diverged: running score {running:.3f} < floor {config.floor} on {env_id}")
                if trial.should_prune():
                    self._prune(trial, f"median pruner at {env_id} step {timesteps}")

            try:
                result = train_and_evaluate(
                    hyperparams,
                    env_id,
                    seed,
                    budget=budget,
                    eval_freq=config.eval_freq_for(env_id),
                    n_eval_episodes=config.eval_episodes,
                    on_evaluation=on_eval,
                    model_kwargs={"check_numerics": True} if self.check_numerics else None,
                )
            except _UNTRAINABLE as error:
                self._prune(trial, f"{type(error).__name__} on {env_id}: {error}", cause=error)
            raw = result.score(config.score_window, after=learning_starts)
            if not math.isfinite(raw):
                self._prune(trial, f"non-finite score on {env_id}")
            score = reference.normalise(raw)
            returns[env_id].append(raw)
            best_evals[env_id].append(max(result.mean_returns))
            trial.set_user_attr(f"return/{env_id}", returns[env_id])
            trial.set_user_attr(f"best_eval/{env_id}", best_evals[env_id])
            finished.append(score)
            offset += budget
        return float(np.mean(finished))

    @staticmethod
    def _prune(trial: optuna.Trial, reason: str, cause: BaseException | None = None) -> NoReturn:
        trial.set_user_attr("pruned_reason", reason[:500])
        logger.info("trial %d pruned: %s", trial.number, reason)
        raise optuna.TrialPruned(reason) from cause
