"""Every bad input through the CLI (docs/errors.md keeps the table): exit code 2, exactly one
line on stderr naming the problem, no traceback, and nothing left behind in the working folder.
Outputs that are written are readable (0644 / 0755 under umask 022), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import build_parser, main

FAKE_ARM_ELF = b"\x7fELF\x01\x01\x01" + bytes(11) + (40).to_bytes(2, "little") + bytes(32)

# (id, argv with {A} = converted model OUTDIR and {H} = its .h5, words the one line must hold)
CASES = [
    ("convert-missing-model", "convert missing.h5 -o new/out", "does not exist"),
    ("convert-not-a-model", "convert notmodel.h5 -o new/out", "cannot load model"),
    ("convert-out-below-file", "convert {H} -o afile/out", "is a file, not a directory"),
    ("convert-bad-packing", "convert {H} -o new/out --packing 3bit", "invalid choice"),
    ("reference-empty-inputs", "reference {A} --inputs empty.npy", "hold no input"),
    ("reference-wrong-shape", "reference {A} --inputs shape.npy", "the model takes (N, 8, 8, 1)"),
    ("reference-float-inputs", "reference {A} --inputs float.npy", "expects integer"),
    ("reference-missing-inputs", "reference {A} --inputs missing.npy", "cannot read inputs"),
    ("reference-not-npy", "reference {A} --inputs afile", "cannot read inputs"),
    ("reference-out-below-file", "reference {A} --inputs good.npy -o afile/y.npy", "is a file"),
    ("reference-out-unwritable", "reference {A} --inputs good.npy -o /proc/y.npy",
     "cannot write /proc/y.npy"),
    ("reference-out-is-dir", "reference {A} --inputs good.npy -o adir", "is a directory"),
    ("reference-missing-artifact", "reference nope --inputs good.npy", "does not exist"),
    ("build-board-is-a-path", "build {A} --board ../boards/netduinoplus2", "not a board name"),
    ("build-board-toml", "build {A} --board netduinoplus2.toml", "not a board name"),
    ("build-unknown-board", "build {A} --board nope", "known boards: netduinoplus2"),
    ("build-out-below-file", "build {A} --board netduinoplus2 -o afile/fw", "is a file"),
    ("build-jobs-zero", "build {A} --board netduinoplus2 -j 0", "must be >= 1"),
    ("build-missing-model", "build nope --board netduinoplus2", "does not exist"),
    ("build-boards-dir-missing", "build {A} --board x --boards-dir nodir", "not a directory"),
    ("run-garbage-elf", "run --board netduinoplus2 --elf afile", "not an ELF file"),
    ("run-missing-elf", "run --board netduinoplus2 --elf missing.elf", "cannot read firmware"),
    ("run-missing-input", "run --board netduinoplus2 --elf fake.elf --input missing.bin",
     "cannot read --input missing.bin"),
    ("run-real-board", "run --board nucleo-f446re --elf fake.elf", "not emulated"),
    ("run-timeout-zero", "run --board netduinoplus2 --elf fake.elf --timeout 0", "> 0"),
    ("ensemble-not-an-outdir", "ensemble {A} adir -o new/ens", "adir is not a `stq convert`"),
    ("ensemble-names-mismatch", "ensemble {A} {A} -o new/ens --names a", "2 members"),
    ("ensemble-one-member", "ensemble {A} -o new/ens", "2 to 8 members"),
    ("budget-negative", "budget {A} --budget -5KB", "is not a size"),
    ("budget-zero", "budget {A} --budget 0", "more than 0 bytes"),
    ("budget-unit", "budget {A} --budget 12XB", "is not a size"),
    ("budget-garbage-elf", "budget {A} --board netduinoplus2 --elf afile", "not an ELF"),
    ("validate-limit-zero", "validate --board netduinoplus2 --artifact {A} --limit 0",
     "--limit: must be >= 1"),
    ("validate-limit-negative", "validate --board netduinoplus2 --artifact {A} --limit -1",
     "--limit: must be >= 1"),
    ("validate-unknown-scheme", "validate --board netduinoplus2 --artifact {A} --port foo://x",
     "unknown URL scheme 'foo'"),
    ("validate-unknown-board", "validate --board nope --artifact {A}", "unknown board 'nope'"),
    ("validate-timeout-negative", "validate --board virtual --artifact {A} --timeout -1",
     "must be a finite number > 0"),
    ("train-epochs-zero", "train --epochs 0", "must be >= 1"),
    ("train-unknown-model", "train --model nope", "invalid choice"),
    ("train-unknown-variant", "train --variant nope", "invalid choice"),
    ("train-limit-zero", "train --limit 0", "must be >= 1"),
    ("train-nan-rate", "train --learning-rate nan", "finite number > 0"),
    ("demo-validate-limit-zero", "demo --validate-limit 0", "must be >= 1"),
    ("demo-unknown-board", "demo --board nope", "unknown board 'nope'"),
    ("demo-missing-model", "demo --model missing.h5", "does not exist"),
    ("flash-missing-elf", "flash --board nucleo-f446re --elf missing.elf", "does not exist"),
    ("boards-dir-missing", "boards --boards-dir nodir", "not a directory"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STQ_BOARDS_DIR", raising=False)
    np.save("empty.npy", np.zeros((0, 8, 8, 1), np.uint8))
    np.save("shape.npy", np.zeros((2, 4, 4), np.uint8))
    np.save("float.npy", np.zeros((2, 8, 8, 1), np.float32))
    np.save("good.npy", np.zeros((2, 8, 8, 1), np.uint8))
    Path("afile").write_text("a regular file\n")
    Path("notmodel.h5").write_text("not a model\n")
    Path("fake.elf").write_bytes(FAKE_ARM_ELF)
    Path("adir").mkdir()
    return tmp_path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _stq(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


@pytest.mark.parametrize(("argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(argv: str, needle: str, workdir: Path, digits_outdir: Path,
                               digits_h5: Path, capsys) -> None:
    words = argv.format(A=digits_outdir, H=digits_h5).split()
    before = _tree(workdir)
    start = time.monotonic()
    code = _stq(words)
    seconds = time.monotonic() - start
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"stq {words[0]}: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _tree(workdir) == before  # nothing partial, no empty folders
    assert seconds < 30  # refused at once (e.g. no retrying an impossible port)


def test_outputs_are_readable(digits_h5: Path, tmp_path: Path, capsys) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "m"
        assert main(["convert", str(digits_h5), "-o", str(out)]) == 0
        np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1), np.uint8))
        y = tmp_path / "y.npy"
        assert main(["reference", str(out), "--inputs", str(tmp_path / "x.npy"), "-o",
                     str(y)]) == 0
    finally:
        os.umask(old)
    for f in (out / "model.stqa", out / "convert.json", y, *sorted((out / "c").iterdir())):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    assert stat.S_IMODE((out / "c").stat().st_mode) == 0o755


def test_every_option_has_help_and_closed_sets_are_choices() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    missing = []
    for name, p in sub.choices.items():
        for action in p._actions:
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
    train = {a.dest: a for a in sub.choices["train"]._actions}
    assert set(train["model"].choices) >= {"digits", "resnet8", "dscnn"}
    assert set(train["variant"].choices) == {"fp", "int8", "stq", "stq-jr", "quanos"}
    assert "digits" in train["dataset"].choices
    with_json = {n for n, p in sub.choices.items()
                 if any("--json" in a.option_strings for a in p._actions)}
    assert with_json >= {"convert", "reference", "build", "boards", "run", "budget",
                         "validate", "train", "demo", "attack", "report"}
    text = sub.choices["build"].format_help()
    assert "ARTIFACT_OR_OUTDIR" in text and "(default: 2)" in text
    assert "netduinoplus2" in text  # the shipped boards are listed


def test_user_boards_dir(tmp_path: Path, digits_outdir: Path, capsys) -> None:
    from toolchain.firmware.boards import BOARDS_DIR

    d = tmp_path / "myboards"
    d.mkdir()
    text = (BOARDS_DIR / "nucleo-f446re.toml").read_text()
    (d / "myf446.toml").write_text(text.replace('name = "nucleo-f446re"', 'name = "myf446"'))
    assert main(["boards", "--boards-dir", str(d), "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert "myf446" in names and "netduinoplus2" in names
    assert main(["budget", str(digits_outdir), "--board", "myf446", "--boards-dir", str(d),
                 "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["board"] == "myf446"
    assert main(["budget", str(digits_outdir), "--board", "myf446"]) == 2  # not without it
    assert "unknown board 'myf446'" in capsys.readouterr().err
