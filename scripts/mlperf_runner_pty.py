#!/usr/bin/env python3
"""Run the UNMODIFIED MLPerf Tiny runner (mlcommons/tiny benchmark/runner/main.py) against a
serial port it cannot discover, such as QEMU's pty from `stq run --serial pty --wait`.

The runner finds its DUT only among USB serial ports with a VID/PID listed in its devices yaml
(device_manager.py). A pty has no VID. This launcher adds one entry to
``serial.tools.list_ports.comports()`` for the given port, with the VID/PID of the yaml's last
``type: dut`` entry. If no libusb backend is installed, it makes ``usb.core.find`` return
nothing. Then it runs the runner's ``main.py`` as it is, through runpy. No runner file changes.

    cd tiny/benchmark/runner
    python /path/to/stq/scripts/mlperf_runner_pty.py --port /dev/pts/5 -- \\
        -d devices.yaml -m a -s /path/to/datasets

Needs the runner's own dependencies (pyserial, pyyaml, numpy, scikit-learn, matplotlib, pyusb).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys


def dut_usb_ids(devices_yaml: str) -> tuple[int, int]:
    import yaml

    with open(devices_yaml) as f:
        defs = yaml.safe_load(f)
    for d in reversed(defs):  # main.py keeps the last type: dut entry
        if d.get("type") == "dut" and d.get("usb"):
            vid, pids = next(iter(d["usb"].items()))
            return int(vid), int(pids[0] if isinstance(pids, list) else pids)
    raise SystemExit(f"{devices_yaml}: no 'type: dut' entry with a 'usb' VID/PID")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True, help="the DUT's serial device, e.g. /dev/pts/5")
    ap.add_argument("--runner-dir", default=".", help="the runner folder holding main.py")
    ap.add_argument("runner_args", nargs=argparse.REMAINDER, help="-- then main.py's options")
    args = ap.parse_args()
    runner_dir = os.path.abspath(args.runner_dir)
    rest = args.runner_args[1:] if args.runner_args[:1] == ["--"] else args.runner_args
    devices = "devices.yaml"
    for flag in ("-d", "--device_list"):
        if flag in rest[:-1]:
            devices = rest[rest.index(flag) + 1]
    vid, pid = dut_usb_ids(devices if os.path.isabs(devices)
                           else os.path.join(runner_dir, devices))

    import serial.tools.list_ports as list_ports
    from serial.tools.list_ports_common import ListPortInfo

    real_comports = list_ports.comports
    fake = ListPortInfo(os.path.realpath(args.port))
    fake.device, fake.vid, fake.pid = args.port, vid, pid
    fake.description = "stq DUT (pty)"
    fake.hwid = f"USB VID:PID={vid:04X}:{pid:04X} (stq launcher)"

    def comports(include_links: bool = False) -> list:
        return [p for p in real_comports(include_links) if p.device != fake.device] + [fake]

    list_ports.comports = comports
    try:
        import usb.core

        real_find = usb.core.find

        def find(*a: object, **kw: object) -> object:
            try:
                return real_find(*a, **kw)
            except usb.core.NoBackendError:
                return [] if kw.get("find_all") else None

        usb.core.find = find
    except ImportError:
        print("warning: pyusb is not installed (the runner imports usb.core)", file=sys.stderr)
    print(f"launcher: DUT {args.port} presented as VID:PID {vid:04X}:{pid:04X}", file=sys.stderr)
    os.chdir(runner_dir)
    sys.path.insert(0, runner_dir)
    sys.argv = [os.path.join(runner_dir, "main.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
