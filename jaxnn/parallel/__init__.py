"""Many networks at once (``vmap``) and one network over many devices (``jax.sharding``).

**Many networks.** A *batch* of networks is the params pytree with a leading axis ``B`` on every
``Theta``: ``(Theta1 (B, n_1, 1 + n_0), Theta2 (B, n_2, 1 + n_1), ...)``, as made by
:func:`init_many` (member ``i`` is :func:`jaxnn.init_params` with the ``i``-th of ``B`` keys).
:func:`fit_many` trains the whole batch, each member with its own ``lam`` (and for adam/sgd its
own shuffling seed), as **one compiled program**: the B small matrix products of every layer
become one batched product, and there is one dispatch per run instead of one per network and
iteration.

* ``"adam"``/``"sgd"``: ``jax.vmap`` of :func:`jaxnn.train.minibatch_run`, the very loop of
  ``fit(method="adam")``: member ``i`` equals ``fit(member_i, X, y, lams[i], method="adam",
  seed=seed + i)`` to rounding.
* ``"lbfgs"``: :func:`jaxnn.parallel.lbfgs.lbfgs_many_run`, an L-BFGS written for ``vmap``, with
  a weak-Wolfe line search of its own (the comment in :mod:`jaxnn.parallel.lbfgs` compares it
  with ``fit``'s loop):
  member ``i`` equals the same loop run on network ``i`` alone, and reaches the minima ``fit``'s
  L-BFGS methods reach.

Under ``vmap`` a loop runs until its slowest member stops; members that stopped earlier are held
fixed, so each member's iteration count and result are its own. :func:`evaluate_many`,
:func:`ensemble_proba` and :func:`ensemble_predict` evaluate and combine such batches (they live
in :mod:`jaxnn.parallel.members`, with :func:`init_many` and :func:`member`).
With ``fit_many(..., devices=N)`` the *networks* are split across ``N`` devices (a ``Mesh`` axis
``"networks"``), the data replicated: ``B`` must be a multiple of ``N``.

**One network, many devices (data parallelism).** :func:`jaxnn.fit` takes ``devices=``: the
examples (rows of ``X`` and ``Y``) are split across a ``Mesh`` axis ``"batch"`` and the
parameters replicated, and every compiled function runs SPMD: XLA computes each device's partial
sums and adds them with an all-reduce. :func:`data_mesh`, :func:`shard_examples` and
:func:`replicate` (:mod:`jaxnn.parallel.sharding`) place arrays the same way for
users who call :func:`jaxnn.cost`, :func:`jaxnn.backprop` or their own jitted functions on
sharded inputs: JAX's ``jit`` follows the inputs' shardings, so ``backprop(params, Xs, ys)``
with ``Xs, ys = shard_examples(X, y, 8)`` runs on 8 devices and returns the gradients that one
device computes, to rounding. For several processes (hosts), see ``docs/multihost.md`` and
:func:`shard_local_examples`.
"""

from jaxnn.parallel.fit_many import MANY_METHODS, FitManyResult, fit_many
from jaxnn.parallel.lbfgs import LbfgsState, lbfgs_many_run
from jaxnn.parallel.members import (
    ensemble_predict,
    ensemble_proba,
    evaluate_many,
    init_many,
    member,
)
from jaxnn.parallel.sharding import data_mesh, replicate, shard_examples, shard_local_examples

__all__ = [
    "MANY_METHODS",
    "FitManyResult",
    "LbfgsState",
    "data_mesh",
    "ensemble_predict",
    "ensemble_proba",
    "evaluate_many",
    "fit_many",
    "init_many",
    "lbfgs_many_run",
    "member",
    "replicate",
    "shard_examples",
    "shard_local_examples",
]
