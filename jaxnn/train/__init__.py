"""Training: :func:`fit` and its building blocks.

How a call travels: :func:`fit` (:mod:`jaxnn.train.trainer`) checks its arguments and prepares the
problem on the device (:mod:`jaxnn.train.problem`), then hands it to one driver:

* scipy's ``"TNC"``, ``"CG"``, ``"BFGS"``: :mod:`jaxnn.train.scipy_bridge`, one compiled
  value-and-gradient call per evaluation (:mod:`jaxnn.train.objective`);
* the compiled ``"L-BFGS-B"`` (the default), ``"lbfgs"``, ``"fmincg"``, ``"adam"``, ``"sgd"``:
  :mod:`jaxnn.train.compiled` (``fit_lbfgsb``, ``fit_lbfgs``, ``fit_fmincg``,
  ``fit_minibatch``), which calls the loop's segment function (``lbfgsb.lbfgsb_segment``,
  ``lbfgs.lbfgs_segment``, ``fmincg.fmincg_segment``, ``loops.minibatch_segment``), jitted once,
  ``segment`` iterations at a time (:func:`jaxnn.train.compiled.run_segments`).

Each segment function is a pure ``lax.while_loop`` from a carry to the next; the whole runs
built on them (:func:`lbfgs_run`, :func:`minibatch_run`, ``fmincg.fmincg_run``) and
:func:`value_and_grad_flat` can be ``jit``-ed and ``vmap``-ed directly.
"""

from jaxnn.train.lbfgs import lbfgs_run
from jaxnn.train.loops import minibatch_run
from jaxnn.train.objective import ScipyObjective, packed_value_and_grad, value_and_grad_flat
from jaxnn.train.problem import METHODS
from jaxnn.train.scipy_bridge import blas_single_thread
from jaxnn.train.status import Status
from jaxnn.train.trainer import FitResult, fit

__all__ = ["METHODS", "FitResult", "ScipyObjective", "Status", "blas_single_thread", "fit",
           "lbfgs_run", "minibatch_run", "packed_value_and_grad", "value_and_grad_flat"]
