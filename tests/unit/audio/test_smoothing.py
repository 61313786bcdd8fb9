"""Label smoothing (audio/smoothing.py): a strict majority of the last n, the previous label
kept on every tie (checked against the documented rule over generated label runs)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- smoothing: a strict majority of n, n >= 1 -----------------------------------------------
def test_smoothing_needs_a_strict_majority_and_n_of_at_least_one() -> None:
    assert MajoritySmoother(1).n == 1
    with pytest.raises(ValueError, match=r"^n: expected at least 1, got 0$"):
        MajoritySmoother(0)
    s = MajoritySmoother(3)
    assert [s.update(x) for x in "aab"] == ["a", "a", "a"]
    assert s.update("b") == "b"  # a, b, b: 2 of 3


# ---- generated label runs against the documented rule --------------------------------------------
def _reference(labels: list[str], n: int) -> list[str]:
    """Smoothing as documented: the label with a strict majority of the last n, else the
    previous smoothed label (the first label at the start)."""
    out: list[str] = []
    for i in range(len(labels)):
        recent = labels[max(0, i + 1 - n) : i + 1]
        top, count = Counter(recent).most_common(1)[0]
        out.append(top if not out or count * 2 > len(recent) else out[-1])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=30), st.integers(1, 6))
def test_smoothing_keeps_the_previous_label_on_every_tie(labels: list[str], n: int) -> None:
    s = MajoritySmoother(n)
    assert [s.update(x) for x in labels] == _reference(labels, n)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # no majority at the start: the first label stands
        (["b", "a", "a", "b", "b", "a"], ["b", "b", "a", "a", "a", "a"]),
        # a tie whose first-counted label ("b") is not the current one: keep the current
        (["a", "a", "a", "b", "b", "a", "a"], ["a"] * 7),
        # a tie between two labels that are both not the current one: keep the current
        (["c", "c", "a", "b", "a", "b"], ["c", "c", "c", "c", "c", "c"]),
    ],
)
def test_smoothing_ties_do_not_follow_insertion_order(
    labels: list[str], expected: list[str]
) -> None:
    s = MajoritySmoother(4)
    assert [s.update(x) for x in labels] == expected
