"""An independent plain-numpy float64 implementation of the cost and its gradient.

Written the course's way (a column of ones prepended to each layer's input, derivatives
computed from ``z``), sharing no code with jaxnn, for the tests to compare against.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax


def _g(z: np.ndarray, activation: str) -> np.ndarray:
    return {"sigmoid": expit, "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}[activation](z)


def _g_prime(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return expit(z) * (1 - expit(z))
    if activation == "tanh":
        return 1 / np.cosh(z) ** 2
    return (z > 0).astype(np.float64)


def _with_ones(a: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((a.shape[0], 1)), a])


def cost_and_grad(params, X, Y, lam, activation="sigmoid", output="sigmoid"):
    """``(J, grads)`` for float64 ``params``, ``X`` ``(m, n)`` and targets ``Y`` ``(m, K)``."""
    params = [np.asarray(t, np.float64) for t in params]
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    m = X.shape[0]
    a_ones, zs = [_with_ones(X)], []
    for t in params:
        zs.append(a_ones[-1] @ t.T)
        a_ones.append(_with_ones(_g(zs[-1], activation)))
    z = zs[-1]
    if output == "sigmoid":
        J = -np.sum(Y * log_expit(z) + (1 - Y) * log_expit(-z)) / m
        d = expit(z) - Y
    else:
        J = -np.sum(Y * log_softmax(z, axis=1)) / m
        d = softmax(z, axis=1) * Y.sum(axis=1, keepdims=True) - Y
    J += lam / (2 * m) * sum(np.sum(t[:, 1:] ** 2) for t in params)
    grads = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        reg = params[l].copy()
        reg[:, 0] = 0
        grads[l] = d.T @ a_ones[l] / m + lam / m * reg
        if l > 0:
            d = (d @ params[l][:, 1:]) * _g_prime(zs[l - 1], activation)
    return J, grads


def one_hot(y: np.ndarray, K: int) -> np.ndarray:
    return np.eye(K)[np.asarray(y)]
