"""dropkit.nn.datasets: the IDX reader on files written here from the format's definition, the MNIST
loader's errors, the real MNIST test set when ../shared/data/mnist is present, and digits."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from dropkit import nn

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def write_idx(path: Path, arr: np.ndarray, code: int, compress: bool) -> None:
    """IDX: two zero bytes, a type code, the number of dims, big-endian uint32 dims, big-endian data."""
    big = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    raw = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw += arr.astype(big).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 256, (3, 4, 5)).astype(np.uint8), 0x08),
             (rng.integers(-2**31, 2**31 - 1, 7).astype(np.int32), 0x0C),
             (rng.standard_normal((2, 3)).astype(np.float32), 0x0D)]
    for i, (arr, code) in enumerate(cases):
        p = tmp_path / (f"a{i}.idx" + (".gz" if compress else ""))
        write_idx(p, arr, code, compress)
        got = nn.datasets.read_idx(p)
        np.testing.assert_array_equal(got, arr)
        assert got.shape == arr.shape and got.dtype.isnative


def test_read_idx_rejects_bad_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        nn.datasets.read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="header"):
        nn.datasets.read_idx(p)


def test_load_mnist_from_path_and_env(tmp_path, monkeypatch):
    imgs = np.random.default_rng(1).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, 0x08, True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, 0x08, False)
    X, y = nn.datasets.load_mnist(tmp_path)
    assert X.shape == (5, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X[:, 0], imgs.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    monkeypatch.setenv("DROPKIT_MNIST", str(tmp_path))
    np.testing.assert_array_equal(nn.datasets.load_mnist()[1], labels)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        nn.datasets.load_mnist(kind="train")
    monkeypatch.delenv("DROPKIT_MNIST")
    with pytest.raises(FileNotFoundError, match="DROPKIT_MNIST"):
        nn.datasets.load_mnist()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nn.datasets.load_mnist(tmp_path / "nope")
    with pytest.raises(ValueError, match="kind"):
        nn.datasets.load_mnist(tmp_path, kind="test")


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"the real MNIST test set is not at {MNIST_DIR} "
                    "(it is in the project's shared data, not in a user's clone)")
def test_real_mnist_test_set():
    md5 = hashlib.md5((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert md5 == "ec29112dd5afa0611ce80d1b7f02629c"  # ../shared/data/README.md
    X, y = nn.datasets.load_mnist(MNIST_DIR)
    assert X.shape == (10000, 1, 28, 28) and X.min() == 0 and X.max() == 1
    # the published class counts of the MNIST test set
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_digits():
    pytest.importorskip("sklearn", reason="digits come with scikit-learn (the 'test' extra)")
    X, y = nn.datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and X.max() == 1 and X.min() == 0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    Xi, _ = nn.datasets.load_digits(images=True, dtype=np.float64)
    assert Xi.shape == (1797, 1, 8, 8) and Xi.dtype == np.float64
    (a, ya), (b, yb) = nn.datasets.train_val_split(X, y, 0.2, seed=3)
    assert len(b) == 359 and len(a) == 1438
    assert sorted(np.concatenate([ya, yb]).tolist()) == sorted(y.tolist())
