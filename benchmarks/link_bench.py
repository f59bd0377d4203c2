"""Link efficiency and throughput of the device protocols.

1. Efficiency = payload bytes / bytes on the wire (both directions) for one inference on a
   32x32x3 int8 input with 10 int8 outputs, for the framed protocol (COBS + CRC-32, 32-byte
   chunks) and the MLPerf Tiny runner's ASCII hex protocol (`db load`, `db HEX%` lines of
   --hex-line bytes, `infer 1 0%`, the reply lines our firmware sends), computed from the exact
   bytes each side writes; then measured on the virtual board with the given model.
2. Inferences per second on the virtual board and on QEMU netduinoplus2, with the next inputs'
   uploads and RUNs queued while the device computes (pipelined, up to the device's input
   slots less one ahead) and without (sequential), and the
   link time to the first inference of a fresh QEMU session (boot banner, INFO, one RUN).
3. Through the fault-injecting proxy (toolchain/device/fault_proxy.py) on QEMU at 0 %, 0.5 %,
   1 % and 2 % flipped bytes (half as many dropped, a fifth as many inserted, both
   directions): completed inferences per second as a ratio of the clean link, payload / wire
   bytes, retries, wrong results (must be 0).

    .venv/bin/python benchmarks/link_bench.py OUTDIR [--qemu-images 100] [--json link.json]
    .venv/bin/python benchmarks/link_bench.py --markdown RUN1.json RUN2.json ...  # docs table
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.device import protocol as P  # noqa: E402
from toolchain.device.fault_proxy import FaultProxy  # noqa: E402
from toolchain.device.link import AHEAD, DeviceLink, LinkPolicy  # noqa: E402
from toolchain.device.virtual_board import VirtualBoard  # noqa: E402


def framed_wire(x: bytes, outputs: int, chunk: int = 32) -> int:
    tag = P.crc32(x)
    wire = sum(len(P.encode_frame(P.T_UPLOAD, 1, P.upload_body(tag, o // chunk,
                                                               x[o:o + chunk])))
               for o in range(0, len(x), chunk))
    wire += len(P.encode_frame(P.T_RUN, 2, P.run_body(tag)))
    reply = bytes(5) + bytes(4 + 4 + 8 + 4) + bytes(range(1, outputs + 1))
    return wire + len(P.encode_frame(P.T_RUN | P.T_REPLY, 2, reply))


def mlperf_wire(x: bytes, outputs: int, line: int) -> int:
    out = [f"db load {len(x)}%", *(f"db {x[o:o + line].hex()}%" for o in range(0, len(x), line)),
           "infer 1 0%"]
    back = [f"m-[Expecting {len(x)} bytes]\r\nm-ready\r\n"]
    back += ["m-ready\r\n"] * (-(-len(x) // line) - 1) + ["m-load-done\r\nm-ready\r\n"]
    results = ",".join(["0.100"] * outputs)  # the softmax, 3 decimals
    back.append("m-warmup-start-0\r\nm-warmup-done\r\nm-infer-start-1\r\n"
                "m-lap-us-123456789\r\nm-lap-us-123456999\r\nm-infer-done\r\n"
                f"m-results-[{results}]\r\nm-ready\r\n")
    return sum(map(len, out)) + sum(map(len, back))


def _until_ready(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"m-ready\r\n"):
        if select.select([fd], [], [], 5)[0]:
            data += os.read(fd, 65536)
        else:
            raise TimeoutError(data[-200:])
    return data


def mlperf_measured(vb: VirtualBoard, xs: list[bytes], line: int) -> tuple[float, float, int]:
    """(efficiency, inferences/s, wrong count vs framed) of the ASCII mode on the virtual board."""
    fd = os.open(vb.port_url, os.O_RDWR | os.O_NOCTTY)
    while select.select([fd], [], [], 0.1)[0]:
        os.read(fd, 65536)  # the boot banner
    sent = got = 0
    outs = []
    t0 = time.monotonic()
    try:
        for x in xs:
            cmds = [f"db load {len(x)}%"] + [f"db {x[o:o + line].hex()}%"
                                              for o in range(0, len(x), line)] + ["infer 1 0%"]
            for c in cmds:
                os.write(fd, c.encode())
                sent += len(c)
                reply = _until_ready(fd)
                got += len(reply)
            outs.append(re.search(rb"m-results-\[([0-9.,]+)\]", reply).group(1))
    finally:
        os.close(fd)
    seconds = time.monotonic() - t0
    payload = len(xs) * (len(xs[0]) + 10)
    return payload / (sent + got), len(xs) / seconds, len(outs)


def run_link(url: str, xs: list[bytes], pipelined: bool, timeout: float,
             ys: list[bytes] | None = None, ready: bool = False) -> dict:
    t_open = time.monotonic()
    with DeviceLink.open(url, LinkPolicy(timeout=timeout, give_up_after=60)) as link:
        if ready:
            link.wait_ready(10)
        info = link.info()
        t0 = time.monotonic()
        b0 = link.stats.bytes_out + link.stats.bytes_in
        wrong, first = 0, None
        for i, x in enumerate(xs):
            out = link.infer(x, xs[i + 1 : i + 1 + AHEAD] if pipelined else None).output
            first = first if first is not None else time.monotonic() - t_open
            wrong += ys is not None and out != ys[i]
        seconds = time.monotonic() - t0
        wire = link.stats.bytes_out + link.stats.bytes_in - b0
        return {"inferences_per_s": len(xs) / seconds, "first_inference_s": first,
                "efficiency": len(xs) * (info.input_bytes + info.output_bytes) / wire,
                "retries": link.stats.retries, "wrong": int(wrong),
                "link": link.stats.as_dict()}


def _pct(v: float) -> str:
    return f"{v * 100:.2g} %"


def markdown(runs: list[dict]) -> str:
    """The fault-proxy table of docs/protocol.md from the --json results of several runs."""
    cols = "".join(f" run {k + 1}: inf/s | x clean |" for k in range(len(runs)))
    lines = [f"| flipped / dropped / inserted |{cols} payload / wire | wrong |",
             "|---|" + "---|---|" * len(runs) + "---|---|"]
    for rate in max((run["qemu_fault_proxy"] for run in runs), key=len):
        r = float(rate)
        got = [run["qemu_fault_proxy"].get(rate) for run in runs]
        rs = [x for x in got if x is not None]
        label = "0 (through the proxy)" if r == 0 else f"{_pct(r)} / {_pct(r / 2)} / {_pct(r / 5)}"
        cells = "".join(" - | - |" if x is None else
                        f" {x['inferences_per_s']:.1f} | {x['ratio_to_clean']:.2f} |" for x in got)
        eff = sum(x["efficiency"] for x in rs) / len(rs)
        lines.append(f"| {label} |{cells} {eff:.2f} | {sum(x['wrong'] for x in rs)} |")
    direct = ", ".join(f"{run['qemu_pipelined']['inferences_per_s']:.0f}" for run in runs)
    first = [run["qemu_pipelined"]["first_inference_s"] for run in runs]
    lines += ["", f"Direct QEMU link (no proxy), pipelined: {direct} inferences/s. First "
              f"inference {min(first):.2f}-{max(first):.2f} s after connecting (boot banner, "
              "INFO, one RUN)."]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--markdown"]:
        print(markdown([json.loads(Path(f).read_text()) for f in sys.argv[2:]]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path, help="OUTDIR of `stq convert` (e.g. the digits model)")
    ap.add_argument("--images", type=int, default=2000, help="virtual board inferences (0: skip)")
    ap.add_argument("--qemu-images", type=int, default=100,
                    help="QEMU inferences per measurement (0: skip)")
    ap.add_argument("--rates", default="0,0.005,0.01,0.02",
                    help="flipped-byte rates through the fault proxy (drop = rate/2, "
                         "insert = rate/5)")
    ap.add_argument("--rounds", type=int, default=10,
                    help="slices the fault-proxy inputs run in, every rate in turn per slice")
    ap.add_argument("--hex-line", type=int, default=64, help="bytes per MLPerf `db` line")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x32 = rng.integers(-128, 128, 32 * 32 * 3, dtype=np.int8).tobytes()
    payload = len(x32) + 10
    res: dict = {"input_32x32x3": {
        "framed_efficiency": payload / framed_wire(x32, 10),
        "mlperf_hex_efficiency": payload / mlperf_wire(x32, 10, args.hex_line)}}
    print(f"32x32x3 int8 input, 10 int8 outputs, one inference: framed "
          f"{res['input_32x32x3']['framed_efficiency']:.4f}, MLPerf hex "
          f"({args.hex_line} B per db line) {res['input_32x32x3']['mlperf_hex_efficiency']:.4f}")

    from toolchain.ir import artifact
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    g = artifact.load(args.outdir / "model.stqa")
    xq = reference.quantize_input(g, datasets.digits().x_test)
    n = max(args.images, args.qemu_images)
    xs = [xq[i % len(xq)].tobytes() for i in range(n)]
    dt = np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)
    ys = [y.tobytes() for y in reference.predict(g, xq).astype(dt)]
    ys = [ys[i % len(ys)] for i in range(n)]
    with VirtualBoard(args.outdir) if args.images else nullcontext() as vb:
        for mode in ("sequential", "pipelined") if vb is not None else ():
            r = run_link(vb.port_url, xs, mode == "pipelined", 2.0)
            res[f"virtual_{mode}"] = r
            print(f"virtual board, framed, {mode}: {r['inferences_per_s']:.0f} inf/s, "
                  f"efficiency {r['efficiency']:.3f} ({len(xs[0])} B inputs)")
        if vb is not None:
            vb.restart()  # the framed mode is sticky: a fresh board for the ASCII mode
            time.sleep(0.2)
            eff, ips, _ = mlperf_measured(vb, xs[:200], args.hex_line)
            res["virtual_mlperf"] = {"inferences_per_s": ips, "efficiency": eff}
            print(f"virtual board, MLPerf ASCII: {ips:.0f} inf/s, efficiency {eff:.3f}")

    if args.qemu_images:
        import tempfile

        from toolchain.device.qemu import QemuBoard
        from toolchain.firmware.boards import load_board
        from toolchain.firmware.build import build

        board = load_board("netduinoplus2")
        with tempfile.TemporaryDirectory() as tmp:
            elf = build(args.outdir, board, Path(tmp) / "fw").elf
            qx = xs[: args.qemu_images]
            for mode in ("sequential", "pipelined"):
                with QemuBoard(elf, board.qemu_machine, timeout=600) as qemu:
                    r = run_link(qemu.port_url, qx, mode == "pipelined", 5.0, ready=True)
                res[f"qemu_{mode}"] = r
                print(f"QEMU netduinoplus2, framed, {mode}: {r['inferences_per_s']:.1f} inf/s, "
                      f"efficiency {r['efficiency']:.3f}, retries {r['retries']}, first "
                      f"inference {r['first_inference_s']:.2f} s after connecting")
            res["qemu_fault_proxy"] = interleaved(elf, board.qemu_machine, qx, ys[: len(qx)],
                                                  [float(v) for v in args.rates.split(",")],
                                                  args.rounds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def interleaved(elf: Path, machine: str, xs: list[bytes], ys: list[bytes], rates: list[float],
                rounds: int) -> dict:
    """One QEMU board behind one fault proxy per rate, all open at once; the inputs run in
    ``rounds`` slices, each slice on every rate in turn, so machine load (the machine is
    shared) falls on every rate alike. Rates are inferences over the summed slice times. Inputs
    go ahead only within a slice: ones left in flight at its end would be computed off the
    clock while the other rates run (before this bound, up to AHEAD inputs per slice, 7 of 20
    with 200 inputs in 10 slices, on the clean link; fewer on a noisy one, whose last inputs
    wait for re-sends). ``rounds`` 1: each rate's inputs in one run, one rate after another."""
    from contextlib import ExitStack

    from toolchain.device.qemu import QemuBoard

    with ExitStack() as stack:
        links, proxies = [], []
        for k, rate in enumerate(rates):
            qemu = stack.enter_context(QemuBoard(elf, machine, timeout=1800))
            px = stack.enter_context(FaultProxy(qemu.port, flip=rate, drop=rate / 2,
                                                insert=rate / 5, seed=5 + k))
            link = stack.enter_context(DeviceLink.open(px.url, LinkPolicy(give_up_after=60)))
            link.wait_ready(10)
            link.info()
            links.append(link)
            proxies.append(px)
        seconds = [0.0] * len(rates)
        wrong = [0] * len(rates)
        b0 = [link.stats.bytes_out + link.stats.bytes_in for link in links]
        step = -(-len(xs) // rounds)
        for lo in range(0, len(xs), step):
            for k, link in enumerate(links):
                t0 = time.monotonic()
                hi = min(lo + step, len(xs))
                for i in range(lo, hi):
                    # inputs ahead only from this slice: work left in flight at its end would
                    # run off the clock while the other rates run
                    ahead = xs[i + 1 : min(i + 1 + AHEAD, hi)]
                    wrong[k] += link.infer(xs[i], ahead).output != ys[i]
                seconds[k] += time.monotonic() - t0
        out: dict = {}
        info = links[0].info_
        assert info is not None
        for k, rate in enumerate(rates):
            link = links[k]
            wire = link.stats.bytes_out + link.stats.bytes_in - b0[k]
            r = {"inferences_per_s": len(xs) / seconds[k], "wrong": wrong[k],
                 "ratio_to_clean": seconds[0] / seconds[k],
                 "efficiency": len(xs) * (info.input_bytes + info.output_bytes) / wire,
                 "retries": link.stats.retries, "faults": dict(proxies[k].counts),
                 "link": link.stats.as_dict()}
            out[str(rate)] = r
            print(f"QEMU through the fault proxy, {rate:.1%} flipped + {rate / 2:.2%} "
                  f"dropped + {rate / 5:.2%} inserted: {r['inferences_per_s']:.2f} inf/s "
                  f"= {r['ratio_to_clean']:.2f} x clean, payload/wire "
                  f"{r['efficiency']:.3f}, retries {r['retries']}, damaged frames in "
                  f"{link.stats.corrupt_frames} (repaired {link.stats.repaired_frames}), "
                  f"chunks re-sent {link.stats.chunks_resent}, wrong {r['wrong']}")
        return out


if __name__ == "__main__":
    sys.exit(main())
