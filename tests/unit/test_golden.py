"""The golden messages in spec/vectors are what the Python code produces and accepts."""

import json
from pathlib import Path
from typing import Any

import pytest

from voxlive.protocol import messages
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.session import Session, Started, Stopped

VECTORS = json.loads((Path(__file__).parents[2] / "spec" / "vectors" / "messages.json").read_text())


def _build(msg: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in msg.items() if k not in ("type", "class")}
    kind = msg["type"]
    if kind == "error":
        return dict(messages.error(fields.pop("code"), fields.pop("message"), **fields))
    builder = {
        "ready": messages.ready, "result": messages.result, "segment": messages.segment,
        "end": messages.end,
    }[kind]  # fmt: skip
    return dict(builder(**fields))


@pytest.mark.parametrize("vector", VECTORS["server"], ids=lambda v: v["name"])
def test_server_messages_match_the_builders(vector: dict[str, Any]) -> None:
    built = _build(vector["message"])
    assert built == vector["message"]
    assert json.loads(messages.encode(built)) == vector["message"]


@pytest.mark.parametrize("vector", VECTORS["client"], ids=lambda v: v["name"])
def test_client_messages_are_accepted(vector: dict[str, Any]) -> None:
    events = Session(DEFAULT_FORMAT).receive_text(json.dumps(vector["message"]))
    kind = vector["message"]["type"]
    assert isinstance(events[-1], Started if kind == "start" else Stopped)
