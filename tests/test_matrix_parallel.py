"""``matrix --run -j 2``: the matrix only needs each board's figures, so its per-board report.html carries the
tables but no plots (drawing them is seconds of pure-Python matplotlib per board, which boards running at
once in threads take turns at); ``tinyedge score`` itself still draws them."""

from __future__ import annotations

import shutil

import pytest

from tinyedge.matrix import compatibility_matrix

BOARDS = ("qemu-mps2-an385", "qemu-mps2-an386")
needs_qemu = pytest.mark.skipif(not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
                                reason="needs qemu-system-arm and arm-none-eabi-gcc")


@pytest.mark.slow
@needs_qemu
def test_boards_at_once_write_their_figures_without_plots(digits_tflite, pio_core, tmp_path):
    m = compatibility_matrix(digits_tflite, ",".join(BOARDS), run=True, samples=2, jobs=2, work_dir=tmp_path / "runs",
                             core_dir=pio_core)
    assert [r.board for r in m.rows] == list(BOARDS)
    for r in m.rows:
        assert r.measured is not None, r.run_error
        assert r.measured.parity == 1.0 and r.measured.samples == 2
        html = (tmp_path / "runs" / r.board / "score" / "report.html").read_text()
        assert "<table" in html and "data:image/png" not in html  # the figures, not the plots
