"""Board farm (toolchain.farm): work sharded over several QEMU boards, one of them killed in
the middle of the run, gives the same results file as one board; the same on a two-node Ray
cluster. Real QEMU netduinoplus2 boards, real ART Square attacks."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolchain.errors import StqError
from toolchain.farm.pool import FarmSpec, read_devices_file

BOARD = "netduinoplus2"


@pytest.fixture(scope="module")
def elf(digits_outdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build

    return build(digits_outdir, load_board(BOARD), tmp_path_factory.mktemp("farm-fw")).elf


def qemu_pid(port_url: str) -> int:
    """The qemu-system-arm process serving ``socket://127.0.0.1:PORT``."""
    port = port_url.rsplit(":", 1)[1]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"qemu-system-arm") and any(
                a.startswith(f"tcp:127.0.0.1:{port},".encode()) for a in cmd):
            return int(pid)
    raise AssertionError(f"no QEMU on {port_url}")


class Killer:
    """Kill ``victim``'s QEMU at the start of its item number ``after + 1`` (so the item it
    has in flight fails and must be requeued), holding every other device after its first
    item until then (at most 2 min), so a board that booted first cannot drain the queue and
    leave the victim nothing to fail on: without the hold the test raced the boots."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, victim: str, after: int) -> None:
        from toolchain.farm import scheduler

        self.victim, self.after, self.started = victim, after, 0
        self.killed: list[int] = []
        self.done = threading.Event()
        original = scheduler.LocalFarm.map

        def map_(farm: Any, items: list, work: Any, on_result: Any) -> None:
            def work_(dev: Any, item: Any) -> Any:
                if dev.name == self.victim and not self.killed:
                    self.started += 1
                    if self.started > self.after:
                        pid = qemu_pid(dev.link.url)
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
                        self.done.set()
                return work(dev, item)

            original(farm, items, work_, on_result)

        monkeypatch.setattr(scheduler.LocalFarm, "map", map_)

    def on_item(self, dev: Any, item: Any) -> None:
        """The FarmSpec.on_item hook: the other devices wait for the kill."""
        if dev.name != self.victim:
            self.done.wait(120)


def lines(path: Path) -> list[str]:
    """The results.jsonl lines, whole: instruction counts are exact (interrupt handlers are
    accounted, docs/protocol.md), so every field, ``instructions`` included, must be equal."""
    return path.read_text().splitlines()


def validate_run(artifact: Path, elf: Path, out: Path, farm: FarmSpec | None) -> dict:
    from toolchain.validate.run import ValidateConfig, validate

    return validate(ValidateConfig(board=BOARD, artifact=artifact, out_dir=out, limit=32,
                                   elf=elf, progress=False, farm=farm))


@pytest.fixture(scope="module")
def one_board(digits_outdir: Path, elf: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[dict, Path]:
    """The plain one-board `stq validate` run every farm run must equal."""
    out = tmp_path_factory.mktemp("one-board")
    return validate_run(digits_outdir, elf, out, None), out


def test_validate_on_two_boards_one_killed_equals_one_board(
        digits_outdir: Path, elf: Path, one_board: tuple[dict, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from toolchain.validate.run import RESULTS

    one, one_out = one_board
    kill = Killer(monkeypatch, "qemu1", 1)
    farm = FarmSpec(BOARD, digits_outdir, tmp_path / "farm", qemu=2, elf=elf, block=4,
                    on_item=kill.on_item)
    two = validate_run(digits_outdir, elf, tmp_path / "farm", farm)
    assert kill.killed, "qemu1 was never killed"
    rows = {r["name"]: r for r in two["session"]["farm"]["devices"]}
    assert "its QEMU exited (signal 9)" in rows["qemu1"]["failed"]
    assert rows["qemu1"]["requeued"] == 1
    assert rows["qemu0"]["items"] > rows["qemu1"]["items"] >= 1
    assert two["validated"] == one["validated"] == 32 and two["bit_exact"] == 32
    a, b = one_out / RESULTS, tmp_path / "farm" / RESULTS
    assert lines(a) == lines(b)
    recs = [json.loads(line) for line in lines(a)]
    assert len({tuple(r["y"]) for r in recs}) > 10  # outputs that vary across inputs
    assert all(r["instructions"] > 0 for r in recs)  # counted, and compared above
    md = (tmp_path / "farm" / "summary.md").read_text()
    assert "| qemu1 | local |" in md and "1 failed" in md


def square_run(keras: Any, h5: Path, artifact: Path, out: Path, farm: FarmSpec) -> dict:
    from toolchain.robustness import evaluate as E
    from toolchain.robustness.registry import for_dataset

    cfg = for_dataset("digits", budget="quick", attacks=("square",), eps=(0.1,), limit=3,
                      chunk=3, square_iter=12, seed=3, convergence=False, sanity=False)
    return E.evaluate(h5, artifact, cfg, "digits", out, keras_model=keras, farm=farm,
                      log=lambda s: None)


def chunks(out: Path) -> dict:
    recs = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    return {(r["key"], r["start"]): (r["adv"], r["queries"], r["exhausted"]) for r in recs}


def scores(res: dict) -> list:
    return [(r["attack"], r["eps"], r["acc"], r["host_device_equal"], r["queries"],
             r["linf_median"]) for r in res["rows"]] + [res["clean"]]


@pytest.fixture(scope="module")
def one_square(digits_h5: Path, digits_keras: Any, digits_outdir: Path, elf: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The Square attack on one board (one image per call, seeded by image index)."""
    out = tmp_path_factory.mktemp("one-square")
    farm = FarmSpec(BOARD, digits_outdir, out, qemu=1, elf=elf)
    return square_run(digits_keras, digits_h5, digits_outdir, out, farm), out


