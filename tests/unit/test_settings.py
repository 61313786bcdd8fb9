import pytest

from voxlive.errors import ConfigError
from voxlive.settings import Settings, build


def test_defaults() -> None:
    s = build({}, {})
    assert (s.window_ms, s.hop_ms, s.model, s.port) == (1000, 500, "auto", 8000)


def test_env_then_flag_precedence() -> None:
    env = {"VOXLIVE_WINDOW_MS": "200", "VOXLIVE_HOP_MS": "100", "VOXLIVE_LABELS": "m, f"}
    s = build({"hop_ms": "50"}, env)
    assert (s.window_ms, s.hop_ms, s.labels) == (200, 50, ("m", "f"))


@pytest.mark.parametrize(
    ("args", "env", "match"),
    [
        ({"port": "abc"}, {}, r"port \(--port\): expected int, got 'abc'"),
        ({}, {"VOXLIVE_MAX_BATCH": "1.5"}, r"max_batch \(VOXLIVE_MAX_BATCH\): expected int"),
        ({"hop_ms": "2000"}, {}, r"hop_ms: expected 10..window_ms \(1000\) ms, got 2000"),
        ({"window_ms": "50"}, {}, "window_ms: expected 100..30000 ms, got 50"),
        ({"buffer_ms": "1000"}, {}, r"buffer_ms: expected window_ms \+ hop_ms \(1500\)"),
        ({"device": "tpu"}, {}, "device: expected one of auto, cpu, cuda, got 'tpu'"),
        ({"gate_rms": "-1"}, {}, "gate_rms"),
        ({"smoothing": "0"}, {}, "smoothing: expected 1..100"),
    ],
)
def test_bad_values_name_key_and_value(args: dict, env: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=match):
        build(args, env)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
    assert s.replace(port=9000).port == 9000


def test_settings_refuse_int8_without_onnx_and_onnx_on_cuda() -> None:
    with pytest.raises(ConfigError, match="quantize: expected 'none' unless backend is 'onnx'"):
        Settings(quantize="int8")
    with pytest.raises(ConfigError, match="device: expected 'cpu' or 'auto' with backend 'onnx'"):
        Settings(backend="onnx", device="cuda")
