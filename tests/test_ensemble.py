"""The deployed ensemble: three differently quantized members linked into one firmware, their
outputs combined on the device, bit for bit equal to the host ensemble (QEMU netduinoplus2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from nm_sizes import nm_sizes

from toolchain.errors import StqError


def _members():
    from toolchain.frontend.keras import convert_model
    from toolchain.training import zoo

    models = [zoo.digits("int8"), zoo.digits("stq"),
              zoo.digits("quanos", bits={"conv1": 8, "conv2": 4, "logits": 8})]
    graphs = []
    for i, (m, name) in enumerate(zip(models, ("int8", "stq", "quanos"), strict=True)):
        rng = np.random.default_rng(i)  # varied weights and BN statistics: varied outputs
        for la in m.layers:
            if la.get_weights():
                la.set_weights([rng.normal(0.3 if w.ndim == 1 else 0.0,
                                           0.5 if w.ndim > 1 else 0.2, w.shape)
                                .astype(np.float32) ** (2 if "variance" in v.name else 1)
                                for w, v in zip(la.get_weights(), la.weights, strict=True)])
        g = convert_model(m, name=f"digits_{name}")
        g.options["packing"] = "2bit"
        graphs.append(g)
    return models, graphs


def test_combination_weights_and_hash():
    from toolchain.ensemble import combine

    assert combine.member_weights([0.125, 0.0625, 0.125]) == [65536, 32768, 65536]
    assert combine.member_weights([1.0, 1 / 3]) == [65536, 21845]
    assert combine.ensemble_hash(["a", "b"], [1, 2]) != combine.ensemble_hash(["b", "a"], [2, 1])


@pytest.mark.slow
def test_ensemble_on_qemu_equals_host_bit_for_bit(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    from toolchain.ensemble import combine, device
    from toolchain.ensemble.generate import write_ensemble
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    models, graphs = _members()
    man = write_ensemble(graphs, ["int8", "stq", "quanos"], tmp_path / "ens")
    c = tmp_path / "ens" / "c"
    assert {"m1_model.h", "m2_kernels.c", "m3_weights.c", "model.h", "model.c"} <= \
        {p.name for p in c.iterdir()}
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["hash"] == man["hash"]
    ens = combine.load(tmp_path / "ens")
    ds = datasets.load("digits")
    xq = reference.quantize_input(ens.g, ds.x_test[:12])
    host = ens.predict(xq)
    members = [reference.predict(g, xq) for g in graphs]
    assert len({r.tobytes() for r in host}) > 6  # outputs vary across inputs
    assert np.array_equal(host, ens.combine(members))
    assert any(not np.array_equal(host.argmax(1), m.argmax(1)) for m in members) or \
        len(set(host.argmax(1))) > 1
    elf = build(tmp_path / "ens", load_board("netduinoplus2"), tmp_path / "fw").elf
    s = device.validate(ens, xq, elf, tmp_path / "run", board="netduinoplus2",
                        labels=ds.y_test)
    assert s["validated"] == 12 and s["bit_exact"] == 12 and s["mismatches"] == 0
    assert s["mean_instructions"] and s["mean_instructions"] > 0
    # the white-box target averages the members' logits; its float scores track the integers
    kens = device.keras_ensemble(models)
    kl = np.log(kens.predict(ds.x_test[:12], verbose=0) + 1e-12)
    assert kl.shape == (12, 10)


def test_ensemble_rejects_members_with_other_inputs():
    from toolchain.ensemble.combine import Ensemble
    from toolchain.frontend.keras import convert_model
    from toolchain.training import zoo

    a = convert_model(zoo.digits("int8"), name="a")
    b = convert_model(zoo.digits("int8", input_shape=(8, 8, 2)), name="b")
    with pytest.raises(StqError, match="identical integer inputs"):
        Ensemble([a, b], ["a", "b"])
    with pytest.raises(StqError, match="2 to 8 members"):
        Ensemble([a], ["a"])


@pytest.mark.slow
def test_stq_ensemble_attacked_as_one_model_on_qemu(tmp_path, capsys):
    """`stq convert` each member, `stq ensemble`, `stq attack ENSEMBLE`: white-box through the
    members' averaged logits, black-box queries on the ensemble firmware (QEMU), every
    adversarial input equal on host and device; seeded black-box attacks give the same
    adversarial bytes with the device and with the host reference as the oracle."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    from toolchain.cli.main import main

    models, _ = _members()
    dirs = []
    for m, name in zip(models, ("int8", "stq", "quanos"), strict=True):
        m.save(tmp_path / f"digits_{name}.h5")
        assert main(["convert", str(tmp_path / f"digits_{name}.h5"), "-o",
                     str(tmp_path / name)]) == 0
        dirs.append(str(tmp_path / name))
    ens = tmp_path / "ens"
    capsys.readouterr()
    assert main(["ensemble", *dirs, "-o", str(ens), "--json"]) == 0
    man = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in man["members"]] == ["int8", "stq", "quanos"]
    assert all(m["source"].endswith(".h5") for m in man["members"])
    common = ["attack", str(ens), "--attacks", "fgsm,square,boundary", "--budget", "quick",
              "--limit", "3", "--square-iter", "10", "--boundary-iter", "2", "--no-sanity",
              "--json"]
    assert main([*common, "--board", "netduinoplus2", "-o", str(tmp_path / "dev")]) == 0
    dev = json.loads(capsys.readouterr().out)
    assert dev["integer"] and dev["device"] == "board netduinoplus2"
    assert dev["host_device_mismatches"] == 0 and dev["clean"]["host_device_equal"]
    assert {r["attack"] for r in dev["rows"]} == {"fgsm", "square", "boundary"}
    assert any(r["queries"] for r in dev["rows"] if r["attack"] == "square")
    assert main([*common, "--oracle", "reference", "-o", str(tmp_path / "ref")]) == 0
    ref = json.loads(capsys.readouterr().out)

    def advs(d):
        return {(c["key"], c["start"]): c["adv"] for c in map(
            json.loads, (tmp_path / d / "chunks.jsonl").read_text().splitlines())}

    assert advs("dev") == advs("ref")  # the same adversarial bytes on either oracle
    assert [r["acc"]["host"] for r in ref["rows"]] == [r["acc"]["host"] for r in dev["rows"]]
    # an ensemble without its members' Keras models cannot be attacked white-box: one line
    man_path = ens / "ensemble.json"
    bad = json.loads(man_path.read_text())
    bad["members"][1]["source"] = None
    man_path.write_text(json.dumps(bad))
    assert main(["attack", str(ens), "--attacks", "fgsm", "--limit", "2", "-o",
                 str(tmp_path / "bad")]) == 2
    assert "member(s) stq" in capsys.readouterr().err