def test_square_attack_on_two_boards_one_killed_equals_one_board(
        digits_h5: Path, digits_keras: Any, digits_outdir: Path, elf: Path,
        one_square: tuple[dict, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    from toolchain.training import datasets

    one, one_out = one_square
    kill = Killer(monkeypatch, "qemu1", 1)
    farm = FarmSpec(BOARD, digits_outdir, tmp_path / "two", qemu=2, elf=elf,
                    on_item=kill.on_item)
    two = square_run(digits_keras, digits_h5, digits_outdir, tmp_path / "two", farm)
    assert kill.killed
    rows = {r["name"]: r for r in two["farm"]["devices"]}
    assert "its QEMU exited (signal 9)" in rows["qemu1"]["failed"]
    assert rows["qemu1"]["requeued"] == 1
    c1, c2 = chunks(one_out), chunks(tmp_path / "two")
    assert c1 == c2 and c1[("square@0.1", 0)][1] > 0  # same adversarial bytes, same queries
    adv = np.frombuffer(base64.b64decode(c1[("square@0.1", 0)][0]), "<f4")
    x = np.asarray(datasets.load("digits").x_test[:3], np.float32).ravel()
    assert np.abs(adv - x).max() > 0.05  # the attack really changed the images
    assert scores(one) == scores(two) and two["host_device_mismatches"] == 0


def test_devices_file_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "devices.txt"
    f.write_text("# lab\nlab1 /dev/ttyACM0\nsocket://10.0.0.2:4000  # bench\nqemu\n")
    specs = read_devices_file(f)
    assert [(s.name, s.port) for s in specs] == [
        ("lab1", "/dev/ttyACM0"), ("socket://10.0.0.2:4000", "socket://10.0.0.2:4000"),
        ("file-qemu4", None)]
    f.write_text("a b c\n")
    with pytest.raises(StqError, match=r"devices.txt:1: expected '\[NAME\] URL'"):
        read_devices_file(f)
    with pytest.raises(StqError, match="the farm has no devices"):
        FarmSpec(BOARD, tmp_path, tmp_path).devices()
    f.write_text("a /dev/ttyA\na /dev/ttyB\n")
    with pytest.raises(StqError, match="names must be unique; repeated: a"):
        FarmSpec(BOARD, tmp_path, tmp_path, devices_file=f).devices()
    assert FarmSpec(BOARD, tmp_path, tmp_path, ports=("socket://h:1", "socket://h:2")).is_farm()
    assert not FarmSpec(BOARD, tmp_path, tmp_path, ports=("socket://h:1",)).is_farm()


@pytest.mark.slow
@pytest.mark.long
def test_two_node_ray_cluster_equals_one_board(
        digits_h5: Path, digits_keras: Any, digits_outdir: Path, elf: Path,
        one_board: tuple[dict, Path], one_square: tuple[dict, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Ray nodes on this host, each advertising one QEMU board: validation and a Square
    attack give the one-board results."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from toolchain.validate.run import RESULTS

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "resources": {"stq-board:a": 1}})
    try:
        cluster.add_node(num_cpus=1, resources={"stq-board:b": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)

        def farm(out: Path) -> FarmSpec:
            return FarmSpec(BOARD, digits_outdir, out, elf=elf, block=4, ray=cluster.address)

        one, one_out = one_board
        two = validate_run(digits_outdir, elf, tmp_path / "ray", farm(tmp_path / "ray"))
        hosts = {r["name"].split("@")[0]: r for r in two["session"]["farm"]["devices"]}
        assert sorted(hosts) == ["a#0", "b#0"]  # one board on each node
        assert all(r["items"] >= 1 and not r["failed"] for r in hosts.values())
        assert lines(one_out / RESULTS) == \
            lines(tmp_path / "ray" / RESULTS)
        assert one["bit_exact"] == two["bit_exact"] == 32

        a1, a1_out = one_square
        a2 = square_run(digits_keras, digits_h5, digits_outdir, tmp_path / "a2",
                        farm(tmp_path / "a2"))
        assert chunks(a1_out) == chunks(tmp_path / "a2")
        assert scores(a1) == scores(a2) and a2["host_device_mismatches"] == 0
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_missing_gives_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from toolchain.farm.ray_farm import cluster_devices, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(StqError, match=r"--ray needs Ray, an optional extra: pip install "
                                       r"'stq\[farm\]'"):
        import_ray()
    nodes = [{"Alive": True, "NodeManagerAddress": "10.0.0.5",
              "Resources": {"CPU": 2.0, "stq-board:lab": 2.0, "stq-port:/dev/ttyACM0": 1.0}},
             {"Alive": False, "NodeManagerAddress": "10.0.0.6",
              "Resources": {"stq-board:gone": 1.0}}]
    found = [(k, s.name, s.port) for k, s in cluster_devices(nodes)]
    assert found == [("stq-board:lab", "lab#0@10.0.0.5", None),
                     ("stq-board:lab", "lab#1@10.0.0.5", None),
                     ("stq-port:/dev/ttyACM0", "/dev/ttyACM0@10.0.0.5", "/dev/ttyACM0")]
