import argparse
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from voxlive import cli
from voxlive.errors import ConfigError
from voxlive.settings import Settings, choices, sections
from voxlive.settings_sources import build, flag

ROOT = Path(__file__).resolve().parents[2]


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
        ({"device": "tpu"}, {}, r"device \(--device\): expected one of auto, cpu, cuda, got 'tpu'"),
        (
            {},
            {"VOXLIVE_ENGINE": "rey"},
            r"engine \(VOXLIVE_ENGINE\): expected one of local, ray, got 'rey'",
        ),
        ({"gate_rms": "-1"}, {}, "gate_rms"),
        ({"smoothing": "0"}, {}, "smoothing: expected 1..100"),
        ({"agent_port": "70000"}, {}, r"agent_port: expected 0..65535 \(0: off\), got 70000"),
        ({}, {"VOXLIVE_AGENT_DRAIN_AT": "0"}, "agent_drain_at: expected 0 < agent_drain_at <= 1"),
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


def test_settings_refuse_int8_without_onnx_and_onnx_on_cuda_or_in_a_half_type() -> None:
    with pytest.raises(ConfigError, match="quantize: expected 'none' unless backend is 'onnx'"):
        Settings(quantize="int8")
    with pytest.raises(ConfigError, match="device: expected 'cpu' or 'auto' with backend 'onnx'"):
        Settings(backend="onnx", device="cuda")
    with pytest.raises(
        ConfigError, match=r"dtype: expected 'auto' or 'float32' with backend 'onnx' .*'float16'"
    ):
        Settings(backend="onnx", dtype="float16")
    assert Settings(backend="onnx", dtype="float32").dtype == "float32"


# ---- typed choices ---------------------------------------------------------------------------
LITERAL_SETTINGS = {"fallback", "device", "backend", "quantize", "dtype", "engine", "gate",
                    "status_access", "log_level"}  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """The commands that take the server's settings (``stream`` is a client: it takes none)."""
    parser = cli._parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: p for name, p in sub.choices.items() if name != "stream"}


def test_every_choice_setting_is_a_literal_whose_values_are_the_cli_choices() -> None:
    hints = typing.get_type_hints(Settings)
    literal = {n for n, t in hints.items() if typing.get_origin(t) is typing.Literal}
    assert literal == LITERAL_SETTINGS
    for command, parser in _subparsers().items():
        by_dest = {a.dest: a for a in parser._actions}
        for name in literal:
            assert tuple(by_dest[name].choices or ()) == typing.get_args(hints[name]), (
                command,
                name,
            )
            assert choices(name) == typing.get_args(hints[name])
            assert by_dest[name].default is None  # so the environment can still fill it


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["serve", "--device", "gpu"],
            "argument --device: expected one of auto, cpu, cuda, got 'gpu'",
        ),
        (
            ["classify", "x.wav", "--gate", "loud"],
            "argument --gate: expected one of vad, rms, none, got 'loud'",
        ),
        (["serve", "--status-access", "Token"], "expected one of public, token, got 'Token'"),
    ],
)
def test_the_cli_refuses_a_value_outside_the_choices(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_a_settings_object_refuses_a_value_outside_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^gate: expected one of vad, rms, none, got 'loud'$"):
        Settings(gate="loud")  # type: ignore[arg-type]
    # the choice comes first: not "status_access: expected 'public' unless a token is set"
    with pytest.raises(ConfigError, match=r"^status_access: expected one of public, token"):
        Settings(status_access="tokens")  # type: ignore[arg-type]


def test_mypy_refuses_a_comparison_with_a_value_the_type_does_not_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "typo.py"
    snippet.write_text(
        "from voxlive.settings import Settings\n"
        "def ray(s: Settings) -> bool:\n"
        "    return s.engine == 'rey'\n"
        "def local(s: Settings) -> bool:\n"
        "    return s.engine == 'local'\n"
    )
    monkeypatch.setenv("MYPYPATH", str(ROOT / "src"))  # this tree's voxlive, not an installed one
    out, _, status = api.run([str(snippet), "--strict", "--follow-imports=silent",
                              "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert status == 1, out
    [error] = [line for line in out.splitlines() if ": error:" in line]
    assert "typo.py:3:" in error and "Non-overlapping equality check" in error
    assert "Literal['local', 'ray']" in error


# ---- sections --------------------------------------------------------------------------------
def test_every_setting_has_a_section_and_the_sections_are_contiguous() -> None:
    names = [f.name for f in dataclasses.fields(Settings)]
    assert [n for group in sections().values() for n in group] == names
    assert list(sections()) == ["server", "model", "Ray", "windows and batching", "gate",
                                "limits", "access", "uploads", "timeouts", "routing"]  # fmt: skip


def test_the_serve_help_groups_the_flags_by_section() -> None:
    serve = _subparsers()["serve"]
    groups = {g.title: [a.dest for a in g._group_actions] for g in serve._action_groups}
    for title, names in sections().items():
        assert groups[title] == list(names)


def test_the_readme_table_groups_the_settings_under_the_same_headings() -> None:
    """The configuration table has a bold heading row per section, then that section's rows."""
    text = (ROOT / "README.md").read_text()
    found: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if m := re.match(r"^\| \*\*(.+?)\*\* \|", line):
            heading = m.group(1).split(" (")[0].lower()  # "Uploads (`POST /classify`)"
            found[heading] = []
        elif heading is not None and (m := re.match(r"^\| `(--[a-z-]+)` \| `VOXLIVE_", line)):
            found[heading].append(m.group(1))
    expected = {t.lower(): [flag(n) for n in names] for t, names in sections().items()}
    assert found == expected


@pytest.mark.parametrize("pattern", ["a*b", "*x.example.com", "**.example.com", "x.*.com"])
def test_host_patterns_the_host_check_cannot_read_are_refused_at_startup(pattern: str) -> None:
    """Starlette's host check takes '*' or a leading '*.' only: anything else failed at the first
    request (an AssertionError), so it is refused here with the key named."""
    with pytest.raises(ConfigError, match="allowed_hosts: expected '\\*', host names or"):
        Settings(allowed_hosts=("localhost", pattern))
    Settings(allowed_hosts=("*.example.com", "localhost", "*"))  # these are fine


def test_every_command_prints_its_help() -> None:
    """argparse %-formats help texts: a setting whose help holds a literal "%" once broke
    ``voxlive serve --help`` (and bench, classify) with a ValueError."""
    [sub] = [a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"serve", "classify", "bench", "stream"} <= set(sub.choices)
    for name, parser in sub.choices.items():
        text = parser.format_help()
        assert "usage: " in text, name
    assert "'up ready 73%'" in _subparsers()["serve"].format_help()