def _resnet8_members(ds, tmp_path) -> list:
    """Three ResNet-8 members (int8, stq, a Quanos mix), each trained for one short epoch on
    real images, so that outputs and predictions vary across inputs."""
    from toolchain.frontend.keras import convert_model, load_keras_model
    from toolchain.training.train import TrainConfig, train

    variants = (("int8", {}), ("stq", {}),
                ("quanos", {"conv1": 8, "b1_conv1": 4, "b2_conv1": 2, "logits": 8}))
    graphs = []
    for i, (v, bits) in enumerate(variants):
        cfg = TrainConfig(model="resnet8", variant=v, dataset="cifar10", epochs=1, limit=1500,
                          seed=i, bits=bits)
        r = train(cfg, tmp_path / f"train-{v}", progress=False, dataset=ds)
        graphs.append(convert_model(load_keras_model(r.model_path), name=f"resnet8_{v}"))
    return graphs


@pytest.mark.slow
def test_resnet8_ensemble_shares_one_arena_and_stays_bit_exact(tmp_path):
    """Three ResNet-8 members in one netduinoplus2 firmware: one arena of the largest member's
    size plus the input, accumulators and output (not the sum of the members' arenas, which
    overflowed the board's 128 KB), one shared scratch, the budget booking exactly what the ELF
    holds, and the device output bit for bit the host ensemble's."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    from pathlib import Path

    from toolchain.budget.analysis import analyze_outdir, checks
    from toolchain.budget.elf import ElfImage, model_symbol_sizes, reconcile
    from toolchain.ensemble import combine, device
    from toolchain.ensemble.generate import write_ensemble
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build
    from toolchain.reference import model as reference
    from toolchain.training import datasets
    from toolchain.training.calibrate import check_non_degenerate

    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-subset"
    if not data.is_dir():
        pytest.skip(f"needs the CIFAR-10 subset at {data}")
    ds = datasets.load("cifar10", data)
    graphs = _resnet8_members(ds, tmp_path)
    man = write_ensemble(graphs, ["int8", "stq", "quanos"], tmp_path / "ens")
    ens = combine.load(tmp_path / "ens")
    xq = reference.quantize_input(ens.g, ds.x_test[:10])
    for g in graphs:
        check_non_degenerate(g, xq, min_nonzero=0.3)  # trained ReLU layers: about half 0
    ram = man["ram"]
    arenas, scratches = ram["member_arenas"], ram["member_scratch"]
    assert min(arenas) > 16_000  # real ResNet-8 activations (32x32x16 int8 tensors)
    overhead = ram["arena"] - max(arenas)
    assert overhead == 3072 + 8 * 10 + 4 * 10  # the input, int64 accumulators, int32 output
    assert ram["scratch"] == max(scratches)
    board = load_board("netduinoplus2")
    fw = build(tmp_path / "ens", board, tmp_path / "fw")
    used = fw.usage["RAM"][0]
    # what one arena and one scratch per member (the layout before) would have needed
    before = sum(arenas) + 3072 + 4 * 10 + sum(scratches)
    saved = before - (ram["arena"] + ram["scratch"])
    assert saved >= 2 * max(arenas) and used + saved > board.ram.length  # it would not link
    header = (tmp_path / "ens" / "c" / "model.h").read_text()
    assert f"#define STQ_ARENA_BYTES {ram['arena']}u" in header

    b = analyze_outdir(tmp_path / "ens")  # `stq budget ENSEMBLE_DIR`
    elf = ElfImage(fw.elf)
    summary = reconcile(b, elf, board, fw.map)
    assert b.arena_bytes == ram["arena"] and b.scratch_bytes == ram["scratch"]
    assert b.symbols["stq_arena"] == elf.objects["stq_arena"] == ram["arena"]
    assert not any(s.endswith(("_arena", "_scratch")) and not s.startswith("stq_")
                   for s in elf.objects)  # no member keeps an arena or a scratch of its own
    assert summary["model_ram"] == ram["arena"] + ram["scratch"] + 4 * 4  # + the 4 hooks
    booked = model_symbol_sizes(b, elf)
    in_objects, in_elf = nm_sizes(*(fw.build_dir / "obj" / "model").glob("*.o")), nm_sizes(fw.elf)
    assert {n for n, v in in_objects.items() if v and n in in_elf} == set(booked)  # all booked
    flash = {n: v for n, v in booked.items() if n not in b.ram_objects | {"stq_scratch"}}
    assert sum(flash.values()) == b.model_flash
    assert all(c.ok for c in checks(b, 410_000, board))

    host = ens.predict(xq)
    assert len({r.tobytes() for r in host}) == len(xq)  # outputs vary across inputs
    assert len(set(host.argmax(1))) >= 3  # and so do the predictions
    s = device.validate(ens, xq, fw.elf, tmp_path / "run", board="netduinoplus2",
                        labels=ds.y_test)
    assert s["validated"] == len(xq) and s["bit_exact"] == len(xq) and s["mismatches"] == 0
