"""Small generated files in the real published formats of CIFAR-10, SVHN and Speech Commands."""

from __future__ import annotations

import io
import pickle
import tarfile
import wave
from pathlib import Path

import numpy as np

WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


def cifar10_tar(path: Path, per_batch: int = 8, seed: int = 0) -> Path:
    """cifar-10-python.tar.gz with cifar-10-batches-py/data_batch_1..5 and test_batch."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            d = {b"batch_label": name.encode(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
            raw = pickle.dumps(d, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def svhn_dir(root: Path, n: int = 16, seed: int = 0) -> Path:
    import scipy.io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 means the digit 0
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})
    return root


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 0.999) * 32768).astype("<i2").tobytes())


def speech_commands_dir(root: Path, per_word: int = 3, seed: int = 0) -> Path:
    """<word>/<id>_nohash_<n>.wav for the ten words and two unknown words, background noise,
    and a testing_list.txt, like Speech Commands v0.02."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000.0
    test_list = []
    for k, word in enumerate(WORDS + ["bed", "cat"]):
        for i in range(per_word):
            tone = 0.5 * np.sin(2 * np.pi * (200 + 150 * k) * t) + 0.05 * rng.normal(size=t.size)
            n = 16000 - int(rng.integers(0, 3000))  # clips may be shorter than a second
            name = f"{word}/{i:08x}_nohash_0.wav"
            write_wav(root / name, tone[:n])
            if i == 0:
                test_list.append(name)
    write_wav(root / "_background_noise_" / "white_noise.wav", 0.3 * rng.normal(size=48000))
    (root / "testing_list.txt").write_text("\n".join(test_list) + "\n")
    (root / "validation_list.txt").write_text("")
    return root
