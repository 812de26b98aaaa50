"""Shared test fixtures: where the reference data lives."""

import os
from pathlib import Path

import pytest

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
