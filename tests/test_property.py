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

positive = st.floats(min_value=1e-5, max_value=1e-2)
unit = st.floats(min_value=0.0, max_value=1.0)
small_int = st.integers(min_value=1, max_value=8)

# each argument: mostly legal values, sometimes anything (wrong types, NaN, inf, negatives, strings, ...)
VALID = {
    "learning_rate": positive,
    "actor_learning_rate": st.one_of(st.none(), positive),
    "critic_learning_rate": st.one_of(st.none(), positive),
    "buffer_size": st.integers(1, 64),
    "learning_starts": st.integers(0, 30),
    "batch_size": st.integers(1, 32),
    "tau": st.floats(min_value=1e-3, max_value=1.0),
    "gamma": unit,
    "train_freq": st.one_of(small_int, st.tuples(small_int, st.sampled_from(["step", "episode"]))),
    "gradient_steps": st.integers(-1, 4),
    "n_steps": small_int,
    # Policy options (as in SB3's TD3); a tiny network keeps runs fast
    "policy_kwargs": st.fixed_dictionaries(
        {"net_arch": st.just([8])},
        optional={"critic_weight_decay": st.floats(min_value=0.0, max_value=0.1), "n_critics": st.integers(1, 3)},
    ),
    "policy_delay": small_int,
    "target_policy_noise": st.floats(min_value=0.0, max_value=0.5),
    "target_noise_clip": st.floats(min_value=0.0, max_value=0.5),
    "param_noise_adaption_interval": small_int,
    "action_noise": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["normal", "ou"]), "sigma": st.floats(min_value=0.0, max_value=1.0)},
            optional={"schedule": st.fixed_dictionaries({"type": st.just("exponential"), "decay": st.floats(0.5, 1.0)})},
        ),
    ),
    "param_noise": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"initial_stddev": st.floats(0.01, 1.0), "desired_action_stddev": st.floats(0.01, 1.0)}
        ),
    ),
}
ANYTHING = {
    **{key: values for key in VALID},
    "train_freq": st.one_of(values, st.tuples(st.integers(-1, 3), st.sampled_from(["step", "episode", "hour"]))),
    "action_noise": st.one_of(
        values,
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
    ),
    "param_noise": st.one_of(
        values,
        st.fixed_dictionaries(
            {}, optional={"initial_stddev": numbers, "desired_action_stddev": numbers, "adoption_coefficient": numbers}
        ),
    ),
}


@st.composite
def one_argument_anything(draw):
    """Legal values everywhere but for one argument, which may be anything."""
    kwargs = draw(st.fixed_dictionaries({}, optional=VALID))
    key = draw(st.sampled_from(sorted(ANYTHING)))
    kwargs[key] = draw(ANYTHING[key])
    return kwargs


def _small(kwargs):
    # keep runs tiny whatever was drawn: large sizes are legal but slow, not interesting here
    for key in ("buffer_size", "learning_starts", "batch_size", "gradient_steps", "n_steps", "policy_delay"):
        value = kwargs.get(key)
        # (integral floats such as 1e9 are counts too)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 64:
            kwargs[key] = 64
    return kwargs


@pytest.mark.slow  # hypothesis: many examples
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=VALID))
def test_legal_arguments_train(kwargs):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", **{"policy_kwargs": dict(net_arch=[8]), **_small(kwargs)})
    model.learn(40)
    assert model.num_timesteps >= 40


@pytest.mark.slow  # hypothesis: many examples
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_argument_anything())
def test_random_arguments_train_or_fail_clearly(kwargs):
    kwargs = _small(kwargs)
    try:
        model = DDPGPlus("MlpPolicy", "Pendulum-v1", **{"policy_kwargs": dict(net_arch=[8]), **kwargs})
        model.learn(40)
    except (ValueError, TypeError) as error:
        assert str(error), f"{type(error).__name__} without a message for {kwargs}"
        return
    assert model.num_timesteps >= 40


@pytest.mark.parametrize("bad", [{"tau": float("nan")}, {"gamma": float("inf")}, {"batch_size": True}])
def test_non_finite_and_bool_values_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        DDPGPlus("MlpPolicy", "Pendulum-v1", **bad)
