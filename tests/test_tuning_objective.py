"""The objective on tiny budgets: scores, seeds, warm-up, pruning of diverged and non-finite runs."""

import math

import optuna
import pytest
from optuna.trial import TrialState

import tuning.objective as objective_module
from sb3_ddpg_plus.experiments.protocol import TrainingResult
from tuning.config import StudyConfig, StudyConfigError
from tuning.objective import Objective, trial_seeds
from tuning.scoring import load_reference_scores

REFERENCES = {
    env_id: {"random": ref.random, "reference": ref.reference}
    for env_id, ref in load_reference_scores().items()
    if env_id in ("Pendulum-v1", "MountainCarContinuous-v0")
}
# Fast configuration: tiny network, few updates (train_freq 4, half an update per step).
FAST_PARAMS = {
    "one_minus_gamma": 0.02,
    "actor_learning_rate": 1e-3,
    "critic_learning_rate": 1e-3,
    "tau": 0.005,
    "batch_size": 32,
    "buffer_size": 10_000,
    "learning_starts": 100,
    "train_freq": 4,
    "updates_per_step": 0.5,
    "net_arch": "tiny",
    "layer_norm": False,
    "n_steps": 1,
    "td3_tricks": False,
    "noise_type": "normal",
    "normal_sigma": 0.1,
    "prioritized": None,
}


def _config(**overrides) -> StudyConfig:
    # floor=-100: no pruning of poor-but-finite runs unless a test asks for it (early Pendulum policies score
    # below random).
    settings = dict(env_ids=("Pendulum-v1",), budget=400, eval_freq=100, eval_episodes=1, floor=-100.0, references=REFERENCES)
    settings.update(overrides)
    return StudyConfig(**settings)


def _run_one(config: StudyConfig, params: dict = FAST_PARAMS) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    study.optimize(Objective(config, sampler_seed=123, worker="test"), n_trials=1)
    return study.trials[0]


def test_objective_scores_every_env_and_seed_and_records_seeds():
    config = _config(env_ids=("Pendulum-v1", "MountainCarContinuous-v0"), seeds_per_trial=2)
    trial = _run_one(config)
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["seeds"] == [0, 1] == trial_seeds(0, 2)
    assert trial.user_attrs["sampler_seed"] == 123
    returns = {key: value for key, value in trial.user_attrs.items() if key.startswith("return/")}
    assert sorted(returns) == ["return/MountainCarContinuous-v0", "return/Pendulum-v1"]
    assert all(len(values) == 2 for values in returns.values())  # one per seed
    # The value is the mean of the normalised per-run scores.
    normalised = [config.reference(key.split("/")[1]).normalise(value) for key, values in returns.items() for value in values]
    assert trial.value == pytest.approx(sum(normalised) / len(normalised))
    assert len(trial.user_attrs["best_eval/Pendulum-v1"]) == 2
    assert trial.user_attrs["hyperparams"]["action_noise"] == {"type": "normal", "sigma": 0.1}


def test_no_report_during_warmup_and_steps_on_a_global_grid():
    config = _config(env_ids=("Pendulum-v1", "MountainCarContinuous-v0"), budget=400)
    trial = _run_one(config, {**FAST_PARAMS, "learning_starts": 100})
    # Evaluations at 0 (before learning_starts: not reported) and 100..400 in each run; the one at 100 is not before
    # learning_starts, so reported. Run 1 (MountainCar) reports at 400 + t.
    assert sorted(trial.intermediate_values) == [100, 200, 300, 400, 500, 600, 700, 800]
    assert all(math.isfinite(value) for value in trial.intermediate_values.values())


