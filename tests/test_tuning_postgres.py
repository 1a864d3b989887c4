"""
Crash recovery on a real PostgreSQL server: two workers, one SIGKILLed mid-trial. Its trial must end FAIL, be
retried with the same configuration, and every trial completed before the crash must be kept.

Needs ``TUNING_TEST_POSTGRES_URL`` (``source tuning/ci_postgres.sh`` sets it up). Skipped without it, except when
``CI=true``: there a missing server is a failure, so the test cannot silently stop running.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuning.storage import make_storage, mask_url

REPO_ROOT = Path(__file__).resolve().parents[1]
URL_ENV_VAR = "TUNING_TEST_POSTGRES_URL"
HEARTBEAT, GRACE = 1, 8  # grace well above the interval: a busy CI machine can delay a heartbeat
# Identical in every worker; a long enough budget that a trial is still running when the test kills it.
SETTINGS = ["--envs", "Pendulum-v1", "--budget", "600", "--eval-freq", "100", "--eval-episodes", "1", "--floor", "-100"]
SETTINGS += ["--heartbeat-interval", str(HEARTBEAT), "--grace-period", str(GRACE), "--n-startup-trials", "100"]


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(URL_ENV_VAR)
    if not url:
        message = f"{URL_ENV_VAR} is not set (run `source tuning/ci_postgres.sh` to start a local PostgreSQL server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must run this test")
        pytest.skip(message)
    return url


def _worker(study: str, url: str, n_trials: int, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # The URL (with its password) goes through the environment, never the command line.
    env["TUNING_STORAGE"] = url
    command = [sys.executable, "-m", "tuning", "run", "--study", study, "--n-trials", str(n_trials), *SETTINGS]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(study_name: str, storage: optuna.storages.BaseStorage) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []


@pytest.mark.slow  # subprocesses
def test_killed_worker_trial_fails_and_is_retried(postgres_url, tmp_path):
    study_name = f"crash-test-{uuid.uuid4().hex[:8]}"
    storage = make_storage(postgres_url)
    victim = _worker(study_name, postgres_url, n_trials=5, cwd=tmp_path)
    survivor = _worker(study_name, postgres_url, n_trials=2, cwd=tmp_path)
    victim_label = f":{victim.pid}"
    late = None
    try:
        # Wait until the victim is inside a trial (its objective has recorded the worker label), then kill it.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = [
                trial
                for trial in _trials(study_name, storage)
                if trial.state == TrialState.RUNNING and trial.user_attrs.get("worker", "").endswith(victim_label)
            ]
            if running:
                break
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            time.sleep(0.05)
        else:
            pytest.fail("the victim worker never started a trial")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        killed_at = time.monotonic()
        snapshot = _trials(study_name, storage)
        # Only the victim's own trial: a trial the survivor has just started may not carry its worker label yet
        killed = [
            t for t in snapshot if t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(victim_label)
        ]
        completed_before = {t.number: t.value for t in snapshot if t.state == TrialState.COMPLETE}
        assert killed, "the victim's trial should still be RUNNING right after SIGKILL"

        _, survivor_err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, survivor_err[-3000:]
        # A worker that starts a trial after the grace period marks the stale trial FAIL and re-runs its
        # configuration; the survivor may already have done so, otherwise a third worker does.
        time.sleep(max(0.0, killed_at + GRACE + 1 - time.monotonic()))
        late = _worker(study_name, postgres_url, n_trials=1, cwd=tmp_path)
        _, late_err = late.communicate(timeout=300)
        assert late.returncode == 0, late_err[-3000:]
        for stderr in (survivor_err, late_err):
            password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
            assert not password or password not in stderr, "the storage password leaked into a worker's log"
            assert mask_url(postgres_url) in stderr

        final = {t.number: t for t in _trials(study_name, storage)}
        for trial in killed:
            assert final[trial.number].state == TrialState.FAIL
            retries = [t for t in final.values() if t.system_attrs.get("failed_trial") == trial.number]
            assert len(retries) == 1, f"trial {trial.number} should be retried exactly once"
            assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
            assert retries[0].params == trial.params
        for number, value in completed_before.items():
            assert final[number].state == TrialState.COMPLETE and final[number].value == value
        assert not [t for t in final.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        assert sum(t.state == TrialState.COMPLETE for t in final.values()) >= 3
    finally:
        for process in (victim, survivor, late):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass
