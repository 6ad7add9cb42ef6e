"""dropkit.nn.fit / evaluate / EarlyStopping / hooks / reproducibility, dropout's effect on the
train-validation gap, and Monte Carlo dropout (mc_predict) on scikit-learn's digits."""
from __future__ import annotations

import numpy as np
import pytest

import dropkit
from dropkit import nn

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the 'test' extra)")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices on a shared 2-core machine: one BLAS thread is faster and steadier."""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="installed with scikit-learn")
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = nn.datasets.load_digits()
    return nn.datasets.train_val_split(X, y, 0.5, seed=0)


def mlp(rate, seed, hidden=128, inverted=True):
    return nn.Sequential([
        nn.DenseLayer(64, hidden), nn.ReLU(), dropkit.Dropout(rate, inverted=inverted),
        nn.DenseLayer(hidden, hidden), nn.ReLU(), dropkit.Dropout(rate, inverted=inverted),
        nn.DenseLayer(hidden, 10),
    ], seed=seed)


def test_fit_learns_and_history_has_keras_keys(digits):
    (Xt, yt), (Xv, yv) = digits
    model = mlp(0.2, seed=1)
    h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=5, seed=1)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in h.history.values()) and h.epoch == list(range(5))
    assert h.history["val_accuracy"][-1] > 0.9 and h.history["loss"][-1] < h.history["loss"][0]
    # val metrics are evaluation-mode metrics, recomputed independently here
    logits = model.predict(Xv)
    assert h.history["val_accuracy"][-1] == pytest.approx((logits.argmax(1) == yv).mean(), abs=1e-12)
    p = np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert h.history["val_loss"][-1] == pytest.approx(-np.log(p[np.arange(len(yv)), yv]).mean(), rel=1e-6)
    assert not model.training  # fit leaves the model in evaluation mode


def test_verbose_prints_one_line_per_epoch_without_a_terminal(digits, capsys):
    (Xt, yt), _ = digits
    h = nn.fit(mlp(0.0, seed=2, hidden=8), Xt[:64], yt[:64], epochs=2, seed=0, verbose=True)
    lines = capsys.readouterr().err.strip().splitlines()  # pytest's stderr is not a terminal
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and f"loss: {h.history['loss'][1]:.4f}" in lines[1]
    nn.fit(mlp(0.0, seed=2, hidden=8), Xt[:64], yt[:64], epochs=2, seed=0)  # verbose=None: silent here
    assert capsys.readouterr().err == ""


def test_validation_split_takes_the_last_samples(digits):
    (Xt, yt), _ = digits
    model = mlp(0.0, seed=2, hidden=16)
    h = nn.fit(model, Xt, yt, validation_split=0.25, epochs=1, seed=0)
    n_val = len(Xt) - int(np.floor(len(Xt) * (1.0 - 0.25)))  # Keras 3's train_validation_split
    assert h.history["val_accuracy"][0] == pytest.approx(nn.evaluate(model, Xt[-n_val:], yt[-n_val:])[1])


def test_one_seed_reproduces_a_run_bit_for_bit(digits):
    (Xt, yt), (Xv, yv) = digits

    def run(fit_seed):
        model = mlp(0.5, seed=7, hidden=32)
        h = nn.fit(model, Xt[:300], yt[:300], validation_data=(Xv, yv), epochs=3, seed=fit_seed,
                   optimizer=nn.SGD(0.05, momentum=0.9))
        return h.history, [p.copy() for p in model.params]

    (h1, p1), (h2, p2), (h3, p3) = run(3), run(3), run(4)
    assert h1 == h2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert h1 != h3 and any((a != b).any() for a, b in zip(p1, p3))


def test_dropout_reduces_the_generalisation_gap(digits):
    """300 training digits with 30% of the labels replaced by random ones: without dropout the
    network memorises the noise (train accuracy 1 on the noisy labels); with dropout 0.5 it
    fits the noise less and validates better. Fixed seeds; the margins are several times the
    validation accuracy's binomial sd (sqrt(0.2 * 0.8 / 898) = 0.013)."""
    (Xt, yt), (Xv, yv) = digits
    Xt, yt = Xt[:300], yt[:300].copy()
    rng = np.random.default_rng(0)
    flip = rng.random(300) < 0.3
    yt[flip] = rng.integers(0, 10, flip.sum())
    gaps, vals = {}, {}
    for rate in (0.0, 0.5):
        model = mlp(rate, seed=0, hidden=256)
        h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=40, seed=0, optimizer=nn.Adam(0.003))
        train_acc = nn.evaluate(model, Xt, yt)[1]
        vals[rate] = h.history["val_accuracy"][-1]
        gaps[rate] = train_acc - vals[rate]
    assert gaps[0.5] < gaps[0.0] - 0.04, gaps
    assert vals[0.5] > vals[0.0] + 0.02, vals


