import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def shared_model(name: str) -> Path:
    """A model from ../shared/models, or skip with the reason when ../shared is absent."""
    p = SHARED_MODELS / name
    if not p.is_file():
        pytest.skip(f"{p} is not present (the MLPerf Tiny reference models live in ../shared/models)")
    return p
