"""Every zoo model trains one short epoch on its
dataset (digits, or small generated files in the real CIFAR-10 / Speech Commands formats) and
converts with `stq convert` (the float variant is refused: its kernels are not quantized)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_files import cifar10_tar, speech_commands_dir

from toolchain.cli.main import main
from toolchain.training import zoo
from toolchain.training.train import TrainConfig, read_log, train


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | None]:
    root = tmp_path_factory.mktemp("data")
    return {"digits": None, "cifar10": cifar10_tar(root / "cifar-10-python.tar.gz"),
            "speech_commands": speech_commands_dir(root / "speech")}


def _check_conversion(model_path: str, variant: str, out: Path, capsys) -> None:
    code = main(["convert", model_path, "-o", str(out), "--json"])
    if variant == "fp":  # float weights (and a float input): a clear refusal
        assert code == 2 and "float" in capsys.readouterr().err
        return
    assert code == 0, capsys.readouterr().err
    s = json.loads(capsys.readouterr().out)
    kinds = [la["weights"] for la in s["layers"] if la["weights"]]
    if variant == "int8":
        assert set(kinds) == {"int8"}
    else:  # int8 first and last layers, ternary in between
        assert kinds[0] == kinds[-1] == "int8" and set(kinds[1:-1]) == {"ternary"}


TRAINED = [(m, "stq-jr") for m in sorted(zoo.MODELS)] + [("digits", v) for v in
                                                         ("fp", "int8", "stq")]


@pytest.mark.parametrize(("model", "variant"), TRAINED)
def test_zoo_model_trains_one_epoch_and_converts(model: str, variant: str, data_dirs,
                                                 tmp_path: Path, capsys) -> None:
    dataset = zoo.DEFAULT_DATASET[model]
    cfg = TrainConfig(model=model, variant=variant, data_dir=data_dirs[dataset], epochs=1,
                      batch_size=16, limit=32)
    r = train(cfg, tmp_path, progress=False)
    rows = read_log(Path(r.log_path))
    assert [int(row["epoch"]) for row in rows] == [1]
    assert np.isfinite(float(rows[0]["loss"]))
    assert (float(rows[0]["jr"]) > 0) == (variant == "stq-jr")
    summary = json.loads((tmp_path / f"{model}_{variant}.json").read_text())
    assert summary["config"]["dataset"] == dataset and summary["result"]["epochs"] == 1
    _check_conversion(r.model_path, variant, tmp_path / "out", capsys)


def test_stochastic_ternary_really_samples_while_training(tmp_path: Path) -> None:
    """With the learning phase set in the training step, stochastic_ternary takes its random
    branch: the same seed gives different weights than deterministic training, while two
    deterministic runs are identical (reproducibility)."""
    from toolchain.frontend.keras import load_keras_model

    def kernel(stochastic: bool, sub: str) -> np.ndarray:
        cfg = TrainConfig(epochs=1, limit=256, stochastic=stochastic)
        m = load_keras_model(train(cfg, tmp_path / sub, progress=False).model_path)
        return m.get_layer("conv2").get_weights()[0]

    det1, det2, sto = kernel(False, "a"), kernel(False, "b"), kernel(True, "c")
    np.testing.assert_array_equal(det1, det2)
    assert not np.array_equal(det1, sto)


def test_train_command(tmp_path: Path, capsys) -> None:
    assert main(["train", "--model", "digits", "--variant", "stq-jr", "--epochs", "1",
                 "--limit", "64", "--jr-layer", "act2=0.5", "-o", str(tmp_path),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["model_path"]).is_file() and 0.0 <= out["test_accuracy"] <= 1.0
    cfg = json.loads((tmp_path / "digits_stq-jr.json").read_text())["config"]
    assert cfg["jr_layers"] == {"act2": 0.5} and cfg["jr_lambda"] == 0.002
    assert main(["train", "--model", "vgg"]) == 2
    assert "invalid choice: 'vgg'" in capsys.readouterr().err
    assert main(["train", "--model", "resnet8", "--epochs", "1"]) == 2
    assert "needs --data-dir" in capsys.readouterr().err
    assert main(["train", "--jr-layer", "nope=1", "--epochs", "1", "-o", str(tmp_path)]) == 2
    assert "--jr-layer" in capsys.readouterr().err