class _HookLayer:
    """A dropout-variant stand-in: identity with both hooks (the real variants come separately)."""

    training = True

    def __init__(self):
        self.epochs_ended = 0
        self.seen = []
        self.modes = []

    def forward(self, x, training=None):
        self.modes.append(bool(training))
        return x

    def backward(self, grad):
        return grad

    def on_epoch_end(self):
        self.epochs_ended += 1

    def update_dropout_rates(self, activations):
        self.seen.append(np.array(activations, copy=True))


def test_hooks_called_at_the_right_moments(digits):
    (Xt, yt), (Xv, yv) = digits
    hook = _HookLayer()
    dense = nn.DenseLayer(64, 10)
    model = nn.Sequential([nn.DenseLayer(64, 64), nn.ReLU(), hook, dense], seed=0)
    X, y = Xt[:100], yt[:100]
    nn.fit(model, X, y, validation_data=(Xv[:50], yv[:50]), epochs=2, batch_size=32, seed=0)
    assert hook.epochs_ended == 2
    assert len(hook.seen) == 2 * 4  # once per training batch (100 = 32 + 32 + 32 + 4)
    assert [len(a) for a in hook.seen[:4]] == [32, 32, 32, 4]
    # the activations are the layer's own input of that batch: ReLU outputs, 64 wide, >= 0
    assert all(a.shape[1] == 64 and (a >= 0).all() for a in hook.seen)
    # evaluation forwards (validation) run with training=False and do not call the rate hook
    assert hook.modes.count(True) == 8 and hook.modes.count(False) == 2


def test_early_stopping_and_restore(digits):
    (Xt, yt), (Xv, yv) = digits
    model = mlp(0.0, seed=5, hidden=16)
    snapshots = []
    stopper = nn.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9, restore_best_weights=True)
    h = nn.fit(model, Xt[:200], yt[:200], validation_data=(Xv, yv), epochs=10, seed=0, early_stopping=stopper)
    # nothing improves by 1e9: the best is epoch 0; stop when the wait reaches the patience (Keras 3's
    # rule, keras/src/callbacks/early_stopping.py: `wait >= patience`): after epoch 1
    assert h.epoch == [0, 1] and h.stopped_epoch == 1 and stopper.best_epoch == 0
    snapshots = [p.copy() for p in model.params]
    model2 = mlp(0.0, seed=5, hidden=16)
    nn.fit(model2, Xt[:200], yt[:200], validation_data=(Xv, yv), epochs=1, seed=0)
    for a, b in zip(snapshots, model2.params):
        np.testing.assert_array_equal(a, b)  # restored to the end of epoch 0
    h = nn.fit(mlp(0.0, seed=5, hidden=16), Xt[:200], yt[:200], epochs=4, seed=0, early_stopping=50)
    assert h.stopped_epoch is None and len(h.epoch) == 4


def test_seed_regularized_network_trains(digits):
    (Xt, yt), (Xv, yv) = digits
    model = nn.RegularizedNetwork(64, [64, 32], 10, seed=0)
    out, reg = model.forward(Xt[:5], training=False)
    assert out.shape == (5, 10) and reg == pytest.approx(
        sum(1e-4 * np.abs(d.W).sum() + 1e-4 * (d.W.astype(np.float64) ** 2).sum()
            for d in model.layers if isinstance(d, nn.DenseLayer)), rel=1e-6)
    # BatchNormalization's running statistics (momentum 0.99) need a few hundred steps
    h = nn.fit(model, Xt, yt, validation_data=(Xv, yv), epochs=15, seed=0)
    assert h.history["val_accuracy"][-1] > 0.9


