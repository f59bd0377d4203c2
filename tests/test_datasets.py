"""Dataset loaders read the real formats (generated fixtures) and fail clearly otherwise."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from dataset_files import cifar10_tar, speech_commands_dir, svhn_dir, write_wav

from toolchain.errors import StqError
from toolchain.training import audio, datasets


def test_digits_is_bundled_and_split() -> None:
    d = datasets.digits()
    assert d.x_train.shape == (1437, 8, 8, 1) and d.x_test.shape == (360, 8, 8, 1)
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0 and d.classes == 10
    np.testing.assert_array_equal(np.bincount(d.y_test), np.bincount(datasets.digits().y_test))


def test_cifar10_from_tar_and_from_folder(tmp_path: Path) -> None:
    archive = cifar10_tar(tmp_path / "cifar-10-python.tar.gz")
    a = datasets.load("cifar10", archive)
    b = datasets.load("cifar10", tmp_path)  # the folder holding the archive
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x")
    c = datasets.load("cifar10", tmp_path / "x")
    assert a.x_train.shape == (40, 32, 32, 3) and a.x_test.shape == (8, 32, 32, 3)
    for other in (b, c):
        np.testing.assert_array_equal(a.x_train, other.x_train)
        np.testing.assert_array_equal(a.y_test, other.y_test)
    # channel-first rows 'RRR..GGG..BBB' become HWC: pixel (0, 0) red is byte 0, green 1024
    import pickle

    raw = pickle.loads((tmp_path / "x/cifar-10-batches-py/test_batch").read_bytes(),
                       encoding="bytes")[b"data"]
    expect = raw[0, [0, 1024, 2048]].astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(a.x_test[0, 0, 0], expect)


def test_svhn_mat(tmp_path: Path) -> None:
    import scipy.io

    d = datasets.load("svhn", svhn_dir(tmp_path))
    y_raw = scipy.io.loadmat(str(tmp_path / "test_32x32.mat"))["y"].reshape(-1)
    assert d.x_test.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(d.y_test, np.where(y_raw == 10, 0, y_raw))
    assert d.y_test.max() <= 9


def test_speech_commands_mfcc(tmp_path: Path) -> None:
    d = datasets.load("speech_commands", speech_commands_dir(tmp_path))
    assert d.x_train.shape[1:] == (49, 10, 1) and d.classes == 12
    assert set(d.y_test) >= set(range(10))  # one test clip per word
    assert datasets.KWS_LABELS.index("_silence_") in set(d.y_train)
    assert np.isfinite(d.x_train).all()


def test_mfcc_matches_the_mlperf_settings(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000.0
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t))
    x = audio.read_wav(tmp_path / "a.wav")
    f = audio.mfcc(x)
    assert f.shape == (49, 10, 1) and audio.FRAMES == 49
    np.testing.assert_array_equal(f, audio.mfcc(x))
    # scale invariance: the reference divides the waveform by its maximum
    np.testing.assert_allclose(f, audio.mfcc(0.25 * x), atol=1e-3)
    # a short clip is zero padded to one second
    assert audio.mfcc(x[:8000]).shape == (49, 10, 1)


def test_missing_files_name_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(StqError, match="needs --data-dir pointing at cifar-10-python.tar.gz"):
        datasets.load("cifar10")
    with pytest.raises(StqError, match=r"missing .*data_batch_1 \(expected cifar-10-python"):
        datasets.load("cifar10", tmp_path)
    with pytest.raises(StqError, match=r"missing .*train_32x32.mat"):
        datasets.load("svhn", tmp_path)
    with pytest.raises(StqError, match="does not exist"):
        datasets.load("speech_commands", tmp_path / "nope")
    with pytest.raises(StqError, match="no word folders"):
        datasets.load("speech_commands", tmp_path)
    with pytest.raises(StqError, match="unknown dataset 'mnist'"):
        datasets.load("mnist")


def test_corrupt_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(StqError, match="not a readable tar.gz"):
        datasets.load("cifar10", tmp_path / "c")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "train_32x32.mat").write_bytes(b"MATLAB junk")
    (tmp_path / "s" / "test_32x32.mat").write_bytes(b"MATLAB junk")
    with pytest.raises(StqError, match="not a readable SVHN .mat"):
        datasets.load("svhn", tmp_path / "s")
    (tmp_path / "w" / "yes").mkdir(parents=True)
    (tmp_path / "w" / "yes" / "x_nohash_0.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(StqError, match="is not a readable WAV"):
        datasets.load("speech_commands", tmp_path / "w")
    write_wav(tmp_path / "r.wav", np.zeros(100), rate=8000)
    with pytest.raises(StqError, match="sample rate 8000"):
        audio.read_wav(tmp_path / "r.wav")
