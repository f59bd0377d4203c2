"""Instructions per inference of a converted model on QEMU netduinoplus2 (STM32F405).

Builds the firmware for netduinoplus2, boots it under ``-icount shift=0`` (one instruction is
1 ns of virtual time; TIM2 with prescaler 0 counts instructions, SysTick counts 168 MHz ticks,
about 5.95 instructions per tick) and reports, on digits test images: instructions and ticks
per inference, the per-layer split (the layer hook's small overhead lands in the next layer)
and instructions per multiply-accumulate (STQ_MACS). Instructions are not silicon cycles.

    .venv/bin/python benchmarks/qemu_cost.py OUTDIR [--images 20] [--json cost.json]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_cli  # noqa: E402

from toolchain.device.qemu import QemuBoard  # noqa: E402
from toolchain.device.text_client import StqDevice  # noqa: E402
from toolchain.firmware.boards import load_board  # noqa: E402
from toolchain.firmware.build import build  # noqa: E402

BOARD = "netduinoplus2"


def digits_inputs(outdir: Path, n: int, input_bytes: int) -> list[bytes]:
    """Integer digits test images when the artifact is there, else fixed pseudo-random bytes."""
    artifact = outdir / "model.stqa"
    if artifact.is_file():
        from toolchain.ir import artifact as art
        from toolchain.reference import model as reference
        from toolchain.training import datasets

        g = art.load(artifact)
        xs = reference.quantize_input(g, datasets.digits().x_test[:n])
        return [x.tobytes() for x in xs]
    print(f"note: no {artifact}, using pseudo-random inputs", file=sys.stderr)
    return [bytes((i * 131 + k * 17) % 97 for i in range(input_bytes)) for k in range(n)]


def measure(outdir: Path, images: int, build_dir: Path, timeout: float,
            inputs: list[bytes] | None = None) -> dict:
    """Cost on ``inputs`` (default: digits_inputs); the outputs are returned too."""
    board = load_board(BOARD)
    result = build(outdir, board, build_dir)
    with QemuBoard(result.elf, board.qemu_machine, timeout=timeout) as qemu:
        with StqDevice.open(qemu.port_url, timeout=60) as dev:
            info = dev.hello()
            if inputs is None:
                inputs = digits_inputs(outdir, images, info.input_bytes)
            runs = [dev.infer(x) for x in inputs]
            costs = [c for _, c in runs]
            dev.upload(inputs[0])
            layers = dev.profile()
            dev.quit()
    instr = [c.instructions or 0 for c in costs]
    ticks = [c.ticks for c in costs]
    mean_instr = statistics.fmean(instr)
    return {
        "board": BOARD,
        "model": info.model,
        "hash": info.hash,
        "build": info.build,
        "flash_bytes": result.usage["FLASH"][0],
        "ram_bytes": result.usage["RAM"][0],
        "images": len(inputs),
        "macs": info.macs,
        "instructions_mean": mean_instr,
        "instructions_min": min(instr),
        "instructions_max": max(instr),
        "ticks_mean": statistics.fmean(ticks),
        "instructions_per_tick": mean_instr / statistics.fmean(ticks),
        "instructions_per_mac": mean_instr / info.macs if info.macs else None,
        "outputs": [y.hex() for y, _ in runs],
        "layers": [
            {"index": c.index, "name": c.name, "ticks": c.ticks, "instructions": c.instructions}
            for c in layers
        ],
    }


def report(r: dict) -> str:
    lines = [
        f"{r['model']} ({r['hash'][:12]}) on {r['board']} under QEMU -icount shift=0, "
        f"build {r['build']}: flash {r['flash_bytes']} B, RAM {r['ram_bytes']} B",
        f"  {r['images']} images: {r['instructions_mean']:.0f} instructions per inference "
        f"(min {r['instructions_min']}, max {r['instructions_max']}), "
        f"{r['ticks_mean']:.0f} SysTick ticks ({r['instructions_per_tick']:.3f} instr/tick)",
    ]
    if r["instructions_per_mac"] is not None:
        lines.append(f"  {r['macs']} MACs: {r['instructions_per_mac']:.2f} instructions per MAC")
    lines.append("  per layer (first image):")
    total = sum(layer["instructions"] or 0 for layer in r["layers"]) or 1
    for layer in r["layers"]:
        n = layer["instructions"] or 0
        lines.append(
            f"    {layer['index']:3d} {layer['name']:28s} {n:10d} instr {100 * n / total:5.1f} %"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_cli.parser(__doc__)
    parser.add_argument("outdir", type=Path, help="OUTDIR of `stq convert` (model.stqa, c/)")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--build-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    def work() -> dict:
        with tempfile.TemporaryDirectory(prefix="stq-bench-") as tmp:
            return measure(args.outdir, args.images, args.build_dir or Path(tmp) / BOARD,
                           args.timeout)

    return bench_cli.finish("qemu_cost", work, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
