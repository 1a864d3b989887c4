import pytest
import torch as th


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tests are small: one thread avoids oversubscription when pytest-xdist runs workers side by side
    th.set_num_threads(1)


@pytest.fixture(autouse=True)
def _sb3_logs_in_tmp_path(tmp_path, monkeypatch):
    # SB3 makes a log folder for every learn() (default: a new /tmp/SB3-<date> each time): keep them in the test's
    # own temporary folder instead of piling up in /tmp
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3_logs"))


# Tiny networks and budgets: tests check behaviour, benchmarks/ checks learning
FAST = dict(learning_starts=50, batch_size=32, buffer_size=1000, policy_kwargs=dict(net_arch=[16, 16]))
