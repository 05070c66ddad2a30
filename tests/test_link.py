"""The line parser on garbage, CRC and truncation; the transport's raw log and errors; the client over loop://."""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyedge.errors import LinkError
from tinyedge.link import ConnectionLost, DeviceError, DutClient, Transport
from tinyedge.link import protocol as P

printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@pytest.mark.unit
def test_crc_check_value():
    assert P.crc16_ccitt_false(b"123456789") == 0x29B1
    assert P.with_crc("te-s-0,1,2,3") == f"te-s-0,1,2,3*{P.crc16_ccitt_false(b'te-s-0,1,2,3'):04X}"


@pytest.mark.unit
def test_classification():
    p = P.LineParser()
    lines = p.feed(b"m-ready\r\nm-init-done\r\ne-[Unknown command: x]\nhello\r\n"
                   + P.with_crc("te-s-1,2,3,4").encode() + b"\r\n\r\n")
    assert [(ln.kind, ln.text) for ln in lines] == [
        (P.READY, "m-ready"), (P.MESSAGE, "m-init-done"), (P.ERROR, "e-[Unknown command: x]"),
        (P.OTHER, "hello"), (P.TE, "te-s-1,2,3,4")]
    assert p.stats.unknown == 1 and p.stats.corrupt == 0 and p.stats.crc_ok == 1


@pytest.mark.unit
def test_bad_crc_is_corrupt_and_never_accepted():
    p = P.LineParser()
    good = P.with_crc("te-results-ticks=5,out=[1,2]")
    flipped = good.replace("ticks=5", "ticks=6")
    lines = p.feed(f"{flipped}\r\nte-info-board=x\r\n{good}\r\n".encode())
    assert [ln.kind for ln in lines] == [P.CORRUPT, P.CORRUPT, P.TE]
    assert "CRC" in lines[0].reason and "without" in lines[1].reason
    assert p.stats.corrupt == 2


@pytest.mark.unit
def test_noise_and_binary_garbage():
    p = P.LineParser()
    lines = p.feed(b"\x00\x00\xffm-ready\r\nm-re\xc3\xa9dy\r\nm-\x01x\r\n")
    assert [ln.kind for ln in lines] == [P.READY, P.CORRUPT, P.CORRUPT]


@pytest.mark.unit
def test_split_across_chunks_and_truncation():
    p = P.LineParser(max_line=16)
    out = []
    for b in b"m-rea":
        out += p.feed(bytes([b]))
    out += p.feed(b"dy\r")
    out += p.feed(b"\nm-" + b"x" * 40)  # over-long: dropped until its newline
    out += p.feed(b"yyyy\r\nm-ready\r\nm-part")
    assert [ln.text for ln in out] == ["m-ready", "m-ready"]
    assert p.stats.truncated == 1
    assert p.pending == b"m-part"
    p.flush()
    assert p.stats.truncated == 2 and p.pending == b""


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20))
def test_parser_never_raises_on_garbage(data, cuts):
    p = P.LineParser(max_line=64)
    pos = 0
    lines = []
    for c in cuts:
        lines += p.feed(data[pos:pos + c])
        pos += c
    lines += p.feed(data[pos:])
    p.flush()
    for ln in lines:
        assert ln.kind in (P.READY, P.MESSAGE, P.ERROR, P.TE, P.OTHER, P.CORRUPT)
        if ln.kind == P.TE:  # anything accepted as te- really carries the CRC of its text
            assert ln.raw.rstrip(b"\r").endswith(b"*%04X" % P.crc16_ccitt_false(ln.text.encode()))
    s = p.stats
    assert s.lines == len(lines) and s.corrupt + s.unknown <= s.lines


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(printable, st.binary(min_size=1, max_size=40), st.integers(0, 200))
def test_resync_after_garbage(payload, garbage, pos):
    """Garbage inside one line costs that line only: the next valid line is parsed."""
    good = P.with_crc("te-s-" + payload.replace("*", "")).encode()
    noisy = bytearray(good)
    pos = pos % (len(noisy) + 1)
    noisy[pos:pos] = garbage.replace(b"\n", b"")
    p = P.LineParser()
    lines = p.feed(bytes(noisy) + b"\r\n" + good + b"\r\n")
    assert lines[-1].kind == P.TE and lines[-1].text.encode() == good.rsplit(b"*", 1)[0]
    if bytes(noisy) != good and lines[0].kind == P.TE:
        # a corrupted line may only pass when the garbage happened to keep it intact
        assert P.crc16_ccitt_false(lines[0].text.encode()) == int(lines[0].raw.rstrip(b"\r")[-4:], 16)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(printable.filter(lambda s: "*" not in s), st.integers(0, 200), st.integers(1, 255))
def test_single_byte_corruption_is_always_caught(text, pos, flip):
    """CRC-16 detects every single-byte error in a te- line."""
    line = bytearray(P.with_crc("te-" + text).encode())
    i = 3 + pos % (len(line) - 3)
    line[i] ^= flip
    if b"\n" in line:
        return
    lines = P.LineParser().feed(bytes(line) + b"\n")
    assert all(ln.kind != P.TE for ln in lines)


