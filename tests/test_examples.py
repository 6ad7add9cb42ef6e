"""The worked examples (python -m dropkit.examples NAME) run end to end on tiny settings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dropkit

pytest.importorskip("sklearn", reason="the examples use scikit-learn's digits (the 'test' extra)")
pytest.importorskip("matplotlib", reason="the examples draw PNGs with matplotlib (the 'test' extra)")

from dropkit.examples import __main__ as cli  # noqa: E402
from dropkit.examples import _common, variants  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_blas_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="installed with scikit-learn")
    with threadpoolctl.threadpool_limits(1):
        yield


def _png_ok(path):
    data = Path(path).read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 10_000


def test_overfitting_tiny(tmp_path, capsys):
    assert cli.main(["overfitting", "--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| no dropout" in out and "dropout 0.5, classic" in out
    assert _png_ok(tmp_path / "overfitting.png")
    from dropkit.examples import overfitting
    res = overfitting.run(out_dir=tmp_path, tiny=True, epochs=2)
    for name, train_acc, val_acc, gap, _, best, _ in res["rows"]:
        assert 0 <= val_acc <= best <= 1 and gap == pytest.approx(train_acc - val_acc)
    assert all(len(c["val_acc"]) == 2 for c in res["curves"].values())


def test_variants_registry_picks_up_new_variants(tmp_path, monkeypatch, capsys):
    class FakeGaussian(dropkit.Dropout):
        """Stands in for a variant that lands later: any class exported by dropkit under a registry name."""

    if not hasattr(dropkit, "GaussianDropout"):
        monkeypatch.setattr(dropkit, "GaussianDropout", FakeGaussian, raising=False)
    res = variants.run(out_dir=tmp_path, tiny=True)
    names = {r[0]: r for r in res["rows"]}
    assert set(variants.REGISTRY) == set(names)
    assert names["GaussianDropout"][5] == "" and 0 <= names["GaussianDropout"][1] <= 1
    if hasattr(dropkit, "ConcreteDropout"):
        assert names["ConcreteDropout (p learned)"][5].startswith("learned p 0.")
    for name in variants.REGISTRY:  # every variant either ran or says why not
        row = names[name]
        ran = not row[5].startswith(("not in", "failed"))
        assert (ran and 0 <= row[1] <= 1) or row[5] == "not in this dropkit" or row[5].startswith("failed")
    assert names["Dropout (inverted)"][5] == "" and names["none"][5] == ""
    assert _png_ok(tmp_path / "variants.png")
    assert "| Dropout (classic)" in capsys.readouterr().out


def test_mc_tiny(tmp_path):
    from dropkit.examples import mc
    res = mc.run(out_dir=tmp_path, tiny=True)
    assert [r[2] for r in res["rows"]] and sum(r[2] for r in res["rows"]) == 898
    assert _png_ok(tmp_path / "mc_dropout.png")
    conf = np.array([0.05, 0.15, 0.95, 0.99])
    rel, ece = mc.reliability(conf, np.array([0, 0, 1, 0], float))
    # bins: [0.0, 0.1): conf 0.05 acc 0; [0.1, 0.2): 0.15, 0; [0.9, 1]: mean 0.97, acc 0.5
    assert [r[2] for r in rel] == [1, 1, 2]
    assert ece == pytest.approx(0.25 * 0.05 + 0.25 * 0.15 + 0.5 * 0.47)


MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"the real MNIST test set is not at {MNIST_DIR} "
                    "(it is in the project's shared data, not in a user's clone)")
def test_cnn_and_profile_tiny(tmp_path, capsys):
    assert cli.main(["cnn", "--tiny", "--out", str(tmp_path), "--mnist", str(MNIST_DIR)]) == 0
    out = capsys.readouterr().out
    assert "0.9912" in out and "validation accuracy" in out
    assert _png_ok(tmp_path / "cnn.png")
    from dropkit.examples import profile
    res = profile.run(tiny=True, mnist=str(MNIST_DIR))
    assert [r[0] for r in res["rows"]] == ["MLP 784-256-256-10", "seed CNN"]
    for row in res["rows"]:
        assert 0 < float(row[3].rstrip("%")) < 100


def test_blocks_tiny(tmp_path, capsys):
    """DropBlock on MNIST and DropConnect on digits, each with and without, and the mask picture."""
    assert cli.main(["blocks", "--tiny", "--out", str(tmp_path), "--mnist", str(MNIST_DIR)]) == 0
    out = capsys.readouterr().out
    for label in ("MNIST CNN, no DropBlock", "MNIST CNN, DropBlock2D(0.1, 3)", "digits MLP, no DropConnect",
                  "digits MLP, dropconnect=0.5"):
        assert label in out
    assert _png_ok(tmp_path / "blocks.png")


def test_unknown_example():
    from dropkit import examples
    with pytest.raises(ValueError, match="name must be one of"):
        examples.run("nope")
    with pytest.raises(SystemExit):
        cli.main(["nope"])


def test_cnn_full_protocol_when_training_files_exist(tmp_path, capsys):
    """With train-* files in the MNIST folder the example follows the seed: train on them with the
    last 10% held out (Keras' validation_split=0.1) and report the t10k test accuracy. Random
    images stand in for the 60,000 (not available here); only the protocol is checked."""
    import gzip
    import struct
    rng = np.random.default_rng(0)

    def write(name, arr):
        head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
        (tmp_path / name).write_bytes(gzip.compress(head + arr.tobytes()))

    for kind, n in (("train", 300), ("t10k", 50)):
        write(f"{kind}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write(f"{kind}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    from dropkit.examples import cnn
    res = cnn.run(out_dir=tmp_path, tiny=True, mnist=str(tmp_path))
    out = capsys.readouterr().out
    assert "MNIST train (300 images), validation_split=0.1" in out and "train 270, validation 30" in out
    metrics = {r[0]: r[1] for r in res["rows"]}
    assert 0 <= metrics["test accuracy (t10k)"] <= 1


def test_find_mnist(tmp_path, monkeypatch):
    """--mnist, then DROPKIT_MNIST, then ../shared/data/mnist beside the clone one works in."""
    clone, data = tmp_path / "clone", tmp_path / "shared" / "data" / "mnist"
    (clone / "sub").mkdir(parents=True)
    data.mkdir(parents=True)
    (clone / "pyproject.toml").write_text("")
    monkeypatch.setenv("DROPKIT_MNIST", str(tmp_path / "env"))
    assert _common.find_mnist("given") == Path("given")
    assert _common.find_mnist() == tmp_path / "env"
    monkeypatch.delenv("DROPKIT_MNIST")
    monkeypatch.setattr(_common, "__file__", str(tmp_path / "site-packages" / "_common.py"))  # as installed
    monkeypatch.chdir(clone / "sub")
    assert _common.find_mnist() == data.resolve()
    monkeypatch.chdir(tmp_path)
    assert _common.find_mnist() is None


def test_seed_cnn_in_pytorch_with_dropkit_dropout():
    """The seed's CNN in PyTorch with its dropout layers through dropkit.torch trains one epoch."""
    pytest.importorskip("torch", reason="PyTorch is an optional extra (dropkit[torch])")
    from dropkit.examples import cnn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    assert cnn.torch_epoch_seconds(X, y, dropout="dropkit") > 0
    with pytest.raises(ValueError, match="dropout"):
        cnn.torch_epoch_seconds(X, y, dropout="keras")
