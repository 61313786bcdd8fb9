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


ROOT = Path(__file__).parents[2]


def test_the_readme_hard_codes_no_test_counts() -> None:
    """Counts of tests go stale with the next test; the README names none."""
    import re

    found = re.findall(
        r"\b\d[\d,]* (?:pytest |vitest |unit |integration |browser )?tests\b", README
    )
    assert found == []


def test_the_int8_speed_up_range_is_the_one_the_raw_json_gives() -> None:
    """README and BENCHMARKS.md state the int8 / fp32 ceiling range of every committed run
    that measured both (``int8`` beside ``base`` in the bench's JSON), slowest run included."""
    import json

    def pairs(node: object) -> list[tuple[float, float]]:
        if isinstance(node, dict):
            if isinstance(node.get("base"), dict) and isinstance(node.get("int8"), dict):
                return [(node["base"]["audio_s_per_s"], node["int8"]["audio_s_per_s"])]
            return [p for v in node.values() for p in pairs(v)]
        if isinstance(node, list):
            return [p for v in node for p in pairs(v)]
        return []

    ratios = [
        int8 / base
        for path in sorted((ROOT / "docs" / "benchmarks").rglob("*.json"))
        for base, int8 in pairs(json.loads(path.read_text()))
    ]
    assert ratios
    stated = f"{min(ratios):.2f}–{max(ratios):.1f}× the fp32 ceiling"
    assert stated in README
    assert stated in (ROOT / "BENCHMARKS.md").read_text()


def test_the_bad_message_allowance_is_stated_as_the_code_counts_it() -> None:
    from voxlive.server.budget import BAD_BEFORE_AUTH, BAD_LIMIT, BAD_WINDOW_S

    ordinal = {3: "third", 4: "fourth", 5: "fifth"}
    # bad() closes once the count passes the allowance: the (allowance + 1)-th message closes.
    assert f"a {ordinal[BAD_BEFORE_AUTH + 1]} bad message" in README
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert (
        f"more than {BAD_LIMIT} bad messages within {BAD_WINDOW_S:g} s "
        f"({BAD_BEFORE_AUTH} before authenticating)"
    ) in protocol


def test_the_memory_bound_in_the_readme_is_the_one_the_test_asserts() -> None:
    import re

    test = (ROOT / "tests" / "integration" / "test_attacks.py").read_text()
    first, per = re.search(
        r"FIRST_STREAMS_MIB, PER_CONNECTION_BOUND_MIB = (\d+), (\d+)", test
    ).groups()  # type: ignore[union-attr]
    assert (
        f"at most {first} MiB once for the first streams, then at most {per} MiB for"
        in " ".join(README.split())
    )
