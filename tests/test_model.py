"""Parameters, unrolling, initialization and the forward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxnn as nn


def test_ravel_params_is_octave_column_major():
    t1 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # (2, 1 + 2)
    t2 = np.array([[7.0, 8.0, 9.0]])  # (1, 1 + 2)
    # Octave: [Theta1(:); Theta2(:)] walks down each column first
    np.testing.assert_array_equal(nn.ravel_params((t1, t2)), [1, 4, 2, 5, 3, 6, 7, 8, 9])


def test_unravel_params_inverts_the_hand_written_example():
    t1, t2 = nn.unravel_params(np.arange(1.0, 10.0), (2, 2, 1))
    np.testing.assert_array_equal(t1, [[1, 3, 5], [2, 4, 6]])
    np.testing.assert_array_equal(t2, [[7, 8, 9]])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=2, max_size=5), st.integers(0, 2**31 - 1))
def test_ravel_unravel_round_trip(sizes, seed):
    params = nn.init_params(seed, sizes)
    theta = nn.ravel_params(params)
    assert theta.shape == (sum(o * (1 + i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)),)
    back = nn.unravel_params(theta, sizes)
    for a, b in zip(params, back, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(nn.ravel_params(back), theta)


def test_debug_params_is_the_course_recipe():
    t1, t2 = nn.debug_params((3, 5, 3))
    assert t1.shape == (5, 4) and t2.shape == (3, 6)
    np.testing.assert_allclose(t1[0, 0], np.sin(1) / 10, rtol=1e-6)
    np.testing.assert_allclose(t1[1, 0], np.sin(2) / 10, rtol=1e-6)  # column-major fill
    np.testing.assert_allclose(t1[0, 1], np.sin(6) / 10, rtol=1e-6)
    np.testing.assert_allclose(t2[2, 5], np.sin(18) / 10, rtol=1e-6)  # each layer restarts at 1


def test_init_params_shapes_range_and_seeding():
    params = nn.init_params(0, (400, 25, 10))
    assert [t.shape for t in params] == [(25, 401), (10, 26)]
    assert nn.layer_sizes(params) == (400, 25, 10)
    flat = np.asarray(nn.ravel_params(params))
    assert flat.min() >= -0.12 and flat.max() <= 0.12 and flat.std() > 0.05
    again = nn.init_params(jax.random.key(0), (400, 25, 10))
    np.testing.assert_array_equal(flat, nn.ravel_params(again))
    assert not np.array_equal(flat, nn.ravel_params(nn.init_params(1, (400, 25, 10))))
    small = nn.init_params(3, (4, 2), epsilon=0.01)
    assert float(jnp.abs(small[0]).max()) <= 0.01


def test_init_params_is_uniform_on_the_symmetric_interval_and_layers_are_independent():
    from scipy import stats
    eps = 0.12
    params = [np.asarray(t, np.float64) for t in nn.init_params(0, (30, 30, 30), eps)]
    uniform = stats.uniform(loc=-eps, scale=2 * eps).cdf
    for t in params:  # each layer alone is U(-eps, eps): Kolmogorov-Smirnov against scipy's
        assert stats.kstest(t.ravel(), uniform).pvalue > 1e-3
    # two layers of the same shape are two draws, not one draw twice
    assert not np.array_equal(params[0], params[1])
    assert abs(np.corrcoef(params[0].ravel(), params[1].ravel())[0, 1]) < 0.15


def test_a_seed_gives_one_key_in_and_out_of_x64():
    """Every seed of the accepted range is its own network, whether x64 is on or not (JAX's
    key(seed) keeps a seed's low 32 bits outside x64: 2**32 was seed 0's network there)."""
    from jaxnn.model import seed_keys

    sizes = (3, 4, 2)
    for seed in (0, 7, 2**31 + 5, 2**32, 2**32 + 7, -1, -(2**40), 2**63 - 1, -(2**63)):
        plain = np.asarray(nn.init_params(seed, sizes)[0])
        with nn.x64():
            wide = np.asarray(nn.init_params(seed, sizes, dtype="float32")[0])
            jax_key = np.asarray(jax.random.key_data(jax.random.key(seed)))
        np.testing.assert_array_equal(plain, wide)
        words = [(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF]  # x64's key: high, low word
        assert np.asarray(jax.random.key_data(seed_keys(seed))).tolist() == words
        assert jax_key.tolist() == words
    first = [np.asarray(nn.init_params(s, sizes)[0]) for s in (0, 2**32, 7, 2**32 + 7)]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[2], first[3])
    np.testing.assert_array_equal(  # seeds below 2**32: JAX's own key, as before
        first[2], np.asarray(nn.init_params(jax.random.key(7), sizes)[0]))
    batch = np.asarray(jax.random.key_data(seed_keys(np.array([5, 2**32 + 5]))))
    assert batch.tolist() == [[0, 5], [1, 5]]


def test_init_params_dtype_follows_the_request():
    assert nn.init_params(0, (3, 2))[0].dtype == jnp.float32
    with nn.x64():
        assert nn.init_params(0, (3, 2), dtype="float64")[0].dtype == jnp.float64
        assert nn.init_params(0, (3, 2))[0].dtype == jnp.float64


def test_one_hot():
    np.testing.assert_array_equal(nn.one_hot(np.array([2, 0, 1]), 3),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_forward_predict_and_accuracy():
    params = (np.array([[0.0, 1.0, -1.0], [0.0, -1.0, 1.0]]),)  # logistic regression, K = 2
    X = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.5]])
    h = np.asarray(nn.forward(params, X))
    np.testing.assert_allclose(h[:, 0], 1 / (1 + np.exp(-(X[:, 0] - X[:, 1]))), rtol=1e-6)
    np.testing.assert_array_equal(nn.predict(params, X), [0, 1, 1])
    assert nn.accuracy(params, X, np.array([0, 1, 0])) == pytest.approx(2 / 3)
    soft = np.asarray(nn.forward(params, X, output="softmax"))
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(nn.predict(params, X, output="softmax"), [0, 1, 1])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_forward_matches_numpy_for_every_activation(activation):
    from reference_numpy import _g, _with_ones

    rng = np.random.default_rng(1)
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(1, (6, 5, 4, 3), 1.0))
    X = rng.normal(size=(7, 6))
    a = X
    for t in params[:-1]:
        a = _g(_with_ones(a) @ t.T, activation)
    z = _with_ones(a) @ params[-1].T
    with nn.x64():
        got = np.asarray(nn.forward(params, X, activation=activation))
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-z)), rtol=1e-12)
