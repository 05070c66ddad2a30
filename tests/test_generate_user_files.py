"""Regenerating a project never destroys the user's work (issue 11).

``generate`` records the digest of every file it writes in ``tinyedge.json`` (``files``). Over an
existing project it replaces its own untouched files, keeps the files the user added and the bodies of
the ``USER CODE`` sections, and refuses to overwrite a generated file the user edited unless ``force``.
Everything here writes projects without PlatformIO or QEMU: the model is built with tflite_builder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tflite_builder import ModelBuilder, options
from tinyedge.cli import cli
from tinyedge.errors import TinyedgeError
from tinyedge.firmware import generate_project
from tinyedge.firmware.generate import EditedFilesError, owned_digest
from tinyedge.model import Graph, read_model_bytes

pytestmark = pytest.mark.unit

BOARD = "qemu-mps2-an385"  # bare metal: startup.c, linker.ld, te_port.c
ARDUINO_BOARD = "nano33ble"  # Arduino framework: te_port.cpp, no startup.c

INIT_CODE = "    app_init(); /* my init */\n"
INCLUDE_CODE = '#include "my_sensor.h"\n'


def fc_model(seed: int = 0) -> Graph:
    """int8 (1,16) -> FC 4; ``seed`` changes the weights (so the model's C files change)."""
    b = ModelBuilder()
    x = b.tensor((1, 16), "INT8", scale=0.05, zero_point=-3)
    w = b.tensor((4, 16), "INT8", scale=0.02, zero_point=0, data=(np.arange(64).reshape(4, 16) + seed) % 7 - 3)
    bias = b.tensor((4,), "INT32", scale=0.001, zero_point=0, data=np.arange(4) - 2)
    y = b.tensor((1, 4), "INT8", scale=0.2, zero_point=5)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return read_model_bytes(b.build([x], [y]), name="fc")


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fresh(graph: Graph, board: str, where: Path) -> dict[str, bytes]:
    """What generating into a new folder writes."""
    generate_project(graph, board, where)
    return snapshot(where)


def manifest_files(project: Path) -> dict[str, str]:
    files = json.loads((project / "tinyedge.json").read_text())["files"]
    assert isinstance(files, dict)
    return files


def fill_section(text: str, name: str, code: str) -> str:
    """``text`` with the body of user section ``name`` replaced by ``code``."""
    lines = text.splitlines(keepends=True)
    begin = next(i for i, ln in enumerate(lines) if ln.strip() == f"/* USER CODE BEGIN {name} */")
    end = next(i for i, ln in enumerate(lines) if ln.strip() == f"/* USER CODE END {name} */")
    return "".join(lines[:begin + 1] + [code] + lines[end:])


def test_manifest_records_every_generated_file(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(), BOARD, p)
    files = manifest_files(p)
    on_disk = {rel for rel in snapshot(p) if rel != "tinyedge.json"}
    assert set(files) == on_disk and {"src/main.c", "model.tflite", "platformio.ini"} <= on_disk
    assert files["model.tflite"] == hashlib.sha256((p / "model.tflite").read_bytes()).hexdigest()


def test_added_files_are_kept_and_untouched_owned_files_replaced(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(0), BOARD, p)
    (p / "NOTES.md").write_text("my notes\n")
    (p / "src" / "my_sensor.c").write_text("int my_sensor(void) { return 42; }\n")
    (p / ".pio" / "build").mkdir(parents=True)
    (p / ".pio" / "build" / "cache.o").write_bytes(b"\x7fELF")
    generate_project(fc_model(1), BOARD, p)
    assert (p / "NOTES.md").read_text() == "my notes\n"
    assert (p / "src" / "my_sensor.c").read_text() == "int my_sensor(void) { return 42; }\n"
    assert (p / ".pio" / "build" / "cache.o").read_bytes() == b"\x7fELF"
    want = fresh(fc_model(1), BOARD, tmp_path / "ref")
    got = snapshot(p)
    assert want["model.tflite"] != fresh(fc_model(0), BOARD, tmp_path / "ref0")["model.tflite"]
    for rel, data in want.items():
        assert got[rel] == data, rel  # every generated file (the manifest too) as a new project has it


def test_edited_file_is_refused_without_force_and_replaced_with_force(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(0), BOARD, p)
    main = p / "src" / "main.c"
    edited = main.read_text().replace('say("m-init-done");', 'say("m-init-done");\n    my_app_start();')
    main.write_text(edited)
    before = snapshot(p)
    with pytest.raises(EditedFilesError) as err:
        generate_project(fc_model(1), BOARD, p)
    assert err.value.files == ["src/main.c"]
    msg = str(err.value)
    assert "src/main.c" in msg and "--force" in msg and "USER CODE" in msg and "files you add" in msg
    assert snapshot(p) == before  # checked before anything is written: not even the model files changed
    generate_project(fc_model(1), BOARD, p, force=True)
    assert snapshot(p) == fresh(fc_model(1), BOARD, tmp_path / "ref")


def test_user_sections_survive_regeneration_and_are_no_edit(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(0), BOARD, p)
    main = p / "src" / "main.c"
    text = fill_section(fill_section(main.read_text(), "includes", INCLUDE_CODE), "init", INIT_CODE)
    assert INIT_CODE in text and INCLUDE_CODE in text
    main.write_text(text)
    digest = manifest_files(p)["src/main.c"]
    assert owned_digest(text.encode()) == digest
    generate_project(fc_model(1), BOARD, p)  # no EditedFilesError: the edit is inside user sections
    assert main.read_text() == text
    assert manifest_files(p)["src/main.c"] == digest
    # With --force over an edit outside the sections, the sections still come through.
    main.write_text(text.replace("int main(void) {", "int main(void) { /* mine */"))
    generate_project(fc_model(1), BOARD, p, force=True)
    assert main.read_text() == text


def test_old_style_project_without_manifest_files(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(0), BOARD, p)
    (p / "NOTES.md").write_text("keep\n")
    manifest = json.loads((p / "tinyedge.json").read_text())
    del manifest["files"]
    (p / "tinyedge.json").write_text(json.dumps(manifest))
    # Identical to what tinyedge generates now: regenerated, the added file kept, a manifest written.
    generate_project(fc_model(0), BOARD, p)
    assert (p / "NOTES.md").read_text() == "keep\n" and "src/main.c" in manifest_files(p)
    # A file differs from what tinyedge would generate now (an edit, or an older tinyedge): refused.
    (p / "tinyedge.json").write_text(json.dumps(manifest))
    (p / "src" / "te_port.c").write_text((p / "src" / "te_port.c").read_text() + "/* mine */\n")
    with pytest.raises(EditedFilesError) as err:
        generate_project(fc_model(0), BOARD, p)
    assert err.value.files == ["src/te_port.c"] and "predates" in str(err.value)
    assert (p / "src" / "te_port.c").read_text().endswith("/* mine */\n")
    generate_project(fc_model(0), BOARD, p, force=True)
    assert snapshot(p)["src/te_port.c"] == fresh(fc_model(0), BOARD, tmp_path / "ref")["src/te_port.c"]
    assert (p / "NOTES.md").read_text() == "keep\n"


def test_another_board_removes_stale_generated_files_but_not_edited_ones(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(), BOARD, p)
    (p / "src" / "app.c").write_text("int app;\n")
    generate_project(fc_model(), ARDUINO_BOARD, p)
    assert not (p / "src" / "startup.c").exists() and (p / "src" / "te_port.cpp").is_file()
    assert (p / "src" / "app.c").read_text() == "int app;\n"
    want = fresh(fc_model(), ARDUINO_BOARD, tmp_path / "ref")
    assert {rel: d for rel, d in snapshot(p).items() if rel != "src/app.c"} == want
    # Back to the bare-metal board after editing a file that board does not generate: refused.
    (p / "src" / "te_port.cpp").write_text("// my port\n")
    with pytest.raises(EditedFilesError, match="src/te_port.cpp"):
        generate_project(fc_model(), BOARD, p)
    assert (p / "src" / "te_port.cpp").read_text() == "// my port\n"


def test_interrupted_regeneration_can_be_repeated(tmp_path):
    # Files replaced, manifest not yet written (a crash in between): the next run must not call them edits.
    p = tmp_path / "p"
    generate_project(fc_model(0), BOARD, p)
    (p / "NOTES.md").write_text("keep\n")
    old_manifest = (p / "tinyedge.json").read_bytes()
    generate_project(fc_model(1), BOARD, p)
    (p / "tinyedge.json").write_bytes(old_manifest)
    generate_project(fc_model(1), BOARD, p)
    assert snapshot(p) == {**fresh(fc_model(1), BOARD, tmp_path / "ref"), "NOTES.md": b"keep\n"}


def test_tampered_manifest_cannot_reach_outside_the_project(tmp_path):
    p = tmp_path / "p"
    generate_project(fc_model(), BOARD, p)
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    manifest = json.loads((p / "tinyedge.json").read_text())
    manifest["files"]["../outside.txt"] = owned_digest(b"mine\n")
    manifest["files"][str(outside)] = owned_digest(b"mine\n")
    (p / "tinyedge.json").write_text(json.dumps(manifest))
    generate_project(fc_model(), BOARD, p)
    assert outside.read_text() == "mine\n"


def test_out_under_a_regular_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a folder\n")
    with pytest.raises(TinyedgeError) as err:
        generate_project(fc_model(), BOARD, f / "proj")
    assert str(f) in str(err.value) and "is a file" in str(err.value) and "Try:" in str(err.value)
    assert f.read_text() == "not a folder\n"


def test_out_in_proc(tmp_path):
    with pytest.raises(TinyedgeError) as err:
        generate_project(fc_model(), BOARD, "/proc/tinyedge-project")
    assert "cannot write the project to /proc/tinyedge-project" in str(err.value) and "Try:" in str(err.value)


def _cli(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_generate_refuses_an_edit_then_force_overwrites_it(tmp_path):
    m = tmp_path / "fc.tflite"
    m.write_bytes(fc_model().model_bytes)
    p = tmp_path / "p"
    assert _cli("generate", m, "--board", BOARD, "-o", p).exit_code == 0
    (p / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (p / "NOTES.md").write_text("keep\n")
    r = _cli("generate", m, "--board", BOARD, "-o", p)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "src/main.c" in errors[0] and "--force" in errors[0], r.output
    assert (p / "src" / "main.c").read_text() == "int main(void) { return 0; }\n"
    r = _cli("generate", m, "--board", BOARD, "-o", p, "--force")
    assert r.exit_code == 0, r.output
    assert "USER CODE BEGIN init" in (p / "src" / "main.c").read_text()
    assert (p / "NOTES.md").read_text() == "keep\n"


@pytest.mark.parametrize("where", ["file", "proc"])
def test_cli_generate_unwritable_out_is_one_error_line(tmp_path, where):
    m = tmp_path / "fc.tflite"
    m.write_bytes(fc_model().model_bytes)
    out = m / "proj" if where == "file" else Path("/proc/tinyedge-project")
    r = _cli("generate", m, "--board", BOARD, "-o", out)
    assert r.exit_code == 2 and "Traceback" not in r.output and not isinstance(r.exception, OSError), r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(out) in errors[0] and "Try:" in errors[0], r.output
