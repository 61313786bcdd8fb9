"""The README stays true: every setting is documented with its flag and variable."""

import dataclasses
from pathlib import Path

from voxlive.settings import Settings, env_name, flag

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for f in dataclasses.fields(Settings):
        assert f"| `{flag(f.name)}` | `{env_name(f.name)}` |" in README, f.name


def test_benchmark_figures_link_committed_raw_json() -> None:
    """BENCHMARKS.md's raw-JSON links point at files in the repository."""
    import re

    root = Path(__file__).parents[2]
    text = (root / "BENCHMARKS.md").read_text()
    links = re.findall(r"\]\((docs/benchmarks/[^)]+\.json)\)", text)
    assert links, "expected links to raw JSON under docs/benchmarks/"
    for link in links:
        assert (root / link).is_file(), link
