"""Dataset loaders. Nothing is downloaded: digits ships with scikit-learn; CIFAR-10, SVHN and
Google Speech Commands are read from the user's local files, in their published formats.

Every loader returns real-valued NHWC float32 inputs as the zoo models take them (images in
[0, 1], MFCC features as computed by toolchain/audio.py) and integer labels.
"""

from __future__ import annotations

import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.errors import StqError


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # float32, NHWC, real values the model expects
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int


def digits(data_dir: str | Path | None = None, test_fraction: float = 0.2,
           seed: int = 0) -> Dataset:
    """scikit-learn's digits, pixels scaled from 0..16 to [0, 1]; a fixed, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    return Dataset("digits", xtr, ytr, xte, yte, 10)


# ---- CIFAR-10 ("CIFAR-10 python version": cifar-10-python.tar.gz or its extracted folder) ----
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"


def cifar10(data_dir: str | Path | None) -> Dataset:
    root = _need_dir(data_dir, "cifar10", "cifar-10-python.tar.gz or cifar-10-batches-py/")
    archive = root / "cifar-10-python.tar.gz" if root.is_dir() else root
    if archive.is_file() and archive.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(archive) as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                batches = {n: _cifar_batch(tar.extractfile(members[n]).read(), f"{archive}:{n}")
                           for n in [*CIFAR_TRAIN, CIFAR_TEST] if n in members}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise StqError(f"cifar10: {archive} is not a readable tar.gz ({exc})") from None
        missing = [n for n in [*CIFAR_TRAIN, CIFAR_TEST] if n not in batches]
        if missing:
            raise StqError(f"cifar10: {archive} lacks {', '.join(missing)} "
                           "(expected cifar-10-batches-py/data_batch_1..5 and test_batch)")
    else:
        folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
        batches = {}
        for n in [*CIFAR_TRAIN, CIFAR_TEST]:
            f = folder / n
            if not f.is_file():
                raise StqError(f"cifar10: missing {f} (expected cifar-10-python.tar.gz or the "
                               "extracted cifar-10-batches-py/ with data_batch_1..5 and "
                               f"test_batch in {root})")
            batches[n] = _cifar_batch(f.read_bytes(), str(f))
    xtr = np.concatenate([batches[n][0] for n in CIFAR_TRAIN])
    ytr = np.concatenate([batches[n][1] for n in CIFAR_TRAIN])
    return Dataset("cifar10", xtr, ytr, *batches[CIFAR_TEST], 10)


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(raw, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt batch
        raise StqError(f"cifar10: {where} is not a CIFAR-10 python batch ({type(exc).__name__})"
                       ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise StqError(f"cifar10: {where} has data of shape {data.shape}; expected (N, 3072) "
                       "with N labels")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return x, labels


# ---- SVHN (cropped digits: train_32x32.mat, test_32x32.mat) ----
def svhn(data_dir: str | Path | None) -> Dataset:
    root = _need_dir(data_dir, "svhn", "train_32x32.mat and test_32x32.mat")
    parts = [_svhn_mat(root / f"{split}_32x32.mat") for split in ("train", "test")]
    return Dataset("svhn", *parts[0], *parts[1], 10)


def _svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    if not path.is_file():
        raise StqError(f"svhn: missing {path} (the cropped-digits format: train_32x32.mat and "
                       "test_32x32.mat)")
    try:
        m = scipy.io.loadmat(str(path))
        x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a bad file
        raise StqError(f"svhn: {path} is not a readable SVHN .mat file ({type(exc).__name__}: "
                       f"{str(exc)[:100]})") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise StqError(f"svhn: {path} has X of shape {x.shape}; expected (32, 32, 3, N)")
    y = np.where(y == 10, 0, y).astype(np.int64)  # SVHN stores the digit 0 as label 10
    return x.transpose(3, 0, 1, 2).astype(np.float32) / 255.0, y


# ---- Google Speech Commands (a local folder: <word>/<id>_nohash_<n>.wav, v0.02 layout) ----
KWS_WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]
KWS_LABELS = [*KWS_WORDS, "_silence_", "_unknown_"]


def speech_commands(data_dir: str | Path | None, silence_per_split: int | None = None,
                    unknown_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """12-class keyword spotting as MLPerf Tiny does: ten words, silence (one-second slices of
    _background_noise_), unknown (other words); split by validation_list.txt/testing_list.txt
    (validation is folded into train here); features: 49x10 MFCC (toolchain/audio.py)."""
    from toolchain.training import audio

    root = _need_dir(data_dir, "speech_commands", "a Speech Commands folder (<word>/*.wav)")
    test_list = _read_list(root / "testing_list.txt")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if not words:
        raise StqError(f"speech_commands: {root} has no word folders (<word>/*.wav)")
    rng = np.random.default_rng(seed)
    split: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for word in words:
        label = KWS_LABELS.index(word) if word in KWS_WORDS else KWS_LABELS.index("_unknown_")
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            if word not in KWS_WORDS and rng.random() > unknown_fraction:
                continue
            split["test" if rel in test_list else "train"].append((wav, label))
    noise = sorted((root / "_background_noise_").glob("*.wav"))
    out = []
    for name in ("train", "test"):
        xs = [audio.mfcc(audio.read_wav(p)) for p, _ in split[name]]
        ys = [lab for _, lab in split[name]]
        n_sil = silence_per_split if silence_per_split is not None else max(1, len(xs) // 11)
        for i in range(n_sil if noise else 0):
            clip = audio.read_wav(noise[i % len(noise)])
            start = int(rng.integers(0, max(1, len(clip) - audio.SAMPLES)))
            xs.append(audio.mfcc(clip[start:start + audio.SAMPLES] * rng.uniform(0.0, 1.0)))
            ys.append(KWS_LABELS.index("_silence_"))
        if not xs:
            raise StqError(f"speech_commands: no {name} clips found under {root}")
        out += [np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64)]
    return Dataset("speech_commands", *out, len(KWS_LABELS))


def _read_list(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.is_file() else set()


def _need_dir(data_dir: str | Path | None, name: str, expected: str) -> Path:
    if data_dir is None:
        raise StqError(f"dataset {name} needs --data-dir pointing at {expected}; nothing is "
                       "downloaded")
    p = Path(data_dir)
    if not p.exists():
        raise StqError(f"dataset {name}: {p} does not exist (expected {expected})")
    return p


DATASETS = {"digits": digits, "cifar10": cifar10, "svhn": svhn,
            "speech_commands": speech_commands}


def load(name: str, data_dir: str | Path | None = None) -> Dataset:
    if name not in DATASETS:
        raise StqError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](data_dir)
