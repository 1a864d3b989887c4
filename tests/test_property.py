"""Random constructor arguments either train a few steps or are refused with ValueError/TypeError and a message."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sb3_ddpg_plus import DDPGPlus

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(min_value=-5, max_value=300),
    st.sampled_from([0, 1, 0.5, 1e-3]),
)
values = st.one_of(numbers, st.none(), st.text(max_size=5), st.booleans(), st.lists(st.integers(-2, 3), max_size=3))

ARGUMENTS = {
    "learning_rate": values,
    "actor_learning_rate": values,
    "critic_learning_rate": values,
    "buffer_size": values,
    "learning_starts": values,
    "batch_size": values,
    "tau": values,
    "gamma": values,
    "train_freq": st.one_of(values, st.tuples(st.integers(-1, 3), st.sampled_from(["step", "episode", "hour"]))),
    "gradient_steps": values,
    "n_steps": values,
    "critic_weight_decay": values,
    "n_critics": values,
    "policy_delay": values,
    "target_policy_noise": values,
    "target_noise_clip": values,
    "param_noise_adaption_interval": values,
    "action_noise": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["normal", "ou", "none", "pink"]), "sigma": numbers},
            optional={
                "theta": numbers,
                "dt": numbers,
                "schedule": st.fixed_dictionaries(
                    {"type": st.sampled_from(["linear", "exponential", "x"])},
                    optional={"final": numbers, "duration": numbers, "decay": numbers},
                ),
            },
        ),
        values,
    ),
    "param_noise": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"initial_stddev": numbers, "desired_action_stddev": numbers, "adoption_coefficient": numbers}
        ),
        values,
    ),
}


def _small(kwargs):
    # keep runs tiny whatever was drawn: large sizes are legal but slow, not interesting here
    for key in ("buffer_size", "learning_starts", "batch_size", "gradient_steps", "n_steps", "policy_delay"):
        value = kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 64:
            kwargs[key] = 64
    return kwargs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=ARGUMENTS))
def test_random_arguments_train_or_fail_clearly(kwargs):
    kwargs = _small(kwargs)
    try:
        model = DDPGPlus("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), **kwargs)
        model.learn(40)
    except (ValueError, TypeError) as error:
        assert str(error), f"{type(error).__name__} without a message for {kwargs}"
        return
    assert model.num_timesteps >= 40


@pytest.mark.parametrize("bad", [{"tau": float("nan")}, {"gamma": float("inf")}, {"batch_size": True}])
def test_non_finite_and_bool_values_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        DDPGPlus("MlpPolicy", "Pendulum-v1", **bad)
