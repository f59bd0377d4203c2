"""The farm options shared by `stq validate`, `stq attack` and `stq experiment`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain.farm.pool import FarmSpec


def add_farm_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("board farm (several devices; docs/farm.md)")
    g.add_argument("--devices", type=Path, metavar="FILE",
                   help="devices file: one '[NAME] URL' per line (a serial port, a pyserial URL "
                        "or 'qemu' for an emulated board); work is sharded over all of them")
    g.add_argument("--qemu", type=int, default=0, metavar="N",
                   help="start N QEMU boards of --board and shard the work over them")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="run on a Ray cluster ('auto', or ray://HOST:PORT): one actor per device "
                        "its nodes advertise (needs `pip install stq[farm]`)")
    g.add_argument("--block", type=int, default=8,
                   help="inputs per validation work item on a farm (default %(default)s)")


def farm_from_args(args: argparse.Namespace, artifact: Path, work_dir: Path,
                   ports: list[str] | None, progress: bool = True) -> FarmSpec | None:
    """The FarmSpec the options ask for, or None for the plain one-device path."""
    return checked(FarmSpec(board=getattr(args, "board", None), artifact=artifact,
                            work_dir=work_dir, ports=tuple(ports or ()),
                            devices_file=args.devices, qemu=args.qemu,
                            elf=getattr(args, "elf", None), timeout=getattr(args, "timeout", None),
                            give_up_after=getattr(args, "give_up_after", None),
                            ray=args.ray, block=args.block, progress=progress))


def checked(spec: FarmSpec) -> FarmSpec | None:
    """``spec`` after the checks every command makes before writing anything (--block, the
    devices file, Ray installed), or None when it asks for the plain one-device path."""
    if spec.block < 1:
        from toolchain.errors import StqError

        raise StqError(f"--block must be >= 1, got {spec.block}")
    if not spec.is_farm():
        return None
    spec.devices()  # a bad devices file fails here, before anything is written
    if spec.ray:
        from toolchain.farm.ray_farm import import_ray

        import_ray()
    return spec


def write_farm_table(out: Path, farm: dict) -> str:
    """OUT/farm.md: the per-device table of an attack campaign (also in results.json)."""
    from toolchain.farm.report import farm_table
    from toolchain.fsutil import write_text

    text = "\n".join(["## Devices", "", *farm_table(farm)]) + "\n"
    write_text(out / "farm.md", text)
    return text