def test_bad_fit_arguments(digits):
    (Xt, yt), _ = digits
    model = mlp(0.0, seed=0, hidden=8)
    with pytest.raises(ValueError, match="same length"):
        nn.fit(model, Xt, yt[:-1], epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        nn.fit(model, Xt, yt, epochs=1, batch_size=0)
    with pytest.raises(TypeError, match="epochs"):
        nn.fit(model, Xt, yt, epochs=1.5)
    with pytest.raises(ValueError, match="val_loss"):
        nn.fit(model, Xt, yt, epochs=2, early_stopping=nn.EarlyStopping("val_loss"))
    with pytest.raises(TypeError, match="forward and backward"):
        nn.fit(object(), Xt, yt, epochs=1)


# ---- Monte Carlo dropout -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_mc_model(digits):
    import threadpoolctl
    (Xt, yt), (Xv, yv) = digits
    with threadpoolctl.threadpool_limits(1):
        model = nn.Sequential([nn.DenseLayer(64, 128), nn.ReLU(), dropkit.Dropout(0.5), nn.DenseLayer(128, 128),
                               nn.BatchNormalization(momentum=0.9), nn.ReLU(), dropkit.Dropout(0.5),
                               nn.DenseLayer(128, 10)], seed=11)
        nn.fit(model, Xt[:400], yt[:400], epochs=30, seed=11)
    return model


def test_mc_uncertainty_higher_on_misclassified(trained_mc_model, digits):
    _, (Xv, yv) = digits
    res = nn.mc_predict(trained_mc_model, Xv, samples=30, seed=5)
    wrong = res.predict() != yv
    assert 10 <= wrong.sum() <= len(yv) // 4  # enough errors for the comparison to mean something
    # AUROC of "entropy flags the error": P(entropy of a wrong one > entropy of a right one)
    auroc = (res.entropy[wrong][:, None] > res.entropy[~wrong][None, :]).mean()
    assert auroc > 0.8, auroc
    assert res.entropy[wrong].mean() > res.entropy[~wrong].mean()
    assert res.mutual_information[wrong].mean() > res.mutual_information[~wrong].mean()
    np.testing.assert_allclose(res.mean.sum(1), 1, rtol=1e-12)
    assert (res.mutual_information >= 0).all() and (res.mutual_information <= res.entropy + 1e-12).all()


def test_mc_masks_are_consecutive_positions_and_batched_equals_loop(trained_mc_model, digits):
    _, (Xv, yv) = digits
    model, X = trained_mc_model, Xv[:20]
    drops = [la for la in model.layers if nn.is_stochastic(la)]
    before = [(d.seed, d.position) for d in drops]
    a = nn.mc_predict(model, X, samples=4, seed=9, batched=True, return_samples=True)
    b = nn.mc_predict(model, X, samples=4, seed=9, batched=False, return_samples=True)
    assert [(d.seed, d.position) for d in drops] == before  # seed=...: the layers' state is restored
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5, atol=1e-6)
    # pass t by hand: each dropout layer's stream at positions t * (20 * width) onwards,
    # BatchNormalization in evaluation mode
    seeds = [int(c.generate_state(1, np.uint64)[0]) for c in np.random.SeedSequence(9).spawn(len(model.layers))]
    for t in range(4):
        x = X
        for i, la in enumerate(model.layers):
            if nn.is_stochastic(la):
                x = dropkit.dropout(x, la.rate, seed=seeds[i], offset=t * x.size)
            else:
                x = la.forward(x, False)
        p = np.exp(x - x.max(1, keepdims=True))
        np.testing.assert_allclose(a.samples[t], p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    # seed=None uses and advances the layers' own streams
    nn.mc_predict(model, X, samples=3)
    assert drops[0].position == before[0][1] + 3 * 20 * 128
    with pytest.raises(ValueError, match="samples"):
        nn.mc_predict(model, X, samples=0)


def test_real_variant_hooks_in_fit(digits):
    """dropkit's CurriculumDropout counts the epochs and AdaptiveDropout gets per-unit rates from
    the activations that enter it, when trained by fit."""
    if not (hasattr(dropkit, "CurriculumDropout") and hasattr(dropkit, "AdaptiveDropout")):
        pytest.skip("dropkit has no CurriculumDropout/AdaptiveDropout yet")
    (Xt, yt), _ = digits
    cur = dropkit.CurriculumDropout(final_rate=0.5, epochs=4)
    ada = dropkit.AdaptiveDropout(initial_rate=0.5, adaptation_rate=0.5)
    model = nn.Sequential([nn.DenseLayer(64, 16), nn.ReLU(), cur, nn.DenseLayer(16, 8), nn.ReLU(), ada,
                           nn.DenseLayer(8, 10)], seed=3)
    nn.fit(model, Xt[:64], yt[:64], epochs=3, batch_size=32, seed=0)
    assert cur.current_epoch == 3 and cur.get_current_rate() == pytest.approx(0.5 * 3 / 4)
    # per-unit rates, rate * (1 - importance / max importance): in [0, 0.5], 0 for the top unit
    assert ada.neuron_importance.shape == (8,) and ada.adjusted_rates.shape == (8,)
    assert np.all((ada.adjusted_rates >= 0) & (ada.adjusted_rates <= 0.5)) and ada.adjusted_rates.min() == 0.0
