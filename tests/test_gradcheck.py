"""Finite differences on functions with known gradients, and the report."""

from __future__ import annotations

import importlib

import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn as nn
from jaxnn.gradcheck import relative_difference


def test_numerical_gradient_of_a_known_function():
    params = (np.arange(6.0).reshape(2, 3) / 7, np.array([[0.5, -1.0, 2.0]]))

    def f(p):
        return jnp.sum(p[0] ** 3) + jnp.sum(jnp.sin(p[1]))

    with nn.x64():
        g = nn.numerical_gradient(f, params, eps=1e-5, chunk_size=4)  # several chunks
    np.testing.assert_allclose(g[0], 3 * params[0] ** 2, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(g[1], np.cos(params[1]), rtol=1e-8)


def test_relative_difference_formula():
    assert relative_difference([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_difference([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert relative_difference([3.0], [1.0]) == pytest.approx(0.5)


def test_check_gradients_catches_a_wrong_gradient(monkeypatch):
    """A broken backward pass must show up in the report (the check can fail)."""
    bp = importlib.import_module("jaxnn.backprop")  # the module, not the re-exported function
    gc = importlib.import_module("jaxnn.gradcheck")

    sizes, X, y = (3, 4, 2), np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    params = nn.debug_params(sizes)
    good = gc.check_gradients(params, X, y, 1.0)
    assert good.passed()

    def wrong_penalty_grad(theta, lam, m):  # regularizes the bias column too: a classic bug
        return (lam / m) * theta

    monkeypatch.setattr(bp, "penalty_grad", wrong_penalty_grad)
    bp._backprop.clear_cache()
    try:
        bad = gc.check_gradients(params, X, y, 1.0)
    finally:
        monkeypatch.undo()
        bp._backprop.clear_cache()
    assert not bad.passed()
    assert bad.relative_difference > 1e-4 and bad.autodiff_difference > 1e-4


def test_check_gradients_works_from_float32_inputs_and_deep_softmax_nets():
    rng = np.random.default_rng(1)
    params = nn.init_params(2, (4, 6, 5, 3), 0.5)  # float32
    X = rng.normal(size=(8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    report = nn.check_gradients(params, X, y, 0.7, eps=1e-5, activation="tanh",
                               output="softmax")
    assert report.numerical[0].dtype == np.float64
    assert report.relative_difference < 1e-9
    assert report.autodiff_difference < 1e-12


def test_numerical_gradient_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        nn.numerical_gradient(lambda p: jnp.sum(p[0]), (np.ones((2, 3)),), eps=0.0)
