"""jaxnn.compiling: per-program XLA options, and the fallback where a jaxlib lacks one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import compiling
from jaxnn.train.status import all_finite, select_first

ON_CPU = jax.default_backend() == "cpu"


@pytest.mark.parametrize("options", [{"xla_cpu_no_such_option": 1},  # unknown name
                                     {"xla_cpu_use_fusion_emitters": "maybe"},  # wrong type
                                     {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_TYPE"}])
def test_programs_compile_without_options_this_jaxlib_refuses(options):
    f = compiling.jit_with_options(lambda x: 2 * x, options)
    assert float(f(jnp.asarray(3.0))) == 6.0
    assert compiling._accepted.get(tuple(sorted(options.items()))) is (False if ON_CPU else None)
    assert float(f(jnp.asarray(4.0))) == 8.0


def test_an_error_of_the_program_itself_is_not_taken_for_a_refused_option():
    f = compiling.jit_with_options(lambda x: x.reshape(7), {})
    with pytest.raises(TypeError):
        f(jnp.zeros(6))


@pytest.mark.parametrize("name", ["LOOPS", "VECTOR_KERNELS"])
def test_the_option_sets_jaxnn_uses_are_known_to_this_jaxlib(name):
    options = getattr(compiling, name)
    g = compiling.jit_with_options(lambda x: x + 1, options)
    assert float(g(jnp.asarray(1.0))) == 2.0
    assert compiling._accepted.get(tuple(sorted(options.items()))) is (True if ON_CPU else None)


@pytest.mark.parametrize("options", [{}, compiling.LOOPS])
def test_all_finite_answers_for_every_entry(options):
    # compiled plainly and as the loops compile it (v * 0 must not be simplified to 0)
    f = compiling.jit_with_options(all_finite, options)
    v = np.ones(7, np.float32)
    assert bool(f(np.float32(1), v))
    for bad in (np.inf, -np.inf, np.nan):
        w = v.copy()
        w[3] = bad
        assert not bool(f(np.float32(1), w))
        assert not bool(f(np.float32(bad), v))
    assert bool(f(np.float32(1), np.full(7, 3e38, np.float32)))  # its sum of squares overflows
    assert bool(f(np.float32(-0.0), -np.zeros(7, np.float32)))


@pytest.mark.parametrize("options", [{}, compiling.LOOPS])
def test_select_first_is_jnp_select(options):
    # the first true condition's choice, else the default, for every combination of three
    # conditions, with scalar and vector choices
    f = compiling.jit_with_options(lambda c, x, d: select_first(list(c), list(x), d), options)
    conds = np.array([[(k >> i) & 1 for i in range(3)] for k in range(8)], bool).T  # (3, 8)
    choices = np.array([1.5, -2.0, 7.0], np.float32)
    for x in (choices, choices[:, None] * np.arange(1, 9, dtype=np.float32)):
        got = f(tuple(conds), tuple(x), np.float32(0.25))
        want = np.select(list(conds), list(np.broadcast_to(x.T, (8, 3)).T), 0.25)
        np.testing.assert_array_equal(np.asarray(got), want)
        want = jnp.select(list(conds), list(x), np.float32(0.25))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert got.dtype == want.dtype == np.float32
    # as the loops call it: IntEnum choices (weak ints), then cast
    status = jax.jit(lambda c: select_first(list(c), [3, 1, 2], 0).astype(jnp.int32))(
        tuple(conds))
    np.testing.assert_array_equal(np.asarray(status), np.select(list(conds), [3, 1, 2], 0))
