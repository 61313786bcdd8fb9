import pytest

from voxlive.audio.smoothing import MajoritySmoother


def test_single_odd_label_does_not_flip() -> None:
    s = MajoritySmoother(3)
    out = [s.update(x) for x in ["male", "male", "female", "male", "male"]]
    assert out == ["male"] * 5


def test_switches_after_a_majority() -> None:
    s = MajoritySmoother(3)
    out = [s.update(x) for x in ["male", "male", "female", "female", "female"]]
    assert out == ["male", "male", "male", "female", "female"]


def test_hysteresis_keeps_label_on_a_tie() -> None:
    s = MajoritySmoother(4)
    out = [s.update(x) for x in ["male", "male", "male", "female", "female"]]
    # last four: male, male, female, female: no strict majority, keep "male"
    assert out[-1] == "male"
    assert s.update("female") == "female"


def test_n1_is_no_smoothing() -> None:
    s = MajoritySmoother(1)
    assert [s.update(x) for x in "abab"] == list("abab")


def test_n_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MajoritySmoother(0)
