"""Shared test fixtures: where the reference data lives."""

import os
from pathlib import Path

import pytest

# Under pytest-xdist (the README runs `-n 2`), two worker processes each run torch with one OpenMP thread per
# core. By default libgomp's idle threads spin for a while after every parallel region, on the core the other
# worker needs: the suite took 9:00 with `-n 2` against 11:04 serial, and 6:06 with PASSIVE (threads sleep
# when idle; 2 cores, user time 16:10 -> 10:11). libgomp reads the variable when torch loads it, so this must
# come before any test module imports torch; a variable the user set wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """`$YOLOSTREAM_FIXTURES`, else `../shared/fixtures` beside the repo."""
    env = os.environ.get("YOLOSTREAM_FIXTURES")
    path = Path(env) if env else REPO.parent / "shared" / "fixtures"
    if not (path / "checkpoints").is_dir():
        raise RuntimeError(
            f"reference fixtures not found at {path}: set YOLOSTREAM_FIXTURES to the folder holding checkpoints/"
        )
    return path


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return fixtures_dir()
