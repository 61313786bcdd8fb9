"""Where a benchmark's figures came from, written beside them in every raw JSON a bench tool
writes: the commit, the UTC clock at start and end, the machine's load average before and
after, the CPU, the exact command line and the settings the tool ran with.

A tool calls :func:`begin` before it measures anything and puts :meth:`Began.end`'s dict in its
report under ``"provenance"``::

    began = provenance.begin({"settings": settings, "sizes": sizes})
    ...  # the measurements
    report["provenance"] = began.end()

What each key means (``None``: could not be read here, never a guess):

- ``commit``: ``git rev-parse HEAD`` of the source checkout voxlive runs from; ``None`` when it
  does not run from a git checkout (an installed wheel). ``dirty``: tracked files differ from
  that commit (``git describe --dirty``'s rule: untracked files do not count); ``None`` with no
  commit.
- ``started_utc``, ``ended_utc``: ISO 8601, UTC, to the second (``2026-12-07T03:14:05Z``).
- ``load_before``, ``load_after``: the 1, 5 and 15 minute load averages (``/proc/loadavg``):
  on a shared machine, how busy it was around the run.
- ``cpu_model`` (``/proc/cpuinfo``'s first ``model name``), ``cpus`` (its processors, else
  ``os.cpu_count()``) and ``usable_cpus`` (this process's CPU affinity).
- ``command``: the process's own command line (``sys.orig_argv``: interpreter and ``-m``
  included), ``cwd`` (relative paths in it are relative to this), ``environment``: the
  ``VOXLIVE_*`` variables set.
- ``settings``: what the tool was asked to run with (server settings, flags, load options).

Secrets never reach the file: a value whose key names a token, secret or password, and the
value after such a flag on a command line, are written as ``"(set)"``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROC = Path("/proc")
HIDDEN = "(set)"
SECRET = re.compile(r"token|secret|password", re.IGNORECASE)
Git = Callable[[Sequence[str]], str | None]  # git's stdout for these arguments, None: failed


def checkout() -> Path | None:
    """The git checkout voxlive is imported from (``src/voxlive``'s grandparent), or ``None``
    when it is installed elsewhere (an installed wheel sits in no checkout of its own)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / ".git").exists() and (root / "src" / "voxlive").is_dir() else None


def run_git(root: Path | None) -> Git:
    """A :data:`Git` that runs ``git -C root`` (10 s at most); every call fails without a
    checkout or a ``git`` to run."""

    def git(args: Sequence[str]) -> str | None:
        if root is None:
            return None
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    return git


def commit(git: Git) -> tuple[str | None, bool | None]:
    """(HEAD, whether tracked files differ from it); ``(None, None)`` outside a checkout."""
    head = (git(["rev-parse", "HEAD"]) or "").strip()
    if not head:
        return None, None
    status = git(["status", "--porcelain", "--untracked-files=no"])
    return head, None if status is None else bool(status.strip())


def load_average(proc: Path = PROC) -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where ``/proc/loadavg`` is unreadable."""
    try:
        return [float(x) for x in (proc / "loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def cpu(proc: Path = PROC) -> dict[str, Any]:
    """``cpu_model``, ``cpus`` and ``usable_cpus`` (see the module's docstring)."""
    model, processors = None, 0
    try:
        for line in (proc / "cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "processor":
                processors += 1
            elif key.strip() == "model name" and model is None:
                model = value.strip()
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_model": model, "cpus": processors or os.cpu_count(), "usable_cpus": usable}


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hide_flags(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every secret flag (``--token X``, ``--token=X``) hidden."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and SECRET.search(out[-1]) and "=" not in out[-1]:
            out.append(HIDDEN)
        elif arg.startswith("--") and "=" in arg and SECRET.search(arg.partition("=")[0]):
            out.append(arg.partition("=")[0] + "=" + HIDDEN)
        else:
            out.append(arg)
    return out


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: dataclasses and mappings as objects (secret keys' values hidden),
    sequences as arrays (a list of strings read as a command line), paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): HIDDEN if SECRET.search(str(k)) and value[k] else jsonable(value[k])
                for k in value}  # fmt: skip
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if items and all(isinstance(x, str) for x in items):
            return hide_flags(items)
        return [jsonable(x) for x in items]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass(frozen=True)
class Began:
    """What :func:`begin` recorded; :meth:`end` adds the end time and the load after."""

    commit: str | None
    dirty: bool | None
    started_utc: str
    load_before: list[float] | None
    cpu: dict[str, Any]
    command: str
    cwd: str
    environment: dict[str, str]
    settings: Any
    proc: Path = field(default=PROC, repr=False)
    clock: Callable[[], str] = field(default=utc_now, repr=False)

    def end(self) -> dict[str, Any]:
        """The provenance as the JSON holds it, ended now (call it once the measuring is done)."""
        return {
            "commit": self.commit, "dirty": self.dirty,
            "started_utc": self.started_utc, "ended_utc": self.clock(),
            "load_before": self.load_before, "load_after": load_average(self.proc),
            **self.cpu, "command": self.command, "cwd": self.cwd,
            "environment": self.environment, "settings": self.settings,
        }  # fmt: skip


def begin(
    settings: Any = None,
    *,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    proc: Path = PROC,
    git: Git | None = None,
    clock: Callable[[], str] = utc_now,
    cwd: str | None = None,
) -> Began:
    """Record the start of a measurement. ``settings``: what the tool runs with (a dataclass,
    a mapping of them, ...: made plain JSON by :func:`jsonable`). ``argv`` defaults to the
    process's own command line, ``environ`` to ``os.environ``, ``git`` to the checkout voxlive
    runs from; ``proc`` and ``clock`` are for tests. Blocking: it runs ``git`` twice."""
    env = os.environ if environ is None else environ
    head, dirty = commit(git or run_git(checkout()))
    return Began(
        commit=head, dirty=dirty, started_utc=clock(), load_before=load_average(proc),
        cpu=cpu(proc), command=shlex.join(hide_flags(sys.orig_argv if argv is None else argv)),
        cwd=os.getcwd() if cwd is None else cwd,
        environment={k: HIDDEN if SECRET.search(k) and v else v
                     for k, v in sorted(env.items()) if k.startswith("VOXLIVE_")},
        settings=jsonable(settings), proc=proc, clock=clock,
    )  # fmt: skip
