"""The README stays true: every setting is documented with its flag and variable."""

import dataclasses
from pathlib import Path

from voxlive.settings import Settings, env_name, flag

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for f in dataclasses.fields(Settings):
        assert f"| `{flag(f.name)}` | `{env_name(f.name)}` |" in README, f.name
