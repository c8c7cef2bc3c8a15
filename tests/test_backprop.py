"""The hand-written backward pass against autodiff and an independent numpy implementation."""

from __future__ import annotations

import ast
import importlib
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_numpy import cost_and_grad, one_hot

import jaxnn as nn
from jaxnn.backprop import backprop_arrays
from jaxnn.compiling import LOOPS
from jaxnn.gradcheck import relative_difference

ARCHS = [(6, 3), (6, 5, 3), (4, 7, 5, 3), (5, 4, 4, 4, 2)]


def _flat(grads) -> np.ndarray:
    return np.concatenate([np.asarray(g, np.float64).ravel() for g in grads])


def _problem(sizes, seed=0, m=11, scale=1.0):
    rng = np.random.default_rng(seed)
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(seed, sizes, scale))
    X = rng.normal(size=(m, sizes[0]))
    y = rng.integers(0, sizes[-1], size=m)
    return params, X, y


@pytest.mark.parametrize("sizes", ARCHS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("lam", [0.0, 1.0, 3.0])
def test_backprop_matches_numpy_and_autodiff(sizes, activation, output, lam):
    params, X, y = _problem(sizes, seed=len(sizes))
    J_np, g_np = cost_and_grad(params, X, one_hot(y, sizes[-1]), lam, activation, output)
    with nn.x64():
        J_b, g_b = nn.backprop(params, X, y, lam, activation=activation, output=output)
        J_a, g_a = nn.autodiff(params, X, y, lam, activation=activation, output=output)
        J_c = nn.cost(params, X, y, lam, activation=activation, output=output)
    assert g_b[0].dtype == jnp.float64
    assert [g.shape for g in g_b] == [t.shape for t in params]
    assert float(J_b) == pytest.approx(J_np, rel=1e-12)
    assert float(J_c) == pytest.approx(J_np, rel=1e-12)
    assert relative_difference(_flat(g_b), _flat(g_np)) <= 1e-10
    assert relative_difference(_flat(g_b), _flat(g_a)) <= 1e-10
    np.testing.assert_allclose(_flat(g_b), _flat(g_np), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_target_matrix_equals_labels_and_soft_targets_work(output):
    params, X, y = _problem((5, 4, 3), seed=2)
    with nn.x64():
        J1, g1 = nn.backprop(params, X, y, 1.0, output=output)
        J2, g2 = nn.backprop(params, X, one_hot(y, 3), 1.0, output=output)
        assert float(J1) == pytest.approx(float(J2), rel=1e-14)
        np.testing.assert_allclose(_flat(g1), _flat(g2), rtol=1e-13)
        soft = np.random.default_rng(0).dirichlet(np.ones(3), size=X.shape[0]) * 0.9  # rows of 0.9
        J, g = nn.backprop(params, X, soft, 0.5, output=output)
    J_np, g_np = cost_and_grad(params, X, soft, 0.5, "sigmoid", output)
    assert float(J) == pytest.approx(J_np, rel=1e-12)
    assert relative_difference(_flat(g), _flat(g_np)) <= 1e-10


def test_bias_column_is_not_regularized():
    params, X, y = _problem((4, 3, 2), seed=5)
    with nn.x64():
        J0, g0 = nn.backprop(params, X, y, 0.0)
        J1, g1 = nn.backprop(params, X, y, 2.0)
        bumped = tuple(t.copy() for t in params)
        for t in bumped:
            t[:, 0] += 10.0  # large bias changes the data term only
        # the penalty difference must not depend on the bias column
        Jb0 = float(nn.cost(bumped, X, y, 0.0))
        Jb1 = float(nn.cost(bumped, X, y, 2.0))
    m = X.shape[0]
    expected_penalty = 2.0 / (2 * m) * sum(np.sum(t[:, 1:] ** 2) for t in params)
    assert float(J1) - float(J0) == pytest.approx(expected_penalty, rel=1e-12)
    assert Jb1 - Jb0 == pytest.approx(expected_penalty, rel=1e-12)
    for a, b, t in zip(g0, g1, params, strict=True):
        np.testing.assert_allclose(np.asarray(b)[:, 0], np.asarray(a)[:, 0], rtol=1e-14)
        np.testing.assert_allclose(np.asarray(b)[:, 1:] - np.asarray(a)[:, 1:],
                                   2.0 / m * t[:, 1:], rtol=1e-10, atol=1e-15)


def test_logistic_regression_without_hidden_layer():
    params, X, y = _problem((6, 4), seed=3)
    J_np, g_np = cost_and_grad(params, X, one_hot(y, 4), 1.0)
    with nn.x64():
        J, g = nn.backprop(params, X, y, 1.0)
    assert len(g) == 1 and float(J) == pytest.approx(J_np, rel=1e-12)
    np.testing.assert_allclose(g[0], g_np[0], rtol=1e-10)


@pytest.mark.parametrize(("module", "rule"), [("jaxnn.backprop", "def affine_backward"),
                                             ("jaxnn.outputs", "def _sigmoid_loss_and_delta"),
                                             ("jaxnn.activations", "grad_from_output")])
def test_backprop_source_uses_no_derivative_transformation(module, rule):
    """The hand-written backward pass and the rules it calls (the outputs' deltas, the
    activations' derivatives) use no JAX derivative transformation."""
    src = inspect.getsource(importlib.import_module(module))
    assert rule in src
    names = {n.attr if isinstance(n, ast.Attribute) else n.id
             for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Attribute | ast.Name)}
    names |= {a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)
              for a in n.names}
    forbidden = {"grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "linearize",
                 "custom_vjp", "custom_jvp", "hessian", "autodiff"}
    assert not names & forbidden


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_huge_weights_give_finite_cost_and_gradients(dtype, output, activation):
    params, X, y = _problem((8, 6, 4), seed=4, scale=1.0)
    params = tuple(np.sign(t) * 1e3 for t in params)
    with nn.x64(dtype == "float64"):
        p = tuple(jnp.asarray(t, dtype) for t in params)
        Xd = jnp.asarray(X, dtype)
        J, g = nn.backprop(p, Xd, y, 1.0, activation=activation, output=output)
        Ja, ga = nn.autodiff(p, Xd, y, 1.0, activation=activation, output=output)
        assert J.dtype == jnp.dtype(dtype)
        assert np.isfinite(float(J)) and float(J) > 1.0
        assert np.isfinite(_flat(g)).all()
        assert float(J) == pytest.approx(float(Ja), rel=1e-5)
        assert relative_difference(_flat(g), _flat(ga)) < 1e-5


