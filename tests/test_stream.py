"""Streamed mini-batch training from IDX files (jaxnn.stream), on small generated IDX files."""

from __future__ import annotations

import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compiles import CompileCounter

import jaxnn
from jaxnn import stream
from jaxnn.datasets import load_idx
from jaxnn.precision import x64


def write_idx(path, images: np.ndarray, labels: np.ndarray, *, gz: bool = False) -> tuple:
    """Write ``images`` (n, rows, cols) uint8 and ``labels`` (n,) uint8 as IDX files
    (magic 0x00000803 / 0x00000801, big-endian dimensions)."""
    n, rows, cols = images.shape
    img = struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()
    lab = struct.pack(">II", 0x00000801, n) + labels.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    pi, pl = path / f"images-idx3-ubyte{suffix}", path / f"labels-idx1-ubyte{suffix}"
    with opener(pi, "wb") as f:
        f.write(img)
    with opener(pl, "wb") as f:
        f.write(lab)
    return pi, pl


def toy_digits(n: int, K: int = 4, side: int = 5, seed: int = 0):
    """Learnable images: class c lights up row c of a side x side image, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    imgs = rng.integers(0, 60, (n, side, side))
    imgs[np.arange(n), y, :] += 180
    return imgs.astype(np.uint8), y.astype(np.uint8)


@pytest.fixture
def idx_files(tmp_path):
    imgs, y = toy_digits(230)
    return write_idx(tmp_path, imgs, y)


def reference_run(params, X, y, lam, *, tx, batch_size, chunk_size, seed, epochs):
    """The same updates in memory, with jax.grad of jaxnn's cost (independent of fit_stream)."""
    m = len(y)
    state = tx.init(params)
    rng = np.random.default_rng(seed)
    costs = []
    grad_fn = jax.jit(jax.value_and_grad(
        lambda p, Xb, yb, lb: jaxnn.losses.regularized_cost(
            p, Xb, jax.nn.one_hot(yb, p[-1].shape[0], dtype=Xb.dtype), lb, "sigmoid", "sigmoid")))
    for _ in range(epochs):
        for c0 in range(0, m, chunk_size):
            Xc, yc = X[c0:c0 + chunk_size], y[c0:c0 + chunk_size]
            perm = rng.permutation(len(yc))
            for s in range(0, len(yc), batch_size):
                idx = perm[s:s + batch_size]
                J, g = grad_fn(params, jnp.asarray(Xc[idx]), jnp.asarray(yc[idx]),
                               lam * len(idx) / m)
                costs.append(float(J))
                upd, state = tx.update(g, state, params)
                params = optax.apply_updates(params, upd)
    return params, np.array(costs)


def test_fit_stream_matches_in_memory_updates(idx_files):
    images, labels = idx_files
    with x64():
        X, y = load_idx(images, labels)
        p0 = jaxnn.init_params(1, (25, 6, 4), dtype=jnp.float64)
        res = stream.fit_stream(p0, images, labels, 0.5, method="adam", learning_rate=0.05,
                                maxiter=3, batch_size=32, chunk_size=96, seed=7)
        ref, ref_costs = reference_run(p0, X, y, 0.5, tx=optax.adam(0.05), batch_size=32,
                                       chunk_size=96, seed=7, epochs=3)
    # 230 = 96 + 96 + 38 per epoch: batches 32,32,32 | 32,32,32 | 32,6
    assert res.n_steps == 3 * 8 == len(ref_costs)
    assert res.n_examples == 230 and res.epochs == 3
    np.testing.assert_allclose(res.batch_costs, ref_costs, rtol=1e-10)
    for a, b in zip(res.params, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.history, ref_costs.reshape(3, 8).mean(axis=1), rtol=1e-10)
    assert res.history[-1] < res.history[0]


def test_a_second_call_compiles_nothing(idx_files):
    images, labels = idx_files
    p0 = jaxnn.init_params(2, (25, 6, 4))
    kw = dict(method="sgd", learning_rate=0.05, maxiter=1, batch_size=32, chunk_size=96)
    first = stream.fit_stream(p0, images, labels, 0.5, **kw)
    with CompileCounter() as c:
        again = stream.fit_stream(p0, images, labels, 0.5, **kw)
    assert c.count == 0
    np.testing.assert_array_equal(again.batch_costs, first.batch_costs)


