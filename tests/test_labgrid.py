"""labgrid board farm: a real ``labgrid-coordinator`` and ``labgrid-exporter`` on 127.0.0.1 exporting two QEMU
boards' UARTs as ``NetworkSerialPort`` (raw TCP), places made with ``labgrid-client``; a two-board
``tinyedge matrix --run --places`` and ``score --place`` through them; a place held by another client is waited
for, then refused by name, never taken; and ``matrix --run -j 2`` over two local QEMU boards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyedge.cli import cli
from tinyedge.errors import BoardError, LinkError
from tinyedge.matrix import compatibility_matrix
from tinyedge.runners import LabgridPlaceRunner, deploy, find_places, free_port, parse_tags, runner_for
from tinyedge.runners.labgrid import serial_url
from tinyedge.runners.qemu import is_listening

BOARDS = ("qemu-mps2-an385", "qemu-mps2-an386")
needs_labgrid = pytest.mark.skipif(not shutil.which("labgrid-coordinator"),
                                   reason="needs labgrid (pip install labgrid)")
needs_qemu = pytest.mark.skipif(not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
                                reason="needs qemu-system-arm and arm-none-eabi-gcc")


# -- pure helpers ---------------------------------------------------------------------------------------
@pytest.mark.unit
def test_tag_filters_and_serial_urls():
    assert parse_tags("farm=ci, board=qemu-mps2-an386") == {"farm": "ci", "board": "qemu-mps2-an386"}
    for bad in ("", "farm", "=ci", "farm="):
        with pytest.raises(BoardError):
            parse_tags(bad)
    assert serial_url("NetworkSerialPort", {"host": "10.0.0.2", "port": 5000, "protocol": "raw"}) == \
        "socket://10.0.0.2:5000"
    assert serial_url("NetworkSerialPort", {"host": "farm", "port": 5001}) == "rfc2217://farm:5001"  # labgrid default
    assert serial_url("NetworkSerialPort", {"host": "::1", "port": 5002, "protocol": "rfc2217"}) == \
        "rfc2217://[::1]:5002"
    assert serial_url("NetworkPowerPort", {"host": "pdu", "index": 1}) is None


@pytest.mark.unit
def test_a_place_and_a_port_together_are_refused_before_anything_runs():
    with pytest.raises(BoardError, match="not both"):
        runner_for("qemu-mps2-an386", place="p", port="socket://127.0.0.1:1")
    with pytest.raises(BoardError, match="no flashing driver"):  # a real board on a place: refused before building
        runner_for("nucleo_l4r5zi", place="p")
    out = CliRunner().invoke(cli, ["score", "--data", "d.npz", "--model", "m.tflite", "-o", "o"])
    assert out.exit_code == 2 and "--port, or the labgrid --place" in out.output


# -- a real farm on 127.0.0.1 ---------------------------------------------------------------------------
def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s (exit {process.poll()})")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Farm:
    """A coordinator and exporters on 127.0.0.1; ``client`` runs labgrid-client against it (with a deadline)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        coordinator = self._spawn(["labgrid-coordinator", "-l", self.address], "coordinator", cwd=root)
        _wait_port(self.port, coordinator, "labgrid-coordinator")

    def _spawn(self, cmd: list[str], name: str, cwd: Path) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as f:
            p = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(p)
        return p

    def export(self, name: str, groups: dict[str, int]) -> None:
        """An exporter ``name`` publishing each group's raw TCP serial port; waits until the coordinator has them."""
        config = self.root / f"{name}.yaml"
        config.write_text("".join(f"{group}:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {port}\n"
                                  f"    protocol: raw\n" for group, port in groups.items()))
        self._spawn(["labgrid-exporter", "-c", self.address, "-n", name, "--hostname", "127.0.0.1", str(config)],
                    f"exporter-{name}", cwd=self.root)
        deadline = time.monotonic() + 30
        while True:
            listed = self.client("resources").stdout
            if all(f"{name}/{group}/NetworkSerialPort" in listed for group in groups):
                return
            assert time.monotonic() < deadline, f"the exporter's resources did not appear: {self.dump_logs()}"
            time.sleep(0.3)

    def client(self, *args: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LG_COORDINATOR": self.address}
        if user is not None:
            env["LG_USERNAME"] = user
        r = subprocess.run(["labgrid-client", *args], env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"labgrid-client {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    def place(self, name: str, match: str, **tags: str) -> None:
        self.client("-p", name, "create")
        self.client("-p", name, "add-match", match)
        self.client("-p", name, "set-tags", *(f"{k}={v}" for k, v in tags.items()))

    def holder(self, name: str) -> str:
        line = next(ln for ln in self.client("-p", name, "show").stdout.splitlines() if "acquired:" in ln)
        return line.split("acquired:", 1)[1].strip()

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs if p.is_file())

    def stop(self) -> None:
        for p in reversed(self.processes):
            _stop(p)


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    root = Path(tempfile.mkdtemp(prefix="tinyedge-farm-"))
    f = Farm(root)
    try:
        yield f
    finally:
        f.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@needs_labgrid
def test_a_place_held_by_another_client_is_waited_for_then_refused_never_taken(farm, tmp_path):
    farm.export("conflict", {"dut": free_port()})
    farm.place("held", "conflict/dut/NetworkSerialPort", board="qemu-mps2-an386", farm="conflict")
    farm.client("-p", "held", "acquire", user="alice")
    try:
        assert farm.holder("held").endswith("/alice")
        start = time.monotonic()
        with pytest.raises(LinkError, match=r"held by \S+/alice.*waited 1\.5 s") as err:
            with LabgridPlaceRunner("held", coordinator=farm.address, wait=1.5, poll=0.2) as runner:
                runner.connect()
        assert 1.5 <= time.monotonic() - start < 20
        assert "never takes a place" in err.value.hint
        assert farm.holder("held").endswith("/alice")  # untouched
        # The same through the command line: exit 2, the holder named, the lock kept.
        out = CliRunner().invoke(cli, ["score", "--place", "held", "--coordinator", farm.address, "--place-wait", "1",
                                       "--data", str(tmp_path / "none.npz"), "--model", str(tmp_path / "none.tflite"),
                                       "-o", str(tmp_path / "score")])
        assert out.exit_code != 0 and "held by" in out.output and "alice" in out.output, out.output
        assert farm.holder("held").endswith("/alice")
    finally:
        farm.client("-p", "held", "release", user="alice")
    # Free now: tinyedge acquires it, reads its serial port and releases it on exit.
    with LabgridPlaceRunner("held", coordinator=farm.address, wait=5) as runner:
        assert runner.connect().startswith("socket://127.0.0.1:")
        assert farm.holder("held") not in ("None", "")
    assert farm.holder("held") == "None"
    # A place that does not exist names the ones that do.
    with pytest.raises(BoardError, match="no place 'nope'.*held"):
        LabgridPlaceRunner("nope", coordinator=farm.address).connect()


@pytest.mark.slow
@needs_labgrid
@needs_qemu
def test_matrix_and_score_through_two_labgrid_places(farm, digits_tflite, digits, pio_core, tmp_path):
    tag = f"ci-{uuid.uuid4().hex[:6]}"
    runs = tmp_path / "m" / "runs"  # where matrix -o m builds: its builds are then up to date
    with contextlib.ExitStack() as stack:
        # The farm's boards: the digits firmware in two QEMU instances, their UARTs on TCP ports.
        ports = {}
        for board in BOARDS:
            dep = stack.enter_context(deploy(digits_tflite, board, runs / board / "project", core_dir=pio_core))
            ports[board] = int(dep.url.rsplit(":", 1)[1])
        farm.export("qemu", {b: p for b, p in ports.items()})
        for board in BOARDS:
            farm.place(f"{tag}-{board}", f"qemu/{board}/NetworkSerialPort", board=board, farm=tag)
        assert [p.name for p in find_places(f"farm={tag}", farm.address)] == [f"{tag}-{b}" for b in BOARDS]

        out = CliRunner().invoke(cli, ["matrix", str(digits_tflite), "--boards", ",".join(BOARDS), "--run",
                                       "--places", f"farm={tag}", "--coordinator", farm.address, "--samples", "5",
                                       "-o", str(tmp_path / "m")])
        assert out.exit_code == 0, out.output + farm.dump_logs()
        rows = {r["board"]: r for r in json.loads((tmp_path / "m" / "matrix.json").read_text())["boards"]}
        for board in BOARDS:
            assert rows[board]["run_error"] is None, rows[board]
            assert rows[board]["measured"]["parity"] == 1.0 and rows[board]["measured"]["samples"] == 5
            assert farm.holder(f"{tag}-{board}") == "None"  # released after the run
        assert "labgrid places" in json.loads((tmp_path / "m" / "matrix.json").read_text())["notes"]["measured"]

        # score --place: the place instead of --port; held while scoring, released after.
        out = CliRunner().invoke(cli, ["score", "--place", f"{tag}-{BOARDS[1]}", "--coordinator", farm.address,
                                       "--data", str(digits["test"]), "--model", str(digits_tflite), "--limit", "5",
                                       "--no-profile", "-o", str(tmp_path / "score")])
        assert out.exit_code == 0, out.output
        report = json.loads((tmp_path / "score" / "report.json").read_text())
        assert report["parity"] == 1.0 and report["board"] == BOARDS[1]
        assert farm.holder(f"{tag}-{BOARDS[1]}") == "None"


@pytest.mark.slow
@needs_qemu
def test_matrix_runs_two_local_qemu_boards_at_once(digits_tflite, pio_core, tmp_path):
    m = compatibility_matrix(digits_tflite, ",".join(BOARDS), run=True, samples=3, jobs=2, work_dir=tmp_path / "runs",
                             core_dir=pio_core)
    assert [r.board for r in m.rows] == list(BOARDS)  # board order, whatever finished first
    for r in m.rows:
        assert r.measured is not None, r.run_error
        assert r.measured.parity == 1.0 and r.measured.samples == 3 and r.measured.instructions
        assert (tmp_path / "runs" / r.board / "score" / "report.json").is_file()  # a folder per board
    assert "2 board(s) at once" in m.notes["measured"]
