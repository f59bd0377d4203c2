"""The deployed ensemble: three differently quantized members linked into one firmware, their
outputs combined on the device, bit for bit equal to the host ensemble (QEMU netduinoplus2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

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
