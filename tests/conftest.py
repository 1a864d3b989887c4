import pytest
import torch as th


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tests are small: one thread avoids oversubscription when pytest-xdist runs workers side by side
    th.set_num_threads(1)


# Tiny networks and budgets: tests check behaviour, benchmarks/ checks learning
FAST = dict(learning_starts=50, batch_size=32, buffer_size=1000, policy_kwargs=dict(net_arch=[16, 16]))