def test_fit_stream_learns_and_evaluate_matches_cost(tmp_path):
    imgs, y = toy_digits(400, seed=3)
    images, labels = write_idx(tmp_path, imgs, y, gz=True)
    p0 = jaxnn.init_params(0, (25, 8, 4))
    res = stream.fit_stream(p0, images, labels, 1.0, maxiter=8, batch_size=20,
                            learning_rate=0.05, method="adam")
    X, yy = load_idx(images, labels, dtype=np.float32)
    ev = stream.evaluate_stream(res.params, images, labels, 1.0, chunk_size=64)
    assert ev["m"] == 400
    np.testing.assert_allclose(ev["cost"], float(jaxnn.cost(res.params, X, yy, 1.0)), rtol=1e-5)
    np.testing.assert_allclose(ev["accuracy"], jaxnn.accuracy(res.params, X, yy), rtol=1e-12)
    assert ev["accuracy"] > 0.95
    assert ev["cost"] < float(jaxnn.cost(p0, X, yy, 1.0)) / 2


def test_memory_bounded_by_chunk(idx_files, monkeypatch):
    """fit_stream never loads the whole file: it only reads chunks through iter_idx."""
    images, labels = idx_files
    seen = []
    real_iter = stream.iter_idx

    def spy(*a, **kw):
        for X, y in real_iter(*a, **kw):
            seen.append(X.shape[0])
            yield X, y

    def forbidden(*a, **kw):
        raise AssertionError("fit_stream must not load the whole file")

    monkeypatch.setattr(stream, "iter_idx", spy)
    monkeypatch.setattr(jaxnn.datasets, "load_idx", forbidden)
    res = stream.fit_stream(jaxnn.init_params(0, (25, 5, 4)), images, labels, maxiter=2,
                            batch_size=16, chunk_size=48, method="sgd")
    assert max(seen) == 48 and sum(seen) == 2 * 230  # two epochs, each re-reads the file
    # per epoch: 4 chunks of 48 (3 batches of 16 each), then 38 = 16 + 16 + 6
    assert res.n_steps == 2 * (4 * 3 + 3)


def test_no_shuffle_sgd_matches_full_batch_gradient_descent(idx_files):
    """batch_size = chunk_size = m, sgd, no shuffle: plain gradient descent on jaxnn.cost."""
    images, labels = idx_files
    with x64():
        X, y = load_idx(images, labels)
        p = jaxnn.init_params(2, (25, 4, 4), dtype=jnp.float64)
        res = stream.fit_stream(p, images, labels, 2.0, method="sgd", learning_rate=0.5,
                                maxiter=4, batch_size=230, chunk_size=230, shuffle=False)
        for _ in range(4):
            _, g = jaxnn.backprop(p, X, y, 2.0)
            p = tuple(t - 0.5 * d for t, d in zip(p, g, strict=True))
    for a, b in zip(res.params, p, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"maxiter": 0}, "maxiter"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"method": "rmsprop"}, "method"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"grad": "numeric"}, "grad"),
        ({"activation": "elu"}, "activation"),
        ({"shuffle": "yes"}, "shuffle must be True or False"),
        ({"learning_rate": 1e-300}, "learning_rate=1e-300 rounds to 0 in float32"),
    ],
)
def test_argument_errors(idx_files, kw, match):
    images, labels = idx_files
    with pytest.raises(ValueError, match=match):
        stream.fit_stream(jaxnn.init_params(0, (25, 3, 4)), images, labels, **kw)


def test_shape_and_label_errors(idx_files):
    images, labels = idx_files
    with pytest.raises(ValueError, match="pixels"):
        stream.fit_stream(jaxnn.init_params(0, (24, 3, 4)), images, labels)
    with pytest.raises(ValueError, match="K=3"):
        stream.fit_stream(jaxnn.init_params(0, (25, 3, 3)), images, labels)
    with pytest.raises(ValueError, match="lam"):
        stream.fit_stream(jaxnn.init_params(0, (25, 3, 4)), images, labels, -1.0)
    with pytest.raises(FileNotFoundError):
        stream.fit_stream(jaxnn.init_params(0, (25, 3, 4)), images.with_name("nope"), labels)


