"""`stq demo`: the whole pipeline on QEMU, interrupted and resumed, and its one report rendered
in headless Chromium with every section present."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium import render

STQ = str(Path(sys.executable).with_name("stq"))
SECTIONS = ("headline", "model", "budget", "validation", "robustness", "timings")


def _default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal, even when the suite runs as a background job of a
    shell without job control (which starts it with SIGINT ignored, inherited by every child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _demo(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([STQ, "demo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=_default_sigint)


@pytest.mark.slow
def test_demo_interrupted_then_resumed_and_report(digits_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["--model", str(digits_h5), "-o", str(out), "--attack-limit", "4",
            "--validate-limit", "60"]
    # 1. interrupt (Ctrl-C) as soon as the firmware is built
    proc = _demo(args)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "building the firmware" in line and "done in" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, "".join(lines) + rest
    assert not (out / "report" / "report.html").exists()
    # 2. rerun: finished stages are reused (content hashes unchanged), the rest runs
    t = time.time()
    proc = subprocess.run([STQ, "demo", *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = proc.stdout
    assert "converting to the integer artifact and C: reused" in log
    assert "building the firmware for netduinoplus2, nucleo-l4r5zi: reused" in log
    assert "validating 60 test images" in log and "reused" not in log.split("validating")[1][:40]
    assert "Report: " in log and "bit-exact 60/60" in log
    summary = json.loads((out / "report" / "report.json").read_text())
    assert summary["reused"]["convert"] and summary["reused"]["build"]
    assert not summary["reused"]["validate"]
    assert summary["validate"]["mismatches"] == 0
    assert {b for b in summary["budget"]["boards"]} == {"netduinoplus2", "nucleo-l4r5zi"}
    assert all(r["host_device_mismatches"] == 0 for r in summary["attacks"]["results"])
    # 3. a third run reuses everything
    again = subprocess.run([STQ, "demo", *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count(": reused") == 5, again.stdout
    assert time.time() - t < 900
    _check_report_in_chromium(out / "report" / "report.html")


def _check_report_in_chromium(page: Path) -> None:
    r = render(page, page.parent / "chromium-profile", "demo/report.png", height=3000)
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in r.dom, sec
    assert r.dom.count('class="chart"') >= 3  # two budget charts and the robustness plot
    assert not r.console_errors, r.console_errors


def test_demo_exits_non_zero_when_a_stage_fails(digits_h5: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A failing stage (here: building for a user's board, from --boards-dir, whose flash is too
    small for the model) stops the demo with a non-zero exit and one clear line; the stages
    before it stay cached. A bad option (an unknown board) fails before any stage runs."""
    from toolchain.cli.main import main

    out = tmp_path / "demo"  # in-process: the CLI's own exit code and stderr, no TF start-up
    code = main(["demo", "--model", str(digits_h5), "-o", str(out), "--board", "nucleo-nope"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "stq demo: error: unknown board 'nucleo-nope'" in err
    assert "Traceback" not in err and not out.exists()

    from toolchain.firmware.boards import BOARDS_DIR

    boards = tmp_path / "boards"
    boards.mkdir()
    text = (BOARDS_DIR / "nucleo-l4r5zi.toml").read_text()
    (boards / "tiny.toml").write_text(text.replace('name = "nucleo-l4r5zi"', 'name = "tiny"')
                                      .replace("length = 0x200000", "length = 0x2000", 1))
    code = main(["demo", "--model", str(digits_h5), "-o", str(out), "--real-board", "tiny",
                 "--boards-dir", str(boards), "--no-progress"])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    err = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("stq demo: error: the model does not fit board "
                                               "tiny"), stderr
    assert "Traceback" not in stderr
    assert (out / ".stq-cache" / "convert.json").is_file()
    assert not (out / "report").exists()
