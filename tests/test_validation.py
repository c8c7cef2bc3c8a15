"""Bad input gives a ValueError that names the argument and what was expected."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn as nn

PARAMS = nn.debug_params((3, 4, 2))
X = np.random.default_rng(0).normal(size=(5, 3))
Y = np.array([0, 1, 1, 0, 1])


@pytest.mark.parametrize("fn", [nn.cost, nn.backprop, nn.autodiff])
def test_errors_name_the_argument(fn):
    with pytest.raises(ValueError, match="do not chain"):
        fn((np.ones((4, 4)), np.ones((2, 4))), X, Y)
    with pytest.raises(ValueError, match=r"X has 4 features"):
        fn(PARAMS, np.ones((5, 4)), Y)
    with pytest.raises(ValueError, match=r"y has 4 labels but X has 5 rows"):
        fn(PARAMS, X, Y[:4])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        fn(PARAMS, X, np.array([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        fn(PARAMS, X, np.array([0, 1, -1, 0, 1]))
    with pytest.raises(ValueError, match=r"target matrix must have shape \(m, K\) = \(5, 2\)"):
        fn(PARAMS, X, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"got \(5, 1\) \(a column of class labels, as the "
                                         r"course's \.mat files hold them\? pass y\.ravel\(\)\)$"):
        fn(PARAMS, X, np.array([[0], [1], [1], [0], [1]]))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fn(PARAMS, bad, Y)
    with pytest.raises(ValueError, match="X contains NaN"):
        fn(PARAMS, jnp.asarray(bad), Y)
    with pytest.raises(ValueError, match="lam must be"):
        fn(PARAMS, X, Y, -1.0)
    with pytest.raises(ValueError, match="activation='elu'"):
        fn(PARAMS, X, Y, activation="elu")
    with pytest.raises(ValueError, match="output='linear'"):
        fn(PARAMS, X, Y, output="linear")
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        fn(PARAMS, X[0], Y)
    with pytest.raises(ValueError, match="whole-number class labels"):
        fn(PARAMS, X, Y + 0.5)
    with pytest.raises(ValueError, match="X has no rows"):
        fn(PARAMS, X[:0], Y[:0])
    with pytest.raises(ValueError, match="X must be numeric"):
        fn(PARAMS, X.astype(str), Y)
    with pytest.raises(ValueError, match="X must hold real numbers"):
        fn(PARAMS, X + 1j, Y)
    with pytest.raises(ValueError, match=r"params\[1\] \(Theta2\) must hold real numbers"):
        fn((PARAMS[0], PARAMS[1] + 0j), X, Y)
    with pytest.raises(ValueError, match=r"lam must be a scalar, got shape \(2,\)"):
        fn(PARAMS, X, Y, np.ones(2))
    with pytest.raises(ValueError, match=r"Theta1\) has shape \(0, 4\)"):
        fn((np.ones((0, 4)), np.ones((2, 1))), X, Y)


def test_integer_valued_float_labels_are_accepted():
    assert float(nn.cost(PARAMS, X, Y.astype(float))) == pytest.approx(float(nn.cost(PARAMS, X, Y)))


def test_params_must_be_a_sequence_of_2d_arrays():
    with pytest.raises(ValueError, match="tuple or list"):
        nn.layer_sizes({"Theta1": np.ones((2, 3))})
    with pytest.raises(ValueError, match="empty"):
        nn.layer_sizes(())
    with pytest.raises(ValueError, match=r"params\[0\] \(Theta1\) must be 2-D"):
        nn.layer_sizes((np.ones(3),))
    with pytest.raises(ValueError, match="layer_sizes"):
        nn.init_params(0, (400,))
    with pytest.raises(ValueError, match="theta must be a vector of length 13"):
        nn.unravel_params(np.ones(10), (2, 3, 1))


def test_value_checks_are_skipped_under_jit_but_shapes_still_checked():
    f = jax.jit(lambda p, X, y: nn.backprop(p, X, y, 1.0)[0])
    assert np.isfinite(float(f(PARAMS, X, Y)))
    with pytest.raises(ValueError, match="features"):
        f(PARAMS, np.ones((5, 2)), Y)


def test_a_checked_array_mutated_copy_is_rechecked():
    good = jnp.asarray(X)
    nn.cost(PARAMS, good, Y)
    bad = good.at[0, 0].set(jnp.inf)
    with pytest.raises(ValueError, match="X contains NaN or infinite"):
        nn.cost(PARAMS, bad, Y)


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_call_repeating_the_same_jax_arrays_skips_the_checks(monkeypatch):
    import jaxnn.losses
    import jaxnn.model
    p, Xj, yj = tuple(jnp.asarray(t) for t in PARAMS), jnp.asarray(X), jnp.asarray(Y)
    J1, g1 = nn.backprop(p, Xj, yj, 1.0)
    targets = _counting(monkeypatch, jaxnn.losses, "check_targets")
    x_checks = _counting(monkeypatch, jaxnn.model, "check_X")
    J2, g2 = nn.backprop(p, Xj, yj, 1.0)
    assert (targets, x_checks) == ([], [])
    assert float(J2) == float(J1)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2, strict=True))
    nn.backprop(p, Xj, jnp.asarray(Y), 1.0)  # new labels: checked (X's part was remembered)
    assert (len(targets), x_checks) == (1, [])
    nn.backprop(p, X, yj, 1.0)  # numpy X can change in place: always checked
    nn.backprop(p, X, yj, 1.0)
    assert len(x_checks) == 2
    with pytest.raises(ValueError, match="lam"):  # another lam: its own call
        nn.backprop(p, Xj, yj, -1.0)


def test_a_remembered_call_follows_the_settings_and_frees_its_arrays(monkeypatch):
    import gc
    import warnings
    import weakref

    from jaxnn.losses import prepare_problem
    yj = jnp.asarray(Y)  # int32 labels, which either mode takes
    with nn.x64():
        p = tuple(jnp.asarray(t, jnp.float64) for t in PARAMS)
        Xj = jnp.asarray(X, jnp.float64)
        assert nn.cost(p, Xj, yj, 1.0).dtype == jnp.float64
    with warnings.catch_warnings():  # outside x64: float32, as if never called (no cast of
        warnings.simplefilter("error")  # a remembered float64 dtype, which JAX warns about)
        assert nn.cost(p, Xj, yj, 1.0).dtype == jnp.float32
    # training checks lam in its own dtype (float64=None): cost must still refuse it here
    prepare_problem(p, Xj, yj, 1e39, "sigmoid", "sigmoid", None)
    with pytest.raises(ValueError, match="not representable in float32"):
        nn.cost(p, Xj, yj, 1e39)
    nn.cost(p, Xj, yj, 1.0)  # the free memory is read again on a repeated call
    monkeypatch.setenv("JAXNN_MEMORY_LIMIT", "10")
    with pytest.raises(ValueError, match="memory"):
        nn.cost(p, Xj, yj, 1.0)
    monkeypatch.delenv("JAXNN_MEMORY_LIMIT")
    for bad in (["sigmoid"], {"a": 1}):  # a name that cannot be a key is still a ValueError
        with pytest.raises(ValueError, match="activation"):
            nn.backprop(p, Xj, yj, 1.0, activation=bad)
    lam = jnp.asarray(1.0)
    nn.cost(p, Xj, yj, lam)
    refs = [weakref.ref(a) for a in (Xj, lam)]
    del Xj, lam
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_a_remembered_call_is_found_only_for_the_same_arrays():
    from jaxnn.checks import PassedCalls
    a, b = jnp.ones(3), jnp.ones(3)
    calls = PassedCalls(size=2)
    calls.put((a,), "s", "value")
    assert calls.get((a,), "s") == "value"
    assert calls.get((b,), "s") is None and calls.get((a,), "t") is None
    # an entry under b's id whose array is a (a freed array's id reused): not b's
    calls._calls[((id(b),), "s")] = calls._calls[((id(a),), "s")]
    assert calls.get((b,), "s") is None
    calls.put((np.ones(3),), "s", "numpy")  # mutable: never remembered
    assert calls.get((np.ones(3),), "s") is None
    c = jnp.ones(3)
    calls.put((b,), "s", 1), calls.put((c,), "s", 2)  # two entries at most: the oldest goes
    assert (calls.get((a,), "s"), calls.get((b,), "s"), calls.get((c,), "s")) == (None, 1, 2)