@pytest.mark.unit
def test_payload_parsers():
    info = P.parse_te_info("te-info-board=b,clock_hz=25,timer=systick,timer_hz=25,emulated=1,arena_bytes=3,"
                           "input_bytes=490,output_count=12,layers=5,flash_bytes=1,ram_bytes=2,model=kws,"
                           "mlperf_model=kws01,model_sha256=" + "a" * 64 + ",version=0.1.0")
    assert info["emulated"] is True and info["input_bytes"] == 490 and info["timer"] == "systick"
    assert P.parse_te_results("te-results-ticks=12,out=[-128,0,127]") == {"ticks": 12, "out": [-128, 0, 127],
                                                                          "in_crc": None}
    assert P.parse_te_results("te-results-ticks=1,out=[5],in_crc=0A1F")["in_crc"] == 0x0A1F
    assert P.parse_te_load("te-load-490,29B1") == {"bytes": 490, "crc": 0x29B1}
    lines = ["te-info-board=b", "te-info-timer_hz=25", "te-info-input_bytes=4", "te-info-output_count=2",
             "te-info-model_sha256=" + "a" * 64, "te-info-protocol=2", "te-info-keys=7"]
    merged = P.parse_te_info(lines)
    assert merged["protocol"] == 2 and "keys" not in merged and merged["emulated"] is False
    prof = P.parse_te_profile(["te-profile-1-fc-2-5", "te-profile-0-conv-3", "te-profile-total-9"])
    assert prof["layers"][1] == {"index": 1, "name": "fc-2", "ticks": 5} and prof["sum_ticks"] == 8
    assert P.parse_te_stream("te-s-3,100,7,-5") == {"seq": 3, "ticks": 100, "top": 7, "score": -5}
    assert P.parse_results("m-results-[0.000,-1.500]") == [0.0, -1.5]
    assert P.parse_lap("m-lap-us-42") == 42
    for bad in ["te-results-ticks=1,out=[200]", "te-results-ticks=x,out=[]"]:
        with pytest.raises(P.ProtocolError):
            P.parse_te_results(bad)
    with pytest.raises(P.ProtocolError):
        P.parse_te_info("te-info-board")


@pytest.mark.unit
def test_transport_logs_raw_bytes_before_parsing(tmp_path):
    t = Transport("loop://", raw_log=tmp_path / "raw.log")
    t.write(b"m-re\xff\x00ady\r\n")
    assert t.read(1.0) == b"m-re\xff\x00ady\r\n"
    assert (tmp_path / "raw.log").read_bytes() == b"m-re\xff\x00ady\r\n"
    assert t.read(0.05) == b""
    t.close()
    t.close()


@pytest.mark.unit
def test_transport_open_failures_are_link_errors():
    with pytest.raises(LinkError, match="cannot open /dev/tty-does-not-exist.*dialout"):
        Transport("/dev/tty-does-not-exist")
    with pytest.raises(LinkError, match="socket://127.0.0.1:1.*emulator"):
        Transport("socket://127.0.0.1:1", connect_timeout=0.2)


class _Scripted:
    """A transport whose device answers each command from a script (and can corrupt lines)."""

    url = "script://dut"

    def __init__(self, replies: dict[bytes, list[bytes]]):
        self.replies = {k: list(v) for k, v in replies.items()}
        self.out = bytearray(b"m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n")
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        options = self.replies[data]
        self.out += (options.pop(0) if len(options) > 1 else options[0]) + b"m-ready\r\n"

    def read(self, timeout: float) -> bytes:
        data, self.out = bytes(self.out[:7]), self.out[7:]  # dribble: exercise line reassembly
        return data

    def close(self) -> None:
        pass


@pytest.mark.unit
def test_client_retries_te_commands_with_bad_crc():
    good = P.with_crc("te-results-ticks=9,out=[1,-2]").encode() + b"\r\n"
    bad = good.replace(b"ticks=9", b"ticks=8")
    t = _Scripted({b"te-results%": [bad, good]})
    c = DutClient(t)
    assert c.wait_ready(1) == ["m-timestamp-mode-performance", "m-init-done"]
    r = c.te_results()
    assert r.ticks == 9 and r.out.tolist() == [1, -2]
    assert c.parser.stats.corrupt == 1


@pytest.mark.unit
def test_stream_treats_a_line_that_lost_its_first_byte_as_noise():
    """`te-s-...` minus its leading 't' reads as an e- line: skipped (the seq gap shows it), not a refusal."""
    lines = [P.with_crc(f"te-s-{i},{100 + i},3,90").encode() + b"\r\n" for i in range(3)]
    lines[1] = lines[1][1:]
    c = DutClient(_Scripted({b"te-stream 3%": [b"".join(lines)]}))
    c.wait_ready(1)
    assert [r["seq"] for r in c.stream(3)] == [0, 2]
    refused = DutClient(_Scripted({b"te-stream 3%": [b"e-[No input loaded]\r\n"]}))
    refused.wait_ready(1)
    with pytest.raises(DeviceError, match="No input loaded"):
        refused.stream(3)


