"""tests/ray_exit.py ends a test process that imported Ray without the interpreter's teardown:
the exit status must still be pytest's, its summary printed, and a process without Ray must
exit normally (its atexit handlers run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.ray

TEST_FILE = """
import atexit

{imports}

atexit.register(lambda: print("TEARDOWN RAN", flush=True))


def test_one():
    assert {outcome}
"""


def _pytest(tmp_path: Path, imports: str, outcome: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_child.py").write_text(TEST_FILE.format(imports=imports, outcome=outcome))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.ray_exit",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path / "test_child.py")],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("outcome", "status", "summary"), [("True", 0, "1 passed"),
                                                            ("False", 1, "1 failed")])  # fmt: skip
def test_a_process_that_imported_ray_ends_with_pytests_status_and_no_teardown(
    tmp_path: Path, outcome: str, status: int, summary: str
) -> None:
    pytest.importorskip("ray")
    done = _pytest(tmp_path, "import ray  # noqa: F401", outcome)
    assert done.returncode == status, done.stdout + done.stderr
    assert summary in done.stdout
    assert "TEARDOWN RAN" not in done.stdout


def test_a_process_without_ray_exits_normally(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "", "False")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout
    assert "TEARDOWN RAN" in done.stdout
