import importlib.util
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


def _shared_cache(request, tmp_path_factory, name: str) -> Path:
    """A cache folder shared by all xdist workers of this run (and across runs via .pytest_cache)."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir(name))
    return tmp_path_factory.getbasetemp().parent / name


@pytest.fixture(scope="session")
def digits(request, tmp_path_factory) -> dict[str, Path]:
    """The trained digits example (examples/digits/train.py), trained once and cached."""
    spec = importlib.util.spec_from_file_location("digits_train", ROOT / "examples" / "digits" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.cached_train(_shared_cache(request, tmp_path_factory, "tinyedge-digits"))


@pytest.fixture(scope="session")
def digits_tflite(digits, tmp_path_factory) -> Path:
    """The digits model quantized to int8 by tinyedge.quantize."""
    from tinyedge.quantize import quantize_model

    out = tmp_path_factory.mktemp("digits-int8") / "digits.tflite"
    quantize_model(digits["model"], digits["calib"], out)
    return out


@pytest.fixture(scope="session")
def pio_core(tmp_path_factory) -> Path:
    """A private PlatformIO core folder with tool-scons provisioned (never the user's ~/.platformio)."""
    from tinyedge.firmware import provision

    core = tmp_path_factory.mktemp("pio-core")
    provision(core)
    return core
