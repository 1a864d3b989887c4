"""The reference table and normalised scores."""

import pytest

from tuning.scoring import MissingReferenceError, ReferenceScore, load_reference_scores, select_reference_scores

REQUIRED = ("Pendulum-v1", "MountainCarContinuous-v0", "HalfCheetahBulletEnv-v0", "HopperBulletEnv-v0")


def test_committed_table_covers_the_tuned_environments():
    table = load_reference_scores()
    for env_id in REQUIRED:
        # A reference must beat the random policy, or "1 = reference" would mean "worse than random".
        assert table[env_id].reference > table[env_id].random


def test_normalise_maps_random_to_zero_and_reference_to_one():
    score = ReferenceScore(random=-1200.0, reference=-150.0)
    assert score.normalise(-1200.0) == 0.0
    assert score.normalise(-150.0) == 1.0
    assert score.normalise(-675.0) == pytest.approx(0.5)


def test_missing_reference_is_a_clear_error():
    with pytest.raises(MissingReferenceError, match="CartPole-v1"):
        select_reference_scores(["Pendulum-v1", "CartPole-v1"], load_reference_scores())


@pytest.mark.parametrize(
    "text",
    [
        "- a list\n",
        "Pendulum-v1: {random: -1}\n",
        "Pendulum-v1: {random: 1, reference: 1}\n",
        "X: {random: .nan, reference: 1}\n",
    ],
)
def test_malformed_tables_are_rejected(tmp_path, text):
    path = tmp_path / "refs.yml"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_reference_scores(path)
