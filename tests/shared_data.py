"""Where the shared data folder (real VG150 files, golden fixtures) is, and what to do without it."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SGG_SHARED_DIR", REPO_ROOT.parent / "shared"))


def require_shared(*parts: str) -> Path:
    """``SHARED_DIR/parts...``; skip the test when absent, except on CI (``CI`` set) where it must exist."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        reason = f"{path} not found (set SGG_SHARED_DIR to the shared data folder)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path
