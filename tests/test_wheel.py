"""The data folders ship inside the wheel: build it, install it into a fresh venv, list the boards."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_boards_renode_and_lists_boards(tmp_path):
    dist = tmp_path / "dist"
    # --no-isolation: hatchling is in the dev extra, so no index is needed at test time.
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    wheel = next(dist.glob("tinyedge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("tinyedge/_data/boards/qemu-mps2-an386.yaml", "tinyedge/runtime/main.c",
                   "tinyedge/runtime/te_kernels.c", "tinyedge/_data/firmware_templates/te_model.c.j2",
                   "tinyedge/_data/renode/README.md",
                   "tinyedge/firmware/platform/platform.json", "tinyedge/firmware/platform/builder/main.py"):
        assert needed in names, f"{needed} missing from {wheel.name}"

    venv = tmp_path / "venv"
    # The fresh venv sees the already-installed dependencies, but tinyedge only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([venv / "bin" / "tinyedge", "boards"], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "200"}).stdout
    assert "qemu-mps2-an386" in out
    where = subprocess.run([py, "-c", "import tinyedge.paths as p; print(p.templates_dir(), p.runtime_dir())"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "site-packages/tinyedge/_data/firmware_templates" in where, where
    assert "site-packages/tinyedge/runtime" in where, where
