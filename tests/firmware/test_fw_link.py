"""The framed link on QEMU netduinoplus2, end to end (real QEMU, real pyserial over TCP, the
fault-injecting proxy of toolchain/device/fault_proxy.py): exact, repeatable instruction counts,
300 digits inferences through a bad line (1 % flipped, 0.5 % dropped, 0.2 % inserted bytes per
byte, both directions) with every result right, a board killed and restarted mid-run, and no
QEMU left behind by a SIGKILLed `stq validate`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from toolchain.device.fault_proxy import FaultProxy
from toolchain.device.link import DeviceLink
from toolchain.device.qemu import QemuBoard
from toolchain.validate.run import ValidateConfig, validate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BOARD = "netduinoplus2"
N = 300


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def clean_run(fw_build, fw_model_outdir: Path, tmp_path_factory) -> Path:
    """An uninterrupted clean `stq validate` of N digits images on QEMU."""
    out = tmp_path_factory.mktemp("clean") / "out"
    validate(ValidateConfig(board=BOARD, artifact=fw_model_outdir, out_dir=out, limit=N,
                            elf=fw_build(BOARD).elf, progress=False))
    return out


def test_instruction_counts_are_exact(clean_run: Path, fw_build, fw_model_outdir: Path,
                                      tmp_path: Path) -> None:
    rows = _rows(clean_run)
    assert len(rows) == N and all(r["exact"] for r in rows)
    # a real count: the optimized digits kernels are branch-free (the same count for every
    # input), so check it against the model's size instead of its spread: between a quarter
    # and 20 instructions per MAC (the reference kernels take 14)
    from toolchain.reference.model import load_artifact_dir

    macs = load_artifact_dir(fw_model_outdir).macs()
    assert all(macs // 4 <= r["instructions"] <= 20 * macs for r in rows), (macs, rows[0])
    again = tmp_path / "again"
    validate(ValidateConfig(board=BOARD, artifact=fw_model_outdir, out_dir=again, limit=100,
                            elf=fw_build(BOARD).elf, progress=False))
    text = (clean_run / "results.jsonl").read_text().splitlines(keepends=True)
    assert (again / "results.jsonl").read_text() == "".join(text[:100])
    log = [json.loads(line) for line in (again / "link.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "start" and log[-1]["event"] == "done"
    # no INFO sent into a booting board: the session starts (after INFO) without a timeout
    # (later ones are load stalls on a shared machine: the bytes are the same either way)
    assert log[0]["requests"] > 0 and log[0]["timeouts"] == 0


def test_noisy_link_completes_with_every_result_right(clean_run: Path, fw_build,
                                                      fw_model_outdir: Path,
                                                      tmp_path: Path) -> None:
    with QemuBoard(fw_build(BOARD).elf, timeout=600) as qemu, FaultProxy(
            qemu.port, flip=0.01, drop=0.005, insert=0.002, seed=13) as proxy:
        s = validate(ValidateConfig(board=BOARD, artifact=fw_model_outdir, out_dir=tmp_path,
                                    port=proxy.url, limit=N, progress=False))
    print(json.dumps({"faults": proxy.counts, "link": s["session"]["link"],
                      "inferences_per_s": s["session"]["inferences_per_s"]}))
    assert s["validated"] == N and s["bit_exact"] == N and s["mismatches"] == 0
    # the same file as the clean run, instruction counts included
    assert (tmp_path / "results.jsonl").read_bytes() == (clean_run / "results.jsonl").read_bytes()
    assert proxy.counts["flipped"] > 300 and proxy.counts["dropped"] > 150
    assert proxy.counts["inserted"] > 50
    link = s["session"]["link"]
    assert link["retries"] > 0 and link["chunks_resent"] > 0
    assert link["held_runs"] > 0  # re-sent chunks answered as the RUN the device held pending
    # the host repaired damaged replies; the device repaired damaged requests: far fewer chunks
    # re-sent than the ~37 % of chunk frames that arrive damaged at this rate
    assert 0 < link["repaired_frames"] < link["corrupt_frames"]
    assert link["chunks_resent"] < 0.3 * link["chunks_sent"]
    last = json.loads((tmp_path / "link.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "done" and last["retries"] == link["retries"]


def test_board_killed_and_restarted_mid_run(clean_run: Path, fw_build, fw_model_outdir: Path,
                                            tmp_path: Path) -> None:
    elf = fw_build(BOARD).elf
    n = 120
    with QemuBoard(elf, timeout=600) as first, QemuBoard(elf, timeout=600) as second, \
            FaultProxy(first.port) as proxy:
        stop = threading.Event()

        def reset_after(lines: int) -> None:
            results = tmp_path / "results.jsonl"
            while not stop.is_set():
                if results.is_file() and results.read_bytes().count(b"\n") >= lines:
                    # the board dies mid-run and a fresh one takes its place (moved first:
                    # the proxy could otherwise reconnect to the dying board's port)
                    proxy.retarget(second.port)
                    first.stop()
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=reset_after, args=(n // 3,))
        watcher.start()
        try:
            s = validate(ValidateConfig(board=BOARD, artifact=fw_model_outdir,
                                        out_dir=tmp_path, port=proxy.url, limit=n,
                                        progress=False))
        finally:
            stop.set()
            watcher.join()
    assert first.returncode is not None and proxy.counts["backends"] == 2
    assert s["bit_exact"] == n
    text = (clean_run / "results.jsonl").read_text().splitlines(keepends=True)
    assert (tmp_path / "results.jsonl").read_text() == "".join(text[:n])
    assert s["session"]["link"]["chunks_resent"] > 0  # the new board held no input


def _qemu_pids_running(needle: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if needle in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids


def test_sigkilled_validate_leaves_no_qemu(fw_build, fw_model_outdir: Path,
                                           tmp_path: Path) -> None:
    elf = tmp_path / "orphan-check.elf"  # a path only this run's QEMU has on its command line
    shutil.copy(fw_build(BOARD).elf, elf)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolchain.cli.main", "validate", "--board", BOARD,
         "--artifact", str(fw_model_outdir), "--elf", str(elf), "--no-progress", "-o", str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    results = out / "results.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.02)
    assert _qemu_pids_running(str(elf)), "QEMU was not running mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 5
    while _qemu_pids_running(str(elf)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _qemu_pids_running(str(elf)) == []


def test_full_receive_ring_holds_the_sender_off(fw_build) -> None:
    """Bytes that arrive while the device computes and its 1 KB receive ring is full wait in
    QEMU's UART (uart_rx.c disables the UART interrupt until the ring is half empty) instead of
    being dropped: 3 KB sent behind a long MLPerf `infer` (about 0.5-2 s of compute) all get
    through, the hello at their end is answered, and INFO counts no ring overrun. Before the
    hold, the ring dropped about 2 KB of them and the hello."""
    with QemuBoard(fw_build(BOARD).elf, timeout=300) as qemu:
        port = serial.serial_for_url(qemu.port_url, timeout=0.2)
        try:
            seen, deadline = b"", time.monotonic() + 30
            while b"\n" not in seen and time.monotonic() < deadline:  # the boot banner
                seen += port.read(256)
            assert b"STQ " in seen
            # spaces are ignored between commands; the ring fills while `infer` runs
            port.write(b"infer 4000 0%" + b" " * 3000 + b"H")
            seen, deadline = b"", time.monotonic() + 60
            while b"\nSTQ " not in seen and time.monotonic() < deadline:
                seen += port.read(4096)
            assert b"m-infer-done" in seen and b"\nSTQ " in seen, seen[-300:]
            port.write(b"\x00")  # the framed protocol, for INFO's ring overruns
            info = DeviceLink(port).info()
            assert info.rx_window == 1024 and info.rx_dropped == 0
        finally:
            port.close()
