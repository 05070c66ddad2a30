import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tinyedge.firmware import provision
from tinyedge.quantize import quantize_model

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Test tiers (registered in pyproject.toml); every test carries exactly one.
TIERS = ("unit", "slow", "hil")
_TF_BEFORE = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The hardware-in-the-loop suite's options (tests/test_hil.py): which board, where it is."""
    group = parser.getgroup("tinyedge hil", "hardware in the loop (pytest -m hil)")
    group.addoption("--board", default=None, metavar="ID", help="board id of the attached board, e.g. nucleo_l4r5zi")
    group.addoption("--port", default=None, metavar="PORT",
                    help="its serial port (e.g. /dev/ttyACM0) or a pyserial URL (socket://, rfc2217://)")
    group.addoption("--place", default=None, metavar="NAME",
                    help="a labgrid place holding the board (instead of --port)")
    group.addoption("--power-trace", default=None, metavar="CSV",
                    help="a power-monitor trace (tinyedge.score.energy format) of the board running the KWS firmware")


def pytest_configure(config: pytest.Config) -> None:
    """Caches shared by this run's xdist workers (and kept between runs in .pytest_cache), never the user's:
    tinyedge's cache (host kernel objects, tune results) and PlatformIO's object cache (``build_cache_dir``),
    so a runtime source compiled with the same flags for the next project is a copy, not a compile. Both are
    keyed by content: a build is what it would be without them."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        root = Path(cache.mkdir("tinyedge-caches"))
    else:  # -p no:cacheprovider: this process's own, removed at exit
        root = Path(tempfile.mkdtemp(prefix="te-caches-"))
        atexit.register(shutil.rmtree, root, True)
    os.environ["TINYEDGE_CACHE_DIR"] = str(root / "tinyedge")
    os.environ["PLATFORMIO_BUILD_CACHE_DIR"] = str(root / "pio-build")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test without a tier (or with two) fails: `-m unit` must mean what it says. Then note whether
    TensorFlow was loaded before this test (see the teardown check)."""
    tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
    if len(tiers) != 1:
        pytest.fail(f"{item.nodeid} has {' and '.join(tiers) or 'no tier'}: give it exactly one of "
                    + ", ".join(f"@pytest.mark.{t}" for t in TIERS)
                    + " (a module-level `pytestmark` where the whole module is one tier)", pytrace=False)
    item.stash[_TF_BEFORE] = "tensorflow" in sys.modules


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """A `unit` test that imported TensorFlow (itself or through its fixtures) is an error: mark it `slow`."""
    result = yield
    if item.get_closest_marker("unit") and not item.stash.get(_TF_BEFORE, True) and "tensorflow" in sys.modules:
        pytest.fail(f"{item.nodeid} is marked unit but imported tensorflow: mark it slow", pytrace=False)
    return result


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
    out = tmp_path_factory.mktemp("digits-int8") / "digits.tflite"
    quantize_model(digits["model"], digits["calib"], out)
    return out


@pytest.fixture(scope="session")
def pio_core(tmp_path_factory) -> Path:
    """A private PlatformIO core folder with tool-scons provisioned (never the user's ~/.platformio)."""
    core = tmp_path_factory.mktemp("pio-core")
    provision(core)
    return core
