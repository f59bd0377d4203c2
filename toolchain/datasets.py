"""Datasets. Digits ships with scikit-learn (no download): 8x8 grey images, 10 classes."""

from __future__ import annotations

from dataclasses import dataclass

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


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's digits, pixels scaled from 0..16 to [0, 1]; a fixed, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    return Dataset("digits", xtr, ytr, xte, yte, 10)


DATASETS = {"digits": digits}


def load(name: str) -> Dataset:
    if name not in DATASETS:
        raise StqError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()