def test_float32_agrees_with_float64_on_the_course_network():
    rng = np.random.default_rng(0)
    params = tuple(np.asarray(t, np.float64) for t in nn.init_params(0, (400, 25, 10)))
    X = rng.random((500, 400))
    y = rng.integers(0, 10, 500)
    J32, g32 = nn.backprop(params, X.astype(np.float32), y, 1.0)
    assert J32.dtype == jnp.float32
    with nn.x64():
        J64, g64 = nn.backprop(params, X, y, 1.0)
    assert float(J32) == pytest.approx(float(J64), rel=1e-5)
    assert relative_difference(_flat(g32), _flat(g64)) < 1e-5


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4).map(lambda s: [*s[:-1], s[-1] + 1]),
    m=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
    lam=st.floats(0.0, 5.0),
    scale=st.floats(0.01, 3.0),
    activation=st.sampled_from(["sigmoid", "tanh", "relu"]),
    output=st.sampled_from(["sigmoid", "softmax"]),
)
def test_property_backprop_equals_numpy(sizes, m, seed, lam, scale, activation, output):
    rng = np.random.default_rng(seed)
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    params = tuple(rng.uniform(-scale, scale, (o, 1 + i)) for i, o in pairs)
    X = rng.normal(size=(m, sizes[0]))
    y = rng.integers(0, sizes[-1], size=m)
    J_np, g_np = cost_and_grad(params, X, one_hot(y, sizes[-1]), lam, activation, output)
    with nn.x64():
        J, g = nn.backprop(params, X, y, lam, activation=activation, output=output)
    assert float(J) == pytest.approx(J_np, rel=1e-11, abs=1e-14)
    np.testing.assert_allclose(_flat(g), _flat(g_np), rtol=1e-9, atol=1e-13)
    assert relative_difference(_flat(g), _flat(g_np)) <= 1e-10


def _products_outside_ynnpack(hlo: str) -> tuple[list[str], int]:
    """The matrix products of an optimized XLA:CPU program that no YNNPACK fusion computes
    (in a computation that a YNNPACK fusion calls, directly or not), and the number of YNNPACK
    fusions."""
    calls: dict[str, set[str]] = {}
    products, roots, computation = [], set(), None
    for line in hlo.splitlines():
        if line.endswith("{") and not line.startswith(" "):  # a computation's header
            computation = line.split()[1] if line.startswith("ENTRY") else line.split()[0]
        callees = set(re.findall(r"(?:calls|to_apply)=(%[\w.\-]+)", line))
        calls.setdefault(computation, set()).update(callees)
        if '"__ynn_fusion"' in line:
            roots |= callees
        if " dot(" in line:
            products.append((computation, line.strip()))
    inside, todo = set(), list(roots)
    while todo:
        c = todo.pop()
        if c not in inside:
            inside.add(c)
            todo.extend(calls.get(c, ()))
    return [p for c, p in products if c not in inside], len(roots)


@pytest.mark.parametrize("options", [None, LOOPS], ids=["default", "loops"])
def test_every_product_goes_to_the_same_cpu_library(options):
    """On XLA:CPU, a float32 product whose left operand is transposed (``W^T delta``) goes to
    Eigen, whose first use in a process has oneDNN generate its kernels (30-45 ms); backprop
    gives it ``W^T`` as an array of its own so that YNNPACK computes every product, with the
    default options and with the training loops' (two hidden layers: the signal sent down
    twice)."""
    if jax.default_backend() != "cpu":
        pytest.skip("XLA:CPU's choice of library")
    rng = np.random.default_rng(0)
    params = tuple(jnp.asarray(t, jnp.float32) for t in nn.init_params(0, (400, 25, 25, 10)))
    X = jnp.asarray(rng.random((500, 400)), jnp.float32)
    Y = jnp.asarray(np.eye(10, dtype=np.float32)[rng.integers(0, 10, 500)])
    lowered = jax.jit(backprop_arrays).lower(params, X, Y, 1.0)
    try:
        hlo = lowered.compile(options).as_text()
    except Exception as e:  # an XLA without one of the options
        if "option" not in str(e).lower():
            raise
        pytest.skip(f"this XLA refuses the loops' options: {e}")
    outside, fusions = _products_outside_ynnpack(hlo)
    if not fusions:
        pytest.skip("this XLA:CPU gives no fusion to YNNPACK")
    assert hlo.count(" dot(") == 8  # three layers forward, three weight gradients, two signals
    assert outside == []
