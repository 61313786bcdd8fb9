"""scripts/system-deps.sh, which `make test` runs before any test: it installs the missing Debian
packages when it can, and otherwise stops with the exact command to run. Run with fake `id`,
`sudo` and `apt-get` on PATH, so no case touches the real system."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import MS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-deps.sh"
BASH = "/bin/bash"


def fake_bin(tmp: Path, *, uid: int, sudo_ok: bool, apt: bool = True) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    sudo_body = '"$@"' if sudo_ok else "exit 1"
    tools = {
        "id": f"#!{BASH}\necho {uid}\n",
        "sudo": f'#!{BASH}\n[ "$1" = -n ] && shift\n{sudo_body}\n',
    }
    if apt:
        tools["apt-get"] = f'#!{BASH}\necho "$*" >> {tmp}/apt-calls\n'
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run(tmp: Path, deps: str, **fake: bool | int) -> subprocess.CompletedProcess[str]:
    path = fake_bin(tmp, **fake)  # type: ignore[arg-type]
    env = {"PATH": str(path), "VOXLIVE_SYSTEM_DEPS": deps}
    return subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30_000 * MS
    )


def apt_calls(tmp: Path) -> list[str]:
    calls = tmp / "apt-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_nothing_missing_does_nothing(tmp_path: Path) -> None:
    out = run(tmp_path, "id:procps", uid=1000, sudo_ok=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    assert apt_calls(tmp_path) == []


def test_without_root_or_sudo_it_stops_with_the_command_to_run(tmp_path: Path) -> None:
    out = run(tmp_path, "id:procps no-such-browser:chromium no-such-nginx:nginx",
              uid=1000, sudo_ok=False)  # fmt: skip
    assert out.returncode == 2
    assert "missing: chromium nginx" in out.stderr
    assert (
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium nginx"
        in out.stderr
    )
    assert apt_calls(tmp_path) == []  # nothing was attempted


def test_not_debian_names_the_packages(tmp_path: Path) -> None:
    out = run(tmp_path, "no-such-browser:chromium", uid=0, sudo_ok=False, apt=False)
    assert out.returncode == 2
    assert "not a Debian/Ubuntu system" in out.stderr and "chromium" in out.stderr


@pytest.mark.parametrize(("uid", "sudo_ok"), [(0, False), (1000, True)])
def test_root_or_passwordless_sudo_installs_exactly_what_is_missing(
    tmp_path: Path, uid: int, sudo_ok: bool
) -> None:
    out = run(tmp_path, "id:procps no-such-browser:chromium no-such-nginx:nginx",
              uid=uid, sudo_ok=sudo_ok)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert apt_calls(tmp_path) == [
        "update -qq",
        "install -y -qq --no-install-recommends chromium nginx",
    ]


def test_check_only_reports(tmp_path: Path) -> None:
    out = subprocess.run(
        [BASH, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30_000 * MS,
        env={"PATH": str(fake_bin(tmp_path, uid=0, sudo_ok=True)), "VOXLIVE_SYSTEM_DEPS": "nope:pkg"},
    )  # fmt: skip
    assert out.returncode == 1 and "missing system packages: pkg" in out.stdout
    assert apt_calls(tmp_path) == []
