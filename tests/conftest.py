"""Shared test fixtures: paths to the real data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def goldcape() -> Path:
    path = SHARED_DATA / "goldcape"
    if not path.is_dir():
        pytest.skip(f"real data not present at {path}")
    return path


@pytest.fixture
def fox() -> Path:
    path = SHARED_DATA / "fox"
    if not path.is_dir():
        pytest.skip(f"real data not present at {path}")
    return path
