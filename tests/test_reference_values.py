"""The fixed reference values of ARCHITECTURE.md, and the course's published figures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from conftest import course_debug_problem
from scipy.special import expit

import jaxnn as nn
from jaxnn.losses import penalty


def test_sigmoid_gradient_reference_values():
    got = nn.sigmoid_gradient(np.array([-1, -0.5, 0, 0.5, 1.0]))
    np.testing.assert_allclose(got, [0.196612, 0.235004, 0.250000, 0.235004, 0.196612], atol=1e-6)


def test_sigmoid_gradient_equals_scipys_expit_product():
    """g(z) (1 - g(z)) = g(z) g(-z), from scipy's expit, to float64's rounding (the six printed
    decimals above cannot see an error of 1e-6)."""
    z = np.linspace(-30.0, 30.0, 601)
    with nn.x64():
        got = np.asarray(nn.sigmoid_gradient(z))
    assert got.dtype == np.float64
    # absolute 1e-15: g (1 - g) loses relative precision where 1 - g rounds (large z)
    np.testing.assert_allclose(got, expit(z) * expit(-z), rtol=1e-12, atol=1e-15)


def test_sigmoid_is_finite_and_saturates_for_huge_inputs():
    got = np.asarray(nn.sigmoid(np.array([-1e4, 0.0, 1e4])))
    np.testing.assert_array_equal(got, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("lam", [0.0, 3.0])
def test_course_gradient_check(lam):
    sizes, X, y = course_debug_problem()
    report = nn.check_gradients(nn.debug_params(sizes), X, y, lam)
    assert report.relative_difference < 1e-9
    assert report.autodiff_difference < 1e-12
    assert report.passed()
    assert [lc.shape for lc in report.layers] == [(5, 4), (3, 6)]
    assert all(lc.relative_difference < 1e-9 for lc in report.layers)


def test_course_gradient_check_matches_published_numbers():
    """The first entries the course's checkNNGradients prints for lam = 0."""
    sizes, X, y = course_debug_problem()
    report = nn.check_gradients(nn.debug_params(sizes), X, y)
    flat = np.concatenate([g.ravel(order="F") for g in report.numerical])
    np.testing.assert_allclose(
        flat[:6], [-0.0092782523, 0.0088991196, -0.0083601076, 0.0076281355, -0.0067479837,
                   -0.0000030498], atol=2e-10)
    np.testing.assert_allclose(flat[20:23], [0.3145449700, 0.1110565882, 0.0974006970],
                               atol=1e-9)


def test_gradient_report_prints_a_table():
    sizes, X, y = course_debug_problem()
    text = str(nn.check_gradients(nn.debug_params(sizes), X, y, 3.0))
    assert "numerical" in text and "backprop" in text and "autodiff" in text
    assert "Theta1" in text and "Theta2" in text
    assert len(text.splitlines()) > 38  # the 38 gradients side by side plus the table


def test_ex4weights_regularization_term(ex4weights_path):
    mat = scipy.io.loadmat(ex4weights_path)
    params = (mat["Theta1"], mat["Theta2"])
    assert nn.layer_sizes(params) == (400, 25, 10)
    with nn.x64():
        assert float(penalty(params, 1.0, 5000)) == pytest.approx(0.096141, abs=5e-7)
