"""The framed device protocol and its harness on the virtual board (the firmware's protocol
sources and the generated digits model compiled for the host, on a pty): framing units, a
fault-injecting proxy over 2,000 inferences, kill-and-resume of `stq validate`, the MLPerf Tiny
runner's ASCII session, bad input, and the device parser fuzzed under ASan/UBSan."""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from toolchain.device import protocol
from toolchain.device.link import DeviceLink, LinkPolicy
from toolchain.device.virtual_board import VirtualBoard, build_host_firmware
from toolchain.errors import StqError
from toolchain.firmware.mlperf import results_line
from toolchain.ir import artifact
from toolchain.reference import model as reference

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def stq_cmd():
    """`stq NAME ARGS` run in this process, exactly as the console script runs it."""
    from toolchain.cli.main import main

    return lambda name, argv: main([name, *argv])


@pytest.fixture(scope="module")
def digits_ref(digits_outdir: Path, digits_data):
    g = artifact.load(digits_outdir / "model.stqa")
    xq = reference.quantize_input(g, digits_data.x_test)
    dt = np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)
    ys = reference.predict(g, xq).astype(dt)
    return g, [x.tobytes() for x in xq], [y.tobytes() for y in ys], xq, ys


# --- framing ---------------------------------------------------------------------------------


def test_cobs_and_frames_roundtrip() -> None:
    rng = random.Random(1)
    for n in [*range(0, 520), 1000, 4200]:
        data = bytes(rng.choice((0, 0, 1, 255, rng.randrange(256))) for _ in range(n))
        enc = protocol.cobs_encode(data)
        assert b"\x00" not in enc and protocol.cobs_decode(enc) == data
    wire = protocol.encode_frame(protocol.T_RUN, 77, b"\x00\x01\x02")
    reader = protocol.FrameReader()
    frames = reader.feed(b"junk" + wire[:5]) + reader.feed(wire[5:])
    assert [protocol.decode_frame(f) for f in frames[1:]] == [
        protocol.Frame(protocol.VERSION, protocol.T_RUN, 77, b"\x00\x01\x02")]
    bad = bytearray(wire)
    bad[4] ^= 0x10
    with pytest.raises(ValueError):
        protocol.decode_frame(bytes(bad[1:-1]))


