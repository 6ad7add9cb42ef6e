"""Data: scikit-learn's bundled digits (no download) and an MNIST IDX reader."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits(*, images=False, dtype=np.float32):
    """The 1,797 8x8 handwritten digits bundled with scikit-learn (no download).

    Parameters
    ----------
    images : bool, default False
        False: X of shape (1797, 64); True: (1797, 1, 8, 8) (NCHW).
    dtype : float32 (default) or float64

    Returns
    -------
    (X, y)
        Pixel values scaled to [0, 1] (divided by 16) and int64 labels 0-9.

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install dropkit[examples]``).
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn "
                          "(or dropkit[examples])") from e
    d = _sk_digits()
    X = (d.data / 16.0).astype(dtype)
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return X, d.target.astype(np.int64)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzip-compressed (``.gz``) or not.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray
        Its dtype and shape from the header.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; bad magic number, unknown type code or a size that does not match the header.
    """
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{p}: not an IDX file (bad magic number {data[:4]!r})")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{p}: unknown IDX type code 0x{code:02x}")
    dims = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dt = np.dtype(_IDX_TYPES[code])
    body = 4 + 4 * ndim
    expected = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    if len(data) - body != expected:
        raise ValueError(f"{p}: header announces {dims} ({expected} bytes of data), file holds {len(data) - body}")
    return np.frombuffer(data, dt, offset=body).reshape(dims).astype(dt.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"MNIST file {stem}[.gz] not found in {folder}")


def load_mnist(path=None, kind="t10k", *, dtype=np.float32):
    """Load MNIST images and labels from the standard IDX files.

    Parameters
    ----------
    path : str or Path, optional
        The folder holding ``{kind}-images-idx3-ubyte[.gz]`` and ``{kind}-labels-idx1-ubyte[.gz]``.
        Default: the environment variable ``DROPKIT_MNIST``.
    kind : {'t10k', 'train'}
        The 10,000 test images or the 60,000 training images.
    dtype : float32 (default) or float64

    Returns
    -------
    (X, y)
        X of shape (N, 1, 28, 28) scaled to [0, 1] (NCHW), y int64 labels.

    Raises
    ------
    FileNotFoundError
        No path and no ``DROPKIT_MNIST``, or a file missing (the message names it).
    ValueError
        Unknown ``kind``, malformed files, or images and labels of different counts.
    """
    if kind not in ("t10k", "train"):
        raise ValueError(f"kind must be 't10k' or 'train', got {kind!r}")
    if path is None:
        path = os.environ.get("DROPKIT_MNIST")
        if not path:
            raise FileNotFoundError("no MNIST folder: pass path= or set DROPKIT_MNIST to the folder holding "
                                    f"{kind}-images-idx3-ubyte.gz and {kind}-labels-idx1-ubyte.gz")
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {folder} does not exist")
    images = read_idx(_find(folder, f"{kind}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{kind}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST {kind} files disagree: images {images.shape}, labels {labels.shape}")
    X = (images.astype(dtype) / dtype(255)).reshape(-1, 1, images.shape[1], images.shape[2])
    return X, labels.astype(np.int64)


def train_val_split(X, y, val_fraction=0.1, *, seed=0):
    """A seeded random split: ``(X_train, y_train), (X_val, y_val)``."""
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(len(X) * float(val_fraction)))
    v, t = order[:n_val], order[n_val:]
    return (X[t], y[t]), (X[v], y[v])
