"""`python -m tuning` end to end on tiny budgets: workers sharing the default storage, export, report."""

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.hyperparams import load_hyperparams, make_model
from sb3_ddpg_plus.recommended import recommended_hyperparams
from tuning.cli import main
from tuning.storage import JOURNAL_FILE_NAME, make_storage

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tiny and identical in every worker of a study (a worker with other settings is refused).
TINY = ["--envs", "Pendulum-v1", "--budget", "300", "--eval-freq", "100", "--eval-episodes", "1", "--floor", "-100"]


# Search-space params of a cheap configuration (tiny network, few updates), to pin a trial with --enqueue.
CHEAP_PARAMS = """
one_minus_gamma: 0.02
actor_learning_rate: 0.001
critic_learning_rate: 0.001
tau: 0.005
batch_size: 32
buffer_size: 10000
learning_starts: 100
train_freq: 4
updates_per_step: 0.5
net_arch: tiny
layer_norm: false
n_steps: 1
td3_tricks: false
noise_type: none
"""


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TUNING_STORAGE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _tuning(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-m", "tuning", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )
    if check and completed.returncode != 0:
        pytest.fail(f"python -m tuning {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return completed


def _tuning_in_process(*args: str, monkeypatch: pytest.MonkeyPatch, cwd: Path) -> int:
    """Same CLI without a new interpreter (saves the torch import per call)."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("TUNING_STORAGE", raising=False)
    return main(list(args))


def _load(study_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(str(study_dir / JOURNAL_FILE_NAME)))


@pytest.mark.slow  # subprocesses
def test_two_workers_share_the_default_storage(tmp_path):
    command = [sys.executable, "-m", "tuning", "run", "--study", "shared", "--n-trials", "3", *TINY]
    workers = [
        subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]

    study = _load(tmp_path / "runs" / "shared", "shared")
    trials = study.get_trials()
    assert len(trials) == 6
    assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials)
    assert sorted(trial.number for trial in trials) == list(range(6))
    # Both workers took part, each with its own sampler seed, and no two trials trained with the same seeds.
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2
    assert len({trial.user_attrs["sampler_seed"] for trial in trials}) == 2
    assert len({tuple(trial.user_attrs["seeds"]) for trial in trials}) == 6
    assert (tmp_path / "runs" / "shared" / "trials.csv").is_file()


def test_run_export_report_round_trip(tmp_path, monkeypatch):
    assert (
        _tuning_in_process(
            "run", "--study", "demo", "--n-trials", "2", "--seed", "7", *TINY, monkeypatch=monkeypatch, cwd=tmp_path
        )
        == 0
    )
    study_dir = tmp_path / "runs" / "demo"
    study = _load(study_dir, "demo")
    assert {trial.user_attrs["sampler_seed"] for trial in study.trials} == {7}

    out = tmp_path / "exported.yml"
    assert (
        _tuning_in_process(
            "export", "--study", "demo", "--out", str(out), "--note", "hello", monkeypatch=monkeypatch, cwd=tmp_path
        )
        == 0
    )
    text = out.read_text()
    assert "# hello" in text and "# command: python -m tuning run --study demo" in text
    hyperparams = load_hyperparams(out, "Pendulum-v1")
    assert hyperparams["n_timesteps"] == 300
    assert hyperparams == {**study.best_trial.user_attrs["hyperparams"], "n_timesteps": 300}
    model = make_model(hyperparams, gym.make("Pendulum-v1"))
    assert isinstance(model, DDPGPlus)
    assert model.gamma == pytest.approx(hyperparams["gamma"])

    # --default: one block that rl-zoo3 applies to any environment (the recommended configuration's format)
    default_out = tmp_path / "recommended.yml"
    assert (
        _tuning_in_process(
            "export", "--study", "demo", "--out", str(default_out), "--default", monkeypatch=monkeypatch, cwd=tmp_path
        )
        == 0
    )
    assert list(yaml.safe_load(default_out.read_text())) == ["default"]
    assert load_hyperparams(default_out, "default") == hyperparams
    assert recommended_hyperparams(default_out) == study.best_trial.user_attrs["hyperparams"]

    assert (
        _tuning_in_process(
            "report", "--study", "demo", "--top-k", "1", "--reeval-seeds", "2", monkeypatch=monkeypatch, cwd=tmp_path
        )
        == 0
    )
    report = (study_dir / "REPORT.md").read_text()
    assert "## Re-training with fresh seeds" in report
    best = study.best_trial
    row = next(
        line for line in report.splitlines() if line.startswith(f"| {best.number} | {best.value:.3f} |") and "±" in line
    )
    assert "[" in row  # IQM with its bootstrap interval
    for name in ("best.yml", "trials.csv", "optimization_history.png", "intermediate_values.png"):
        assert (study_dir / name).stat().st_size > 0
    with open(study_dir / "trials.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["number"]) for row in rows] == [0, 1]
    assert "user_attrs_seeds" in rows[0] and "params_noise_type" in rows[0]


def test_joining_with_other_settings_is_refused(tmp_path, monkeypatch, capsys):
    assert _tuning_in_process("run", "--study", "demo", "--n-trials", "1", *TINY, monkeypatch=monkeypatch, cwd=tmp_path) == 0
    other = [arg if arg != "300" else "400" for arg in TINY]
    assert _tuning_in_process("run", "--study", "demo", "--n-trials", "1", *other, monkeypatch=monkeypatch, cwd=tmp_path) == 2
    assert "budget: 400 != 300 (study)" in capsys.readouterr().err


def test_report_on_missing_study_is_a_clear_error(tmp_path, monkeypatch, capsys):
    assert _tuning_in_process("report", "--study", "nothing", monkeypatch=monkeypatch, cwd=tmp_path) == 2
    assert "error: no study storage at" in capsys.readouterr().err


def test_help_explains_every_subcommand(tmp_path, monkeypatch, capsys):
    for command, option in (
        ("run", "--seeds-per-trial"),
        ("report", "--reeval-seeds"),
        ("export", "--out"),
        ("requeue", "--older-than"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            _tuning_in_process(command, "--help", monkeypatch=monkeypatch, cwd=tmp_path)
        assert exit_info.value.code == 0
        assert option in capsys.readouterr().out


@pytest.mark.slow  # subprocesses
def test_exported_yaml_trains_through_the_zoo(tmp_path, monkeypatch):
    pytest.importorskip("rl_zoo3")
    params = tmp_path / "params.yml"
    params.write_text(CHEAP_PARAMS)
    args = ("run", "--study", "zoo", "--n-trials", "1", "--enqueue", str(params), *TINY)
    assert _tuning_in_process(*args, monkeypatch=monkeypatch, cwd=tmp_path) == 0
    exported = tmp_path / "runs" / "zoo" / "best.yml"
    command = [sys.executable, "-m", "sb3_ddpg_plus.zoo", "train", "--algo", "ddpg_plus", "--env", "Pendulum-v1"]
    completed = subprocess.run(
        [*command, "--conf-file", str(exported), "-n", "300", "--eval-freq", "-1", "--log-folder", str(tmp_path / "logs")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert list((tmp_path / "logs" / "ddpg_plus").glob("Pendulum-v1_*/Pendulum-v1.zip"))


def test_enqueued_configuration_runs_first(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yml"
    params.write_text(CHEAP_PARAMS)
    args = ("run", "--study", "queued", "--n-trials", "1", "--enqueue", str(params), *TINY)
    assert _tuning_in_process(*args, monkeypatch=monkeypatch, cwd=tmp_path) == 0
    trial = _load(tmp_path / "runs" / "queued", "queued").trials[0]
    assert trial.params["noise_type"] == "none" and trial.params["net_arch"] == "tiny"
    assert trial.user_attrs["hyperparams"]["action_noise"] == {"type": "none"}

    params.write_text("noise_type: none\nnet_arch: huge\n")
    assert _tuning_in_process(*args, monkeypatch=monkeypatch, cwd=tmp_path) == 2
    assert "does not fit the search space" in capsys.readouterr().err


def test_requeue_marks_interrupted_trials_failed_and_queues_them_again(tmp_path, monkeypatch, capsys, caplog):
    caplog.set_level(logging.INFO, logger="tuning")
    assert _tuning_in_process("run", "--study", "killed", "--n-trials", "1", *TINY, monkeypatch=monkeypatch, cwd=tmp_path) == 0
    study = _load(tmp_path / "runs" / "killed", "killed")
    # Two workers killed mid-trial: one after drawing its parameters, one before
    drawn = study.ask({"net_arch": study.trials[0].distributions["net_arch"]})
    undrawn = study.ask()
    args = ("requeue", "--study", "killed")
    # Trials younger than --older-than are left alone (they may still be running)
    assert _tuning_in_process(*args, "--older-than", "3600", monkeypatch=monkeypatch, cwd=tmp_path) == 0
    assert [t.state for t in _load(tmp_path / "runs" / "killed", "killed").trials[1:]] == [TrialState.RUNNING] * 2
    assert _tuning_in_process(*args, monkeypatch=monkeypatch, cwd=tmp_path) == 0
    trials = _load(tmp_path / "runs" / "killed", "killed").trials
    assert trials[0].state == TrialState.COMPLETE  # untouched
    assert [trials[drawn.number].state, trials[undrawn.number].state] == [TrialState.FAIL, TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs == {"requeued_from": drawn.number}
    assert waiting[0].system_attrs["fixed_params"] == {"net_arch": drawn.params["net_arch"]}
    assert f"trial {drawn.number}: RUNNING -> FAIL; its parameters queued again" in caplog.messages
    assert f"trial {undrawn.number}: RUNNING -> FAIL" in caplog.messages
    capsys.readouterr()
    assert _tuning_in_process("requeue", "--study", "nothing", monkeypatch=monkeypatch, cwd=tmp_path) == 2
    assert "error: no study storage at" in capsys.readouterr().err
