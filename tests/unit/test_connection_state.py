"""A connection's states: the moves it allows, and what it says about one it does not."""

from typing import Any

import pytest

from voxlive.server.connection import NEXT, Connection


def _connection() -> Connection:
    none: Any = None  # no socket or service needed to change state
    return Connection(none, none)


def test_every_state_but_closed_can_end_closed_and_closed_is_final() -> None:
    assert all("closed" in NEXT[state] for state in ("streaming", "draining", "closing"))
    assert NEXT["closed"] == ()


def test_a_closed_connection_refuses_to_move_and_says_why() -> None:
    conn = _connection()
    conn._move("closing")
    conn._move("closed")
    assert conn.closed
    with pytest.raises(RuntimeError, match=r"expected a move to one of \(\) from 'closed'"):
        conn._move("draining")


def test_draining_cannot_go_back_to_streaming() -> None:
    conn = _connection()
    conn._move("draining")
    with pytest.raises(RuntimeError, match="but got 'streaming'"):
        conn._move("streaming")