def test_warmup_is_counted_past_learning_starts():
    # Evaluations every 250 steps, learning starts at 500: nothing is reported before timestep 500, and the
    # median pruner is never consulted before 500 + 0.5 * 2000 = 1500 (a pruner that always prunes shows when).
    config = _config(budget=2000, eval_freq=250, prune_warmup=0.5)
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.enqueue_trial({**FAST_PARAMS, "learning_starts": 500})
    study.optimize(Objective(config), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [500, 750, 1000, 1250, 1500]
    assert "median pruner" in trial.user_attrs["pruned_reason"]


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_diverged_run_is_pruned_by_the_floor_after_warmup():
    # A floor above any reachable score: pruned at the first evaluation past learning_starts + warm-up.
    config = _config(floor=10.0, prune_warmup=0.25)
    trial = _run_one(config)
    assert trial.state == TrialState.PRUNED
    assert "diverged" in trial.user_attrs["pruned_reason"]
    # learning_starts 100 + 0.25 * 400 = 200: reports at 100 (no pruning yet) and 200 (pruned).
    assert sorted(trial.intermediate_values) == [100, 200]


@pytest.mark.parametrize("failure", ["nan_eval", "floating_point_error"])
def test_non_finite_training_is_pruned_not_failed(monkeypatch, failure):
    def fake_train(hyperparams, env_id, seed, budget, eval_freq, n_eval_episodes, on_evaluation=None, model_kwargs=None):
        assert model_kwargs == {"check_numerics": True}
        if failure == "nan_eval":
            on_evaluation(TrainingResult(timesteps=[100], returns=[[float("nan")]]))
        raise FloatingPointError("non-finite critic loss")

    monkeypatch.setattr(objective_module, "train_and_evaluate", fake_train)
    trial = _run_one(_config())
    assert trial.state == TrialState.PRUNED
    expected = "non-finite evaluation" if failure == "nan_eval" else "FloatingPointError"
    assert expected in trial.user_attrs["pruned_reason"]


def test_config_validation_and_mismatch():
    with pytest.raises(StudyConfigError, match="no reference score"):
        _config(env_ids=("Unknown-v0",))
    with pytest.raises(StudyConfigError, match="eval_freq"):
        _config(eval_freq=401)
    assert _config(eval_freq=0).eval_freq == 80  # default: budget // 5
    first, second = _config(), _config(budget=500)
    assert first.mismatches(StudyConfig.from_dict(first.to_dict())) == []
    assert first.mismatches(second) == ["budget: 400 != 500 (study)"]


def test_env_budgets_set_each_run_its_timesteps_evaluations_and_grid():
    # Pendulum trains 200 steps (evaluations every 50: the grid scaled by 200/400), MountainCar the base 400
    # (every 100); MountainCar's reports start where Pendulum's budget ends.
    config = _config(env_ids=("Pendulum-v1", "MountainCarContinuous-v0"), env_budgets={"Pendulum-v1": 200})
    assert (config.budget_for("Pendulum-v1"), config.eval_freq_for("Pendulum-v1")) == (200, 50)
    assert (config.budget_for("MountainCarContinuous-v0"), config.eval_freq_for("MountainCarContinuous-v0")) == (400, 100)
    trial = _run_one(config)
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [100, 150, 200, 300, 400, 500, 600]
    assert StudyConfig.from_dict(config.to_dict()) == config


def test_env_budgets_are_validated():
    with pytest.raises(StudyConfigError, match="does not train"):
        _config(env_budgets={"MountainCarContinuous-v0": 100})
    with pytest.raises(StudyConfigError, match="integer >= 1"):
        _config(env_budgets={"Pendulum-v1": 0})
    # A study created before per-env budgets (no key in its stored config) reads as one budget for all.
    stored = _config().to_dict()
    del stored["env_budgets"]
    assert StudyConfig.from_dict(stored) == _config()


def test_margin_median_pruner_ignores_small_shortfalls():
    from optuna.distributions import FloatDistribution

    from tuning.study import MarginMedianPruner

    def completed_study(direction, values):
        study = optuna.create_study(direction=direction)
        for value in values:
            study.add_trial(
                optuna.trial.create_trial(
                    params={"x": 0.0},
                    distributions={"x": FloatDistribution(0, 1)},
                    value=value,
                    intermediate_values={4000: value},
                )
            )
        return study

    study = completed_study("maximize", (0.98, 1.0, 1.02, 0.99, 1.01))

    def pruned(margin, value, step=4000, n_startup_trials=5):
        trial = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values={step: value})
        return MarginMedianPruner(margin=margin, n_startup_trials=n_startup_trials).prune(study, trial)

    # Median 1.0: 0.97 is noise with a 0.1 margin, pruned without one; 0.85 is pruned either way
    assert not pruned(0.1, 0.97) and pruned(0.0, 0.97)
    assert pruned(0.1, 0.85)
    assert not pruned(0.0, 0.5, step=2000)  # no completed trial reported at that step
    assert not pruned(0.0, 0.5, n_startup_trials=6)  # too few completed trials
    assert pruned(0.1, float("nan"))  # diverged
    with pytest.raises(ValueError, match="margin"):
        MarginMedianPruner(margin=-0.1)

    # Minimising: the same rule, above the median
    losses = completed_study("minimize", (0.98, 1.0, 1.02))
    pruner = MarginMedianPruner(margin=0.1, n_startup_trials=3)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values={4000: 1.05})
    assert not pruner.prune(losses, running)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values={4000: 1.2})
    assert pruner.prune(losses, running)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values={4000: 0.5})
    assert not pruner.prune(losses, running)
