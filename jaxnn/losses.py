"""The regularized cost, computed from the logits, and its automatic gradient.

Output ``"sigmoid"`` (the course's): ``J = (1/m) sum_ik [-y log h - (1-y) log(1-h)]``, which from
the logits ``z`` is ``(1/m) sum_ik [softplus(z) - y z]``. Output ``"softmax"``:
``J = (1/m) sum_ik y_ik [logsumexp(z_i) - z_ik]``. Both add ``lam/(2m)`` times the sum of squares
of every non-bias weight. No clipping: finite for any finite input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxnn.activations import get_activation
from jaxnn.checks import (
    COMPUTE_IN_FLOAT64,
    PLAIN_SCALARS,
    Params,
    PassedCalls,
    check_lam,
    check_representable,
    check_targets,
    is_traced,
)
from jaxnn.defaults import ACTIVATION, OUTPUT
from jaxnn.model import logits, prepare, settings_key
from jaxnn.outputs import get_output

Array = jax.Array


def targets(y: Array, K: int, dtype) -> Array:
    """Integer labels ``(m,)`` become one-hot ``(m, K)``; a target matrix passes through."""
    return jax.nn.one_hot(y, K, dtype=dtype) if y.ndim == 1 else y.astype(dtype)


def data_loss(z: Array, Y: Array, output: str) -> Array:
    """Mean cross-entropy of logits ``z`` ``(m, K)`` against targets ``Y`` ``(m, K)``."""
    return jnp.sum(get_output(output).loss(z, Y)) / z.shape[0]


def penalty(params: Params, lam: ArrayLike, m: int) -> Array:
    """``lam/(2m) * sum_l sum(Theta_l[:, 1:]**2)``: the bias column is never regularized.
    Exactly 0 for ``lam = 0``, even where the sum of squares overflows (0 * inf would be NaN)."""
    total = lam / (2 * m) * sum(jnp.sum(t[:, 1:] ** 2) for t in params)
    return jnp.where(lam == 0, jnp.zeros_like(total), total)


def regularized_cost(params: Params, X: Array, Y: Array, lam: ArrayLike,
                     activation: str, output: str) -> Array:
    """The cost as a traceable function of ``params`` (no checks, no casting)."""
    return data_loss(logits(params, X, activation), Y, output) + penalty(params, lam, X.shape[0])


def prepare_problem(params, X, y, lam, activation, output,
                    float64: str | None = COMPUTE_IN_FLOAT64):
    """Validate every argument of a cost/gradient call; return the checked values and dtype.
    ``X`` and ``lam`` must stay finite in that dtype; ``float64`` as for :func:`prepare` (None:
    the caller checks them in the dtype it trains in).

    A call with the very ``jax.Array``s of an earlier call that passed, with equal settings
    (``lam`` by value when it is a Python int or float or a numpy float32/float64, by identity
    when it is a ``jax.Array``), skips the checks on its values (:class:`PassedCalls`; the
    memory estimate is still compared with the free memory, by :func:`prepare`)."""
    get_activation(activation), get_output(output)
    arrays, settings = _problem_key(params, X, y, lam, float64)
    hit = _passed.get(arrays, settings) if arrays else None
    params, X, dtype = prepare(params, X, float64)  # remembered by prepare too
    if hit is not None:
        (checked_lam,) = hit
        return params, X, y, lam if checked_lam is None else checked_lam, dtype
    y_checked = check_targets(y, X.shape[0], params[-1].shape[0])
    lam = check_lam(lam)
    if float64 is not None and not is_traced(lam):
        check_representable(lam, "lam", dtype, float64)
    if arrays and y_checked is y:  # (prepare gives jax.Arrays back as they were given)
        # an array lam is given again by the caller: not kept alive here
        _passed.put(arrays, settings, (None if isinstance(lam, jax.Array) else lam,))
    return params, X, y_checked, lam, dtype


#: the calls of :func:`prepare_problem` that passed
_passed = PassedCalls()


def _problem_key(params, X, y, lam, float64) -> tuple[tuple, tuple]:
    """The arrays and settings that decide :func:`prepare_problem`'s checks on values (the
    names of the activation and output are checked on every call); no arrays when
    the call cannot be remembered (``params`` not a sequence, ``lam`` neither a plain number
    nor a ``jax.Array``)."""
    if not isinstance(params, tuple | list):
        return (), ()
    if type(lam) in PLAIN_SCALARS:  # by value; the sign of a zero decides the penalty's zeros
        negative_zero = type(lam) is not int and lam == 0 and math.copysign(1.0, lam) < 0
        extra, lam_key = (), (type(lam), lam, negative_zero)
    elif isinstance(lam, jax.Array):
        extra, lam_key = (lam,), "array"
    else:
        return (), ()
    return (*params, X, y, *extra), (settings_key(float64), lam_key)


def cast(params: Params, X: Array, y: Array, dtype) -> tuple[Params, Array, Array]:
    """Cast params and X to ``dtype`` and turn ``y`` into a target matrix (inside ``jit``)."""
    params = tuple(t.astype(dtype) for t in params)
    return params, X.astype(dtype), targets(y, params[-1].shape[0], dtype)


@partial(jax.jit, static_argnames=("activation", "output", "dtype"))
def _cost(params, X, y, lam, activation, output, dtype):
    params, X, Y = cast(params, X, y, dtype)
    return regularized_cost(params, X, Y, lam, activation, output)


@partial(jax.jit, static_argnames=("activation", "output", "dtype"))
def _autodiff(params, X, y, lam, activation, output, dtype):
    params, X, Y = cast(params, X, y, dtype)
    return jax.value_and_grad(regularized_cost)(params, X, Y, lam, activation, output)


def cost(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: ArrayLike = 0.0,
    *,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> Array:
    """The regularized cost ``J`` (a scalar) of ``params`` on ``X`` ``(m, n_0)``.

    ``y`` is integer labels ``(m,)`` in ``0..K-1`` or a target matrix ``(m, K)``. Raises
    ``ValueError`` for shapes that do not chain or match, a target matrix of the wrong width,
    complex or non-numeric arrays, and, for values it can see (not inside the caller's own
    ``jax.jit`` or other transformation, where they are tracers), labels out of range, a
    negative ``lam`` and non-finite ``X`` or weights (one reduction per array, once per
    ``jax.Array``). Inside a transformation those values are not checked: out-of-range labels
    then match no class (a finite, wrong cost) and NaN inputs give a NaN cost."""
    args = prepare_problem(params, X, y, lam, activation, output)
    return _cost(*args[:4], activation, output, args[4])


def autodiff(
    params: Sequence[ArrayLike],
    X: ArrayLike,
    y: ArrayLike,
    lam: ArrayLike = 0.0,
    *,
    activation: str = ACTIVATION,
    output: str = OUTPUT,
) -> tuple[Array, Params]:
    """``(J, grads)`` from ``jax.value_and_grad`` of :func:`cost`; ``grads`` mirrors ``params``.

    Same arguments and checks as :func:`cost`."""
    args = prepare_problem(params, X, y, lam, activation, output)
    return _autodiff(*args[:4], activation, output, args[4])