def test_device_rejects_bad_frames_and_keeps_running(digits_outdir: Path, digits_ref) -> None:
    _, xs, ys, _, _ = digits_ref
    with VirtualBoard(digits_outdir) as vb, DeviceLink.open(vb.port_url) as link:
        info = link.info()
        reader = protocol.FrameReader()

        def raw_reply(wire: bytes) -> protocol.Frame:
            link.port.write(wire)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                for raw in reader.feed(link.port.read(max(1, link.port.in_waiting))):
                    return protocol.decode_frame(raw)
            raise AssertionError("no reply")

        good = protocol.encode_frame(protocol.T_INFO, 5)
        corrupt = bytearray(good)
        at = next(i for i in range(len(good) - 5, len(good) - 1) if good[i] != 0x41)
        corrupt[at] ^= 0x41  # two bits of a CRC byte (never a COBS code byte, never 0x00)
        # one flipped bit is corrected from the CRC syndrome: the request is served
        wire = bytearray(protocol.encode_frame(protocol.T_RUN, 4, protocol.run_body(77)))
        assert wire[6] == 77
        wire[6] ^= 0x04  # the tag's first byte on the wire, 77 -> 73
        fixed = raw_reply(bytes(wire))
        assert fixed.type == protocol.T_RUN | protocol.T_REPLY and fixed.seq == 4
        assert protocol.Missing.parse(fixed.body).tag == 77
        cases = {
            "bad CRC": bytes(corrupt),
            "truncated frame": b"\x00\x03\x01\x01\x00",
            "oversize frame": b"\x00" + bytes([0xFF] + [7] * 254) * 40 + b"\x00",
            "unsupported version": protocol.encode_frame(protocol.T_INFO, 6, version=9),
            "unknown request type": protocol.encode_frame(0x33, 7),
            "upload outside the input": protocol.encode_frame(
                protocol.T_UPLOAD, 8, protocol.upload_body(1, info.input_bytes, b"x")),
            "bad body length": protocol.encode_frame(
                protocol.T_UPLOAD, 9, protocol.upload_body(1, 0, b"x")),
        }
        for what, wire in cases.items():
            frame = raw_reply(wire)
            assert frame.type == protocol.T_ERROR, what
            assert protocol.error_text(frame.body).startswith(what), (what, frame)
        # a RUN of an input never uploaded names every chunk as missing
        link.port.write(protocol.encode_frame(protocol.T_RUN, 10, protocol.run_body(1234)))
        deadline = time.monotonic() + 2
        missing = None
        while missing is None and time.monotonic() < deadline:
            for raw in reader.feed(link.port.read(max(1, link.port.in_waiting))):
                missing = protocol.Missing.parse(protocol.decode_frame(raw).body)
        assert missing == protocol.Missing(1234, tuple(range(-(-info.input_bytes // info.chunk))))
        # ...and still runs correctly
        assert link.infer(xs[3]).output == ys[3]


def test_small_receive_window_is_never_overrun(digits_outdir: Path, digits_ref) -> None:
    """With a 100-byte window (a board whose ring holds less than one input's chunks plus the
    next input's), the host waits for answers (or probes) before sending more, and every
    output is still right."""
    import dataclasses

    _, xs, ys, _, _ = digits_ref
    with VirtualBoard(digits_outdir) as vb, DeviceLink.open(vb.port_url) as link:
        link.info_ = dataclasses.replace(link.info(), rx_window=100)
        sent: list[int] = []
        write = link._write

        def spy(data: bytes) -> None:
            write(data)
            sent.append(int(link._written - link._consumed))

        link._write = spy  # type: ignore[method-assign]
        for i in range(40):
            assert link.infer(xs[i], xs[i + 1]).output == ys[i]
        assert link.stats.window_waits > 0
        assert max(sent) <= 100 - 32 + 16  # the window less the probe margin, plus a probe


# --- fault injection ---------------------------------------------------------------------------


class FaultyProxy:
    """A TCP port (the harness's side) joined to the virtual board's pty by a thread that
    flips ~1 % of the bytes, drops some, inserts garbage bursts, and restarts the board process
    when asked (a board reset) or when it died."""

    def __init__(self, vb: VirtualBoard, seed: int = 7, flip: float = 0.01,
                 drop: float = 0.001, insert: float = 0.001) -> None:
        self.vb, self.rng = vb, random.Random(seed)
        self.flip, self.drop, self.insert = flip, drop, insert
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.pty = os.open(vb.port_url, os.O_RDWR | os.O_NOCTTY)
        self.stop = threading.Event()
        self.reset_now = threading.Event()
        self.counts = {"flipped": 0, "dropped": 0, "inserted": 0, "resets": 0}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                self.counts["dropped"] += 1
                continue
            if r < self.drop + self.insert:
                burst = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
                out += burst
                self.counts["inserted"] += len(burst)
            if self.rng.random() < self.flip:
                b ^= 1 << self.rng.randrange(8)
                self.counts["flipped"] += 1
            out.append(b)
        return bytes(out)

    def _run(self) -> None:
        conn, _ = self.server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while not self.stop.is_set():
                if self.reset_now.is_set() or self.vb.proc.poll() is not None:
                    self.reset_now.clear()
                    self.vb.restart()
                    self.counts["resets"] += 1
                ready, _, _ = select.select([conn, self.pty], [], [], 0.05)
                if conn in ready:
                    data = conn.recv(65536)
                    if not data:
                        return
                    os.write(self.pty, self._mangle(data))
                if self.pty in ready:
                    conn.sendall(self._mangle(os.read(self.pty, 65536)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.pty)
        self.server.close()


def test_faulty_link_never_records_a_wrong_result(digits_outdir: Path, digits_ref) -> None:
    _, xs, ys, _, _ = digits_ref
    n = 2000
    t0 = time.monotonic()
    with VirtualBoard(digits_outdir) as vb:
        proxy = FaultyProxy(vb)
        try:
            with DeviceLink.open(proxy.url, LinkPolicy(timeout=0.3)) as link:
                link.info()
                wrong = 0
                for i in range(n):
                    if i == n // 2:
                        proxy.reset_now.set()
                    k, nxt = i % len(xs), (i + 1) % len(xs)
                    reply = link.infer(xs[k], xs[nxt] if i + 1 < n else None)
                    wrong += reply.output != ys[k]  # every recorded result is checked
                stats = link.stats.as_dict()
        finally:
            proxy.close()
    report = {"inferences": n, "wrong": wrong, "seconds": round(time.monotonic() - t0, 1),
              "faults": proxy.counts, "link": stats}
    print(json.dumps(report))
    out = REPO / "test-artifacts" / "link"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fault_injection.json").write_text(json.dumps(report, indent=2) + "\n")
    assert wrong == 0
    assert proxy.counts["resets"] >= 1 and proxy.counts["flipped"] > 100
    assert stats["retries"] > 0 and stats["chunks_resent"] > 0
    assert stats["held_runs"] > 0  # re-sent chunks answered as the RUN held pending
    assert 0 < stats["repaired_frames"] < stats["corrupt_frames"]  # repair.py at work


# --- kill and resume ----------------------------------------------------------------------------


def _stq(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from toolchain.cli.main import main; "
            "sys.exit(main(['validate', *sys.argv[1:]]))", *argv]


def test_killed_validate_resumes_to_the_same_results(digits_outdir: Path, tmp_path: Path,
                                                     digits_ref) -> None:
    g = digits_ref[0]
    rng = np.random.default_rng(3)
    t = g.tensors[g.input]
    xs = rng.integers(t.qmin, t.qmax + 1, size=(4000, *t.shape)).astype(
        reference.NP_DTYPE[t.dtype])
    inputs = tmp_path / "x.npy"
    np.save(inputs, xs)
    common = ["--board", "virtual", "--artifact", str(digits_outdir), "--inputs", str(inputs),
              "--no-progress"]
    killed, full = tmp_path / "killed", tmp_path / "full"
    proc = subprocess.Popen(_stq(*common, "-o", str(killed)), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = killed / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and results.stat().st_size > 300 * 60:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    lines = results.read_bytes().count(b"\n")
    assert 0 < lines < len(xs), f"not killed mid-run ({lines} lines)"
    rerun = subprocess.run(_stq(*common, "-o", str(killed)), cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((killed / "summary.json").read_text())
    assert 0 < summary["session"]["resumed_at"] <= lines
    once = subprocess.run(_stq(*common, "-o", str(full)), cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    assert results.read_bytes() == (full / "results.jsonl").read_bytes()
    assert summary["bit_exact"] == len(xs)


# --- MLPerf Tiny runner mode ------------------------------------------------------------------


def _until_ready(fd: int, timeout: float = 5.0) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while b"m-ready\r\n" not in data:
        assert time.monotonic() < deadline, data
        if select.select([fd], [], [], 0.1)[0]:
            data += os.read(fd, 4096)
    return data.decode()


def test_mlperf_runner_session(digits_outdir: Path, digits_ref) -> None:
    g, xs, ys, _, yarr = digits_ref
    with VirtualBoard(digits_outdir) as vb:
        fd = os.open(vb.port_url, os.O_RDWR | os.O_NOCTTY)
        try:
            time.sleep(0.2)
            os.write(fd, b"name%")
            reply = _until_ready(fd)
            assert re.search(r"^m-name-dut-\[stq .*\]\r$", reply, re.M), reply
            os.write(fd, b"profile%")
            reply = _until_ready(fd)
            assert "m-model-[ic01]" in reply and " ulp-mlperf performance]" in reply, reply
            os.write(fd, b"bogus%")
            assert "e-[Unknown command: bogus]" in _until_ready(fd)
            for k in range(5):
                x = xs[k]
                os.write(fd, f"db load {len(x)}%".encode())
                assert f"m-[Expecting {len(x)} bytes]" in _until_ready(fd)
                half = len(x) // 2
                os.write(fd, f"db {x[:half].hex()}%".encode())
                assert "m-load-done" not in _until_ready(fd)
                os.write(fd, f"db {x[half:].hex()}%".encode())
                assert "m-load-done" in _until_ready(fd)
                os.write(fd, b"infer 3 1%")
                reply = _until_ready(fd)
                laps = [int(v) for v in re.findall(r"^m-lap-us-(\d+)\r$", reply, re.M)]
                assert len(laps) == 2 and laps[1] >= laps[0]
                assert "m-warmup-start-1" in reply and "m-infer-done" in reply
                got = re.search(r"m-results-\[([0-9.,]+)\]", reply)
                assert got and got.group(0) == results_line(yarr[k], g.tensors[g.output].scale)
                os.write(fd, b"results%")
                assert got.group(0) in _until_ready(fd)
        finally:
            os.close(fd)


# --- bad input --------------------------------------------------------------------------------


def test_bad_ports_and_inputs(digits_outdir: Path, tmp_path: Path, stq_cmd, capsys) -> None:
    base = ["--artifact", str(digits_outdir), "--no-progress", "--limit", "5"]
    assert stq_cmd("validate", ["--board", "x", "--port", "/dev/ttyNOPE", *base,
                                "-o", str(tmp_path / "a")]) == 2
    assert "cannot open device port /dev/ttyNOPE" in capsys.readouterr().err

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
    try:
        assert stq_cmd("validate", ["--board", "x", "--port", url, "--link-timeout", "0.3",
                                    "--give-up-after", "1.5", *base,
                                    "-o", str(tmp_path / "b")]) == 2
    finally:
        silent.close()
    err = capsys.readouterr().err
    assert (f"no device answered on port {url}: the link to {url} is dead: no valid frame "
            "for 2 s (--give-up-after 1.5)") in err

    # a firmware of protocol version 1 answers a version-2 frame with error 5 in a v1 header
    old = socket.create_server(("127.0.0.1", 0))

    def old_firmware() -> None:
        conn, _ = old.accept()
        with conn:
            reader = protocol.FrameReader()
            while data := conn.recv(4096):
                for raw in reader.feed(data):
                    seq = protocol.decode_frame(raw).seq
                    conn.sendall(protocol.encode_frame(protocol.T_ERROR, seq,
                                                       b"\x05\x02\x00\x00\x00", version=1))

    threading.Thread(target=old_firmware, daemon=True).start()
    url = f"socket://127.0.0.1:{old.getsockname()[1]}"
    try:
        assert stq_cmd("validate", ["--board", "x", "--port", url, *base,
                                    "-o", str(tmp_path / "v1")]) == 2
    finally:
        old.close()
    assert (f"the device on {url} speaks framed protocol version 1, this stq speaks "
            f"{protocol.VERSION}: "
            "rebuild and flash its firmware") in capsys.readouterr().err

    # firmware built from another model: same C, different hash
    other = tmp_path / "other"
    (other / "c").mkdir(parents=True)
    for f in (digits_outdir / "c").iterdir():
        text = f.read_text()
        (other / "c" / f.name).write_text(re.sub(r'STQ_MODEL_HASH "[0-9a-f]{8}',
                                                 'STQ_MODEL_HASH "00000000', text))
    with VirtualBoard(other) as vb:
        assert stq_cmd("validate", ["--board", "x", "--port", vb.port_url, *base,
                                    "-o", str(tmp_path / "c")]) == 2
    assert "the firmware runs model 00000000" in capsys.readouterr().err

    g = artifact.load(digits_outdir / "model.stqa")
    shape = g.tensors[g.input].shape
    for name, arr, msg in [
        ("shape.npy", np.zeros((4, *shape[:-1]), np.uint8), "have shape"),
        ("dtype.npy", np.zeros((4, *shape), np.float32), "have dtype float32"),
    ]:
        np.save(tmp_path / name, arr)
        assert stq_cmd("validate", ["--board", "virtual", "--inputs", str(tmp_path / name),
                                    *base, "-o", str(tmp_path / name[:-4])]) == 2
        assert msg in capsys.readouterr().err


# --- fuzzing ----------------------------------------------------------------------------------


def test_device_parser_fuzzed_with_sanitizers(digits_outdir: Path) -> None:
    exe = build_host_firmware(digits_outdir, fuzz=True)
    proc = subprocess.run([str(exe), "12", "12345"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr
    m = re.search(r"fuzz: (\d+) cases", proc.stdout)
    assert m and int(m.group(1)) > 10000, proc.stdout


def test_device_parser_libfuzzer_coverage_guided(digits_outdir: Path, tmp_path: Path) -> None:
    """libFuzzer (clang, coverage-guided) with ASan/UBSan on the same parsers, from a seed
    corpus of valid frames and runner commands, for a bounded run; no findings. Longer runs:
    docs/protocol.md."""

    P = protocol
    if shutil.which("clang") is None:
        pytest.fail("clang is not installed (scripts/setup.sh installs it)")
    exe = build_host_firmware(digits_outdir, kind="libfuzzer")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    x = bytes(range(64))
    seeds = {
        "info": P.encode_frame(P.T_INFO, 1),
        "upload_run": P.encode_frame(P.T_UPLOAD, 2, P.upload_body(P.crc32(x), 0, x[:32]))
        + P.encode_frame(P.T_UPLOAD, 3, P.upload_body(P.crc32(x), 1, x[32:]))
        + P.encode_frame(P.T_RUN, 4, P.run_body(P.crc32(x), copies=2))
        + P.encode_frame(P.T_RESULT, 5, P.result_body(P.crc32(x), 0)),
        "mlperf": b"name%profile%db load 64%db " + x.hex().encode() + b"%infer 1 0%results%",
        "legacy": b"H",
    }
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)
    proc = subprocess.run([str(exe), "-max_total_time=15", "-seed=7", "-print_final_stats=1",
                           str(corpus)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    assert runs and int(runs.group(1)) > 1000, proc.stderr[-2000:]


def test_attack_link_options_reach_the_link(tmp_path: Path, stq_cmd, capsys,
                                            monkeypatch) -> None:
    """`stq attack` has validate's link options: documented, checked, passed on by the CLI,
    and applied by the link (a port that never answers is given up on after
    --give-up-after, which the error names)."""
    from toolchain.cli.main import main
    from toolchain.robustness import evaluate, oracles

    assert main(["attack", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--link-timeout" in out and "--give-up-after" in out
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    for opt, bad in (("--link-timeout", "0"), ("--give-up-after", "-3"),
                     ("--give-up-after", "soon")):
        assert stq_cmd("attack", ["--model", str(model), opt, bad]) == 2
        err = capsys.readouterr().err
        assert f"argument {opt}" in err and "number > 0" in err, err

    seen: dict = {}

    def fake_evaluate(*args: object, **kw: object) -> dict:  # stands in for the ART run only
        seen.update(kw)
        raise StqError("stop here")

    monkeypatch.setattr(evaluate, "evaluate", fake_evaluate)
    assert stq_cmd("attack", ["--model", str(model), "--artifact", str(tmp_path), "--port",
                              "socket://127.0.0.1:9", "--link-timeout", "0.2",
                              "--give-up-after", "0.8"]) == 2
    assert "stop here" in capsys.readouterr().err
    assert seen["link_timeout"] == 0.2 and seen["give_up_after"] == 0.8
    monkeypatch.undo()

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        with pytest.raises(StqError, match=r"no valid frame for 1 s \(--give-up-after 0.8\)"):
            with oracles.open_oracle(None, tmp_path, port=url, timeout=0.2,  # type: ignore
                                     give_up_after=0.8):
                pass
        assert time.monotonic() - t0 < 5
    finally:
        silent.close()