@pytest.mark.unit
def test_client_gives_up_after_retries():
    bad = P.with_crc("te-info-board=x").encode().replace(b"x", b"y") + b"\r\n"
    c = DutClient(_Scripted({b"te-info%": [bad]}), retries=1)
    c.wait_ready(1)
    with pytest.raises(P.ProtocolError, match="2 attempts"):
        c.info()


@pytest.mark.unit
def test_client_load_input_sends_31_byte_lines():
    sent = []

    class T(_Scripted):
        def write(self, data: bytes) -> None:
            sent.append(data)
            if data.startswith(b"db load"):
                self.out += b"m-[Expecting 70 bytes]\r\nm-ready\r\n"
            elif len(b"".join(s for s in sent if s.startswith(b"db ") and not s.startswith(b"db load"))) >= 140 + 9:
                self.out += b"m-load-done\r\nm-ready\r\n"
            else:
                self.out += b"m-ready\r\n"

    c = DutClient(T({}))
    c.wait_ready(1)
    c.load_input(bytes(range(70)))
    assert sent[0] == b"db load 70%"
    assert [len(s) for s in sent[1:]] == [3 + 62 + 1, 3 + 62 + 1, 3 + 16 + 1]
    assert sent[1] == b"db " + bytes(range(31)).hex().encode() + b"%"


@pytest.mark.unit
def test_wait_ready_probes_a_silent_device():
    t = _Scripted({b"name%": [b"m-name-dut-[tinyedge]\r\n"]})
    t.out.clear()  # booted before we connected: no banner
    c = DutClient(t)
    c.wait_ready(3, quiet=0.2)
    assert c.name() == "dut-[tinyedge]"


_FRAGMENTS = [b"\r\n", b"\n", b"m-ready", b"te-", b"*", b"e-[", b"\x00", b"\xff"] + [
    P.with_crc(t).encode() for t in ("te-s-1,2,3,4", "te-info-board=x", "te-results-ticks=5,out=[1,-2],in_crc=00FF")]


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, database=None)
@given(st.binary(max_size=300), st.randoms(use_true_random=False))
def test_parser_fuzz_10000_streams(garbage, rnd):
    """Done-when: 10,000 random byte streams (garbage mixed with protocol fragments and valid te- lines),
    fed in random chunk sizes: the parser never raises, and accepts a te- line only with its CRC."""
    # splice protocol fragments and valid te- lines into the random bytes, at random places
    data = bytearray(garbage)
    for _ in range(rnd.randrange(8)):
        pos = rnd.randrange(len(data) + 1)
        data[pos:pos] = rnd.choice(_FRAGMENTS)
    data = bytes(data)
    chunk = rnd.randrange(1, 64)
    p = P.LineParser(max_line=256)
    lines = []
    for i in range(0, len(data), chunk):
        lines += p.feed(data[i:i + chunk])
    p.flush()
    for ln in lines:
        if ln.kind == P.TE:
            assert ln.raw.rstrip(b"\r").lstrip(b"\x00\xff").endswith(b"*%04X" % P.crc16_ccitt_false(ln.text.encode()))
    assert p.stats.lines == len(lines)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_cobs_round_trip(data):
    frame = P.cobs_encode(data)
    assert b"\x00" not in frame and P.cobs_decode(frame) == data
    assert len(frame) <= len(data) + len(data) // 254 + 1


@pytest.mark.unit
def test_cobs_rejects_malformed_frames():
    for bad in [b"\x00", b"\x05ab", b"\x03a\x00"]:
        with pytest.raises(ValueError):
            P.cobs_decode(bad)


@pytest.mark.unit
def test_reconnect_with_backoff_over_a_real_socket(tmp_path):
    """The port disappears and comes back: reconnect() reopens it, the raw log keeps both sessions' bytes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]

    def serve():
        for banner in (b"m-init-done\r\nm-ready\r\n", None):
            conn, _ = srv.accept()
            if banner:
                conn.sendall(banner + b"m-par")  # a partial line, then the cable is pulled
                conn.close()
            else:
                assert conn.recv(64).endswith(b"name%")  # the reconnect probe
                conn.sendall(b"m-name-dut-[tinyedge]\r\nm-ready\r\n")
                conn.recv(64)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    c = DutClient(Transport(f"socket://127.0.0.1:{port}", raw_log=tmp_path / "raw.log", connect_timeout=2))
    c.wait_ready(2)
    with pytest.raises(ConnectionLost):
        c._next_line(2)
    c.reconnect(max_wait=5, ready_timeout=3)
    assert c.counters.reconnects == 1 and c.parser.stats.truncated == 1
    c.close()
    srv.close()
    thread.join(5)
    assert (tmp_path / "raw.log").read_bytes() == (b"m-init-done\r\nm-ready\r\nm-par"
                                                   b"m-name-dut-[tinyedge]\r\nm-ready\r\n")