def test_dtype_float64_turns_x64_on_for_the_call_only(idx_files):
    """fit's precision rule: dtype='float64' without x64 trains in float64 (the same numbers as
    a run inside jaxnn.x64), returns float64 numpy arrays and leaves x64 off."""
    images, labels = idx_files
    p = tuple(np.asarray(t, np.float64) for t in jaxnn.init_params(2, (25, 4, 4)))
    kw = dict(method="sgd", learning_rate=0.5, maxiter=2, batch_size=50, seed=3)
    assert not jax.config.jax_enable_x64
    res = stream.fit_stream(p, images, labels, 1.0, dtype="float64", **kw)
    assert not jax.config.jax_enable_x64
    with x64():
        ref = stream.fit_stream(p, images, labels, 1.0, **kw)
    assert all(isinstance(t, np.ndarray) and t.dtype == np.float64 for t in res.params)
    for a, b in zip(res.params, ref.params, strict=True):
        np.testing.assert_array_equal(a, b)
    f32 = stream.fit_stream(p, images, labels, 1.0, dtype="float32", **kw)
    assert all(t.dtype == np.float32 for t in f32.params)
    assert np.abs(f32.params[0] - res.params[0]).max() > 0  # float32 rounding shows


def test_start_and_lam_must_be_representable(idx_files):
    images, labels = idx_files
    p = jaxnn.init_params(0, (25, 3, 4))
    with pytest.raises(ValueError, match=r"lam=1e\+39 is not representable in float32"):
        stream.fit_stream(p, images, labels, 1e39)
    bad = (np.where(np.arange(p[0].size).reshape(p[0].shape) == 0, np.nan, p[0]), p[1])
    with pytest.raises(ValueError, match="params hold 1 NaN or infinite value"):
        stream.fit_stream(bad, images, labels)
    with pytest.raises(ValueError, match="dtype must be None, 'float32' or 'float64'"):
        stream.fit_stream(p, images, labels, dtype="int32")
    # evaluate_stream: the same rules (it returned a NaN or infinite cost)
    with pytest.raises(ValueError, match=r"lam=1e\+39 is not representable in float32.*"
                                         r"compute in float64"):
        stream.evaluate_stream(p, images, labels, 1e39)
    with pytest.raises(ValueError, match=r"params\[0\] contains NaN or infinite values"):
        stream.evaluate_stream(bad, images, labels)  # as jaxnn.cost says it
    wide = (np.full(p[0].shape, 1e300), np.asarray(p[1], np.float64))  # inf in float32
    with pytest.raises(ValueError, match=r"params\[0\] has values that overflow float32 .*"
                                         r"compute in float64 \(float64 arrays inside `with "
                                         r"jaxnn.x64\(\):`\)"):  # no dtype= to give here
        stream.evaluate_stream(wide, images, labels)


def test_a_diverging_run_says_so_and_keeps_its_last_finite_epoch(idx_files):
    images, labels = idx_files
    p = jaxnn.init_params(0, (25, 3, 4))
    calm = stream.fit_stream(p, images, labels, maxiter=2, method="sgd", learning_rate=0.01)
    assert not calm.diverged and calm.epochs == 2 and np.isfinite(calm.cost)
    assert calm.message == "trained 2 epochs of 230 examples"
    # adam's steps of about 1e38 overflow float32 in the first epoch: nothing finite to keep
    wild = stream.fit_stream(p, images, labels, maxiter=3, batch_size=8, learning_rate=1e38)
    assert wild.diverged and wild.epochs == 0 and np.isnan(wild.cost)
    assert wild.history.size == 0 and not np.isfinite(wild.batch_costs).all()
    assert "diverged in epoch 1" in wild.message and "the initial ones" in wild.message
    for kept, start in zip(wild.params, p, strict=True):
        np.testing.assert_array_equal(kept, np.asarray(start))


def test_earlier_names_and_chunks_smaller_than_a_batch(idx_files):
    images, labels = idx_files
    p0 = jaxnn.init_params(1, (25, 6, 4))
    with pytest.warns(DeprecationWarning, match=r"fit_stream\(epochs=\.\.\.\) is now maxiter"):
        res = stream.fit_stream(p0, images, labels, epochs=2, batch_size=115)
    assert res.epochs == 2 and res.n_steps == 4  # 230 examples: two batches an epoch
    with pytest.raises(TypeError, match="got both maxiter= and epochs=, its earlier name; "
                                        "give maxiter= only"):
        stream.fit_stream(p0, images, labels, maxiter=3, epochs=1)
    with pytest.raises(TypeError, match="got both method= and optimizer="):
        stream.fit_stream(p0, images, labels, method="sgd", optimizer="adam")
    with pytest.raises(ValueError, match="chunk_size=5 is smaller than batch_size=20"):
        stream.fit_stream(p0, images, labels, batch_size=20, chunk_size=5)
