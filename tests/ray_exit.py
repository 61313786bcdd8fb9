"""A pytest plugin (loaded by tests/conftest.py): a test process that has run Ray ends with
``os._exit`` once pytest has written its summary, with pytest's own exit status.

Why: ``ray.shutdown()`` does not stop everything Ray started in the driver. Seen at exit of a
full ``make test`` run (2026-12-07): Serve's router event-loop thread (a daemon thread with no
public way to stop it) and Ray's C++ threads (``gcs_client_io_s``, ``worker.io``, gRPC's
``event_engine``, ``client.poll0``) still running. The interpreter's teardown then runs C++
static destructors under those live threads, and one CI run died with SIGSEGV *after*
"1081 passed", so CI failed on nothing the tests found. Ending the process without that
teardown is what Ray's driver threads need; the status is pytest's, so a failing test still
fails the run (tests/integration/test_ray_exit.py checks both).

Only a process that imported Ray is ended this way; every other run exits normally.
"""

from __future__ import annotations

import os
import sys

import pytest

_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status[:] = [int(exitstatus)]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if "ray" not in sys.modules or not _status:
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    os._exit(_status[0])
