"""XLA compiler options for single programs (never JAX's global configuration).

On the CPU backend, where the compiled loops' time is spent, an option set can be given to one
``jit``-ed function: :func:`jit_with_options` compiles it with the set, and without it where
this jaxlib does not know one of its options (an older or newer XLA), remembering the answer per
set. On other backends the function compiles as ``jax.jit`` makes it.

The sets (measured in ``benchmarks/RESULTS.md``):

* :data:`VECTOR_KERNELS`: YNNPACK kept to the matrix products, 512-bit vectors. XLA's CPU
  compiler hands elementwise and reduction fusions to YNNPACK by default, which runs the
  incremental gradient check's kernels about ten times slower (each intermediate is
  materialized); its own fused loops with wide vectors are faster.
* :data:`LOOPS`: the compiled training loops (``lbfgs``, ``fmincg``). Their time is the matrix
  products, which YNNPACK brings precompiled; their compile time is their bookkeeping's many
  small kernels. XLA's own elementwise and reduction kernels made by its older emitter compile
  in about half the time, and the elementwise work of the objective given to YNNPACK as well
  keeps the evaluations within a few percent of the default's (the iterates move as any change
  of rounding moves them).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxnn.saved_programs import cached_call

VECTOR_KERNELS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
                  "xla_cpu_prefer_vector_width": 512}
LOOPS = {"xla_cpu_use_fusion_emitters": False,
         "xla_cpu_experimental_ynn_fusion_type":
             "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_ELTWISE"}

#: per option set (its sorted items): whether this jaxlib accepts it (absent: not tried yet)
_accepted: dict[tuple, bool] = {}
#: how XLA refuses an option it does not know, or a value it does not take for one
_REFUSALS = ("compile option", "While setting option", "enum value")


def jit_with_options(fun: Callable, options: dict, **jit_kw: object) -> Callable:
    """``jax.jit(fun, **jit_kw)``, compiled with the XLA ``options`` on the CPU backend when
    this jaxlib knows them all (else without them). The result is called like the jitted
    function, and keeps its programs in :func:`jaxnn.program_cache`'s directory when one is in
    use."""
    tuned = jax.jit(fun, compiler_options=options, **jit_kw)
    plain = jax.jit(fun, **jit_kw)
    key = tuple(sorted(options.items()))
    names = jit_kw.get("static_argnames", ())
    static = (names,) if isinstance(names, str) else tuple(names)
    # the program cache keys static arguments by name; other jit options are not in its key
    run = cached_call if set(jit_kw) <= {"static_argnames"} else _uncached

    def call(*args: object, **kw: object) -> object:
        if jax.default_backend() != "cpu" or _accepted.get(key) is False:
            return run(plain, fun, {}, static, args, kw)
        try:
            out = run(tuned, fun, options, static, args, kw)
        except Exception as e:  # an older or newer jaxlib without this option or value
            if not any(refusal in str(e) for refusal in _REFUSALS):
                raise
            _accepted[key] = False
            return run(plain, fun, {}, static, args, kw)
        _accepted[key] = True
        return out

    return call


def _uncached(jitted: Callable, fun: Callable, options: dict, static: tuple, args: tuple,
              kw: dict) -> object:
    return jitted(*args, **kw)
