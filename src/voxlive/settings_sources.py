"""Where settings come from: one flag per setting (``--window-ms``) and one environment variable
(``VOXLIVE_WINDOW_MS``); the flag wins, then the variable, then the default
(:class:`voxlive.settings.Settings` holds the fields, their help and their checks)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

from voxlive.errors import ConfigError
from voxlive.settings import Settings, choices, field_types

ENV_PREFIX = "VOXLIVE_"


def _expected(name: str) -> str:
    if options := choices(name):
        return f"one of {', '.join(options)}"
    kind = field_types()[name]
    return "comma-separated values" if typing.get_origin(kind) is tuple else kind.__name__


def _convert(name: str, raw: str, source: str) -> Any:
    """``raw`` (a flag's or a variable's text) as setting ``name``'s type."""
    kind = field_types()[name]
    try:
        if kind is int or kind is float:
            return kind(raw)
        if typing.get_origin(kind) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if raw in choices(name) or not choices(name):
            return raw
    except ValueError:
        pass
    raise ConfigError(f"{name} ({source}): expected {_expected(name)}, got {raw!r}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse_choice(name: str) -> Callable[[str], str]:
    """An argparse ``type`` refusing a value outside the choices as ``build`` would say it."""

    def parse(raw: str) -> str:
        if raw not in choices(name):
            raise argparse.ArgumentTypeError(f"expected {_expected(name)}, got {raw!r}")
        return raw

    return parse


def add_arguments(parser: argparse.ArgumentParser, title: str = "{}") -> None:
    """One flag per setting, one argument group per section (``title`` formats its name); the
    defaults stay ``None`` so the environment can fill them."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(Settings):
        section = f.metadata["section"]
        if section not in groups:
            groups[section] = parser.add_argument_group(title.format(section))
        group = groups[section]
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        # argparse %-formats help texts: a literal "%" must be doubled
        text = f"{f.metadata['help']} [env {env_name(f.name)}, default {default!r}]"
        help = text.replace("%", "%%")
        if options := choices(f.name):  # argparse shows them: {auto,cpu,cuda}
            group.add_argument(flag(f.name), dest=f.name, default=None, help=help,
                               choices=options, type=_parse_choice(f.name))  # fmt: skip
        else:
            group.add_argument(flag(f.name), dest=f.name, default=None, help=help,
                               metavar=f.name.upper())  # fmt: skip


def build(args: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Settings from parsed flags (strings or None), then ``VOXLIVE_*`` variables, then defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = args.get(f.name)
        if raw is not None:
            values[f.name] = _convert(f.name, str(raw), flag(f.name))
        elif env_name(f.name) in environ:
            values[f.name] = _convert(f.name, environ[env_name(f.name)], env_name(f.name))
    return Settings(**values)
