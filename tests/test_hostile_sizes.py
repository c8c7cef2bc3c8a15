"""Sizes that cannot be allocated are a ValueError saying how much is needed, how much is
available and what to reduce, never an abort inside XLA; the memory rule itself."""

from __future__ import annotations

import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import scipy.io

import jaxnn as nn
from jaxnn import memory
from jaxnn.checks import MAX_CLASSES, check_classes, check_labels
from jaxnn.datasets import load_mat
from jaxnn.memory import (
    MEMORY_FLOOR,
    MEMORY_LIMIT_ENV,
    available_memory,
    check_memory,
    format_bytes,
    param_count,
    problem_bytes,
)
from jaxnn.parallel import init_many

GiB = 2**30
MiB = 2**20


# ---- the estimate ------------------------------------------------------------------------------


def test_param_count_is_the_number_of_weights() -> None:
    sizes = (400, 25, 10)
    assert param_count(sizes) == 25 * 401 + 10 * 26 == 10285
    assert param_count(sizes) == sum(t.size for t in nn.debug_params(sizes))
    assert param_count((400, 10**8, 10)) == 401 * 10**8 + 10 * (10**8 + 1)  # exact, no overflow


def test_problem_bytes_counts_what_a_fit_holds() -> None:
    """Written out for the course's network: X once; weights, gradient and two optimizer
    copies; activations, deltas and one-hot targets for every example."""
    m, P = 5000, 10285
    X, weights = m * 400, 4 * P
    activations, deltas, targets = m * (25 + 10), m * (25 + 10), m * 10
    expected = 4 * (X + weights + activations + deltas + targets)
    assert problem_bytes((400, 25, 10), m, np.float32) == expected == 9_764_560
    assert problem_bytes((400, 25, 10), m, "float64") == 2 * expected
    assert problem_bytes((400, 25, 10), m, np.float32, grads=False, optimizer_copies=0) == \
        4 * (X + P + activations)
    assert problem_bytes((400, 25, 10), m, np.float32, networks=3) == \
        4 * (X + 3 * (weights + activations + deltas + targets))
    assert problem_bytes((400, 25, 10), m, np.float32, optimizer_copies=20) == \
        expected + 4 * 18 * P
    assert problem_bytes((400, 25, 10), m) == expected  # JAX's default float: float32 here
    assert problem_bytes((400, 10**9, 10), 10**9, np.float64) > 2**63  # Python ints
    # the compiled loops hold LOOP_ACTIVATION_COPIES arrays of each layer's size
    assert problem_bytes((400, 25, 10), m, np.float32, activation_copies=8) == \
        4 * (X + weights + 8 * activations + targets)


def test_fit_refuses_a_compiled_loop_that_cannot_fit(monkeypatch) -> None:
    """One evaluation of a 400-2000-10 network on 5000 examples fits in 200 MB (about 100 MB);
    the compiled loops hold about four times as much (measured for fit's default: 7.5 arrays
    of the hidden layer's (m, h) size), and are refused before anything is compiled."""
    params = nn.init_params(0, (400, 2000, 10))
    X, y = np.zeros((5000, 400), np.float32), np.arange(5000) % 10
    monkeypatch.setenv("JAXNN_MEMORY_LIMIT", str(200 * 2**20))
    assert np.isfinite(float(nn.cost(params, X[:50], y[:50])))
    P = 401 * 2000 + 10 * 2001
    for method, copies in (("L-BFGS-B", 60), ("lbfgs", 76), ("fmincg", 12)):
        with pytest.raises(ValueError) as info:
            nn.fit(params, X, y, maxiter=1, method=method)
        # X once, the method's weight-sized vectors, 8 arrays per layer and the targets
        need = 4 * (5000 * 400 + copies * P + 8 * 5000 * (2000 + 10) + 5000 * 10)
        message = str(info.value)
        assert message.startswith("training 400-2000-10 on 5,000 examples in a compiled loop: "
                                  f"needs about {format_bytes(need)} of memory but only "
                                  "200.0 MiB")
        assert message.endswith("or a mini-batch method (method='adam' with batch_size)")


def test_wide_networks_are_refused_for_their_optimizers_vectors(monkeypatch) -> None:
    """A 4-1,000,000-3 network on 30 examples: its 8,000,003 weights are 32 MB, but L-BFGS-B's
    compiled loop holds about 53 weight-sized vectors at once (measured; 92-94 before its
    memory became a ring written in place), about 1.7 GB, and its activations on 30 examples
    come on top: refused under a 2.5 GB cap (the kernel killed such runs when 24 vectors were
    counted), while fmincg's loop, about 12, fits."""
    from jaxnn.memory import FIT_PARAM_COPIES, loop_bytes

    sizes = (4, 10**6, 3)
    monkeypatch.setenv("JAXNN_MEMORY_LIMIT", str(2_500_000_000))
    params = tuple(np.zeros((o, 1 + i), np.float32)
                   for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    X, y = np.zeros((30, 4), np.float32), np.arange(30) % 3
    for method in ("L-BFGS-B", "lbfgs"):
        with pytest.raises(ValueError, match="training 4-1000000-3 on 30 examples in a "
                                             r"compiled loop: needs about [23]\.\d GiB"):
            nn.fit(params, X, y, maxiter=1, method=method)
    assert loop_bytes(sizes, 30, np.float32, param_copies=FIT_PARAM_COPIES["fmincg"]) < 1.5 * 2**30


def test_problem_bytes_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="layer_sizes"):
        problem_bytes((400,), 10)
    with pytest.raises(ValueError, match="m must be a count"):
        problem_bytes((2, 2), -1)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * MiB, 3 * GiB, 2**50 * 7)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB", "7.0 PiB"]


# ---- the rule ----------------------------------------------------------------------------------


def test_check_memory_names_what_is_needed_available_and_what_to_reduce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(GiB))
    assert check_memory(GiB, "fits exactly") == GiB
    with pytest.raises(ValueError) as info:
        check_memory(3 * GiB, "init_params: layer_sizes (2, 3)", hint="reduce layer_sizes")
    assert str(info.value) == ("init_params: layer_sizes (2, 3): needs about 3.0 GiB of memory "
                               "but only 1.0 GiB is available (host memory, capped by "
                               "$JAXNN_MEMORY_LIMIT); reduce layer_sizes")


def test_small_requests_do_not_ask_the_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)

    def never(*args):
        raise AssertionError("the system was asked about a small request")

    monkeypatch.setattr(memory, "available_memory", never)
    assert check_memory(MEMORY_FLOOR, "small") == MEMORY_FLOOR
    with pytest.raises(AssertionError):
        check_memory(MEMORY_FLOOR + 1, "large")


def test_available_memory_on_this_machine() -> None:
    available, where = available_memory("host")
    assert where == "host memory"
    if sys.platform.startswith("linux"):
        with open("/proc/meminfo") as f:
            meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        assert 0 < available <= meminfo["MemTotal"]
        assert abs(available - meminfo["MemAvailable"]) < 0.25 * meminfo["MemTotal"] or \
            available < meminfo["MemAvailable"]  # a cgroup limit may be lower
    cpu = jax.devices("cpu")[0]
    assert available_memory(cpu)[1] == "host memory"


def test_available_memory_of_an_accelerator_uses_its_statistics() -> None:
    class FakeGPU:
        platform = "gpu"

        def memory_stats(self):
            return {"bytes_limit": 80 * GiB, "bytes_in_use": 60 * GiB}

        def __str__(self):
            return "cuda:0"

    assert available_memory(FakeGPU()) == (20 * GiB, "memory of cuda:0")
    with pytest.raises(ValueError, match=r"needs about 30.0 GiB of memory but only 20.0 GiB is "
                                         r"available \(memory of cuda:0\)"):
        check_memory(30 * GiB, "fit", device=FakeGPU())


@pytest.mark.parametrize("raw", ["lots", "1e400", "inf", "nan", "0", "-1", "0.5"])
def test_a_bad_memory_limit_variable_is_a_value_error(raw: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a number, infinite (``int(inf)``: "cannot convert float infinity to integer"), or
    below one byte (0 and -1 were a cap of 0 bytes, which blamed the network's size)."""
    monkeypatch.setenv(MEMORY_LIMIT_ENV, raw)
    with pytest.raises(ValueError, match=r"^\$JAXNN_MEMORY_LIMIT must be a positive number of "
                                         rf"bytes \(such as 8e9\), got '{raw}'; unset it for "
                                         r"no cap$"):
        check_memory(1, "anything")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2.5e3")
    assert available_memory("host") == (2500, "host memory, capped by $JAXNN_MEMORY_LIMIT")


# ---- where jaxnn allocates ---------------------------------------------------------------------


def test_init_params_refuses_a_network_that_cannot_fit() -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        nn.init_params(0, (400, 100_000_000, 10))
    message = str(info.value)
    assert message.startswith("init_params: layer_sizes (400, 100000000, 10) "
                              "(41,100,000,010 weights): needs about 612.4 GiB of memory")
    assert message.endswith("reduce layer_sizes") and time.perf_counter() - start < 1


def test_an_impossible_network_does_not_abort_the_interpreter() -> None:
    """In a fresh interpreter: a ValueError and exit status 1, not SIGABRT (-6) from XLA."""
    code = ("import jax, jaxnn\n"
            "try:\n"
            "    jax.block_until_ready(jaxnn.init_params(0, (400, 100_000_000, 10)))\n"
            "except ValueError as e:\n"
            "    print('ValueError', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ValueError init_params: layer_sizes (400, 100000000, 10)")


def test_cost_backprop_forward_and_fit_refuse_what_cannot_fit() -> None:
    """A million examples through 100,000 hidden units: 745 GiB of activations."""
    params = (np.zeros((100_000, 2)), np.zeros((2, 100_001)))
    X, y = np.zeros((1_000_000, 1)), np.zeros(1_000_000, np.int64)
    expected = "1,000,000 examples through layer_sizes (1, 100000, 2): needs about"
    for call in (lambda: nn.cost(params, X, y), lambda: nn.backprop(params, X, y),
                 lambda: nn.autodiff(params, X, y), lambda: nn.forward(params, X),
                 lambda: nn.predict(params, X), lambda: nn.accuracy(params, X, y),
                 lambda: nn.fit(params, X, y, maxiter=1)):
        with pytest.raises(ValueError) as info:
            call()
        assert expected in str(info.value) or "fit: a 1-100000-2 network" in str(info.value)


def test_the_incremental_gradient_check_refuses_what_cannot_fit(monkeypatch) -> None:
    """Its floor (5 float64 copies of each layer's inputs, 2 of each unit's activations)
    against a limit one byte below it: refused before any array is made; with room to spare
    (100 times the floor, since XLA's compilation comes on top): computed."""
    from jaxnn.gradcheck import check_gradients
    from jaxnn.incremental import incremental_bytes, numerical_cost_gradient

    sizes, m = (20, 5, 3), 400
    need = incremental_bytes(sizes, m)
    assert need == 8 * m * (5 * (21 + 6) + 2 * (5 + 3))
    rng = np.random.default_rng(0)
    params, X, y = nn.init_params(0, sizes), rng.random((m, 20)), rng.integers(0, 3, m)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(need - 1))
    for call in (lambda: numerical_cost_gradient(params, X, y),
                 lambda: check_gradients(params, X, y)):
        with pytest.raises(ValueError, match=r"the incremental numerical gradient of "
                                             r"layer_sizes \(20, 5, 3\) on 400 examples: "
                                             r"needs about .* check fewer examples"):
            call()
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(100 * need))
    assert check_gradients(params, X, y).passed()


def test_one_hot_refuses_what_cannot_fit() -> None:
    with pytest.raises(ValueError, match=r"one_hot: 1,000,000 labels x K=50,000 classes: needs "
                                         r"about 186.3 GiB of memory"):
        nn.one_hot(np.zeros(10**6, np.int64), 50_000)
    assert nn.one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize("K", [MAX_CLASSES + 1, 10**12])
def test_labels_cannot_ask_for_an_absurd_number_of_classes(K: int) -> None:
    with pytest.raises(ValueError, match=f"K={K} entries each; jaxnn takes at most 100000"):
        nn.one_hot(np.array([0, 1]), K)
    with pytest.raises(ValueError, match=f"K={K} classes; jaxnn takes at most 100000 classes"):
        check_classes(K)
    params = (np.zeros((K, 2)),) if K <= MAX_CLASSES + 1 else None
    if params is not None:  # a network that wide, with labels: the same bound
        with pytest.raises(ValueError, match="at most 100000 classes from labels"):
            nn.cost(params, np.ones((2, 1)), np.array([0, 1]))
    assert check_classes(MAX_CLASSES) == MAX_CLASSES
    with pytest.raises(ValueError, match=f"label {K}, which would make {K + 1} classes; jaxnn "
                                         "takes at most 100000 classes from labels"):
        check_labels(np.array([0, K]))
    assert check_labels(np.array([0, MAX_CLASSES - 1])).tolist() == [0, MAX_CLASSES - 1]


def test_a_layer_past_the_largest_float_is_refused_in_words() -> None:
    assert memory.format_bytes(10**400) == "more than 1e308 B"  # was an OverflowError
    with pytest.raises(ValueError, match=r"needs about more than 1e308 B of memory"):
        nn.init_params(0, (4, 10**400, 2))


def test_float_labels_near_1e12_are_not_wrapped_around() -> None:
    params = nn.init_params(0, (2, 3, 2))
    with pytest.raises(ValueError, match=r"labels in 0\.\.1000000000000 but the network has K=2"):
        nn.cost(params, np.ones((2, 2)), np.array([0.0, 1e12]))
    with pytest.raises(ValueError, match=r"labels in -3000000000\.\.1"):
        nn.cost(params, np.ones((2, 2)), np.array([-3e9, 1.0]))


def test_load_mat_bounds_the_classes_labels_imply(tmp_path) -> None:
    path = tmp_path / "d.mat"
    scipy.io.savemat(path, {"X": np.ones((2, 2)), "y": [[1], [200_000]]})
    with pytest.raises(ValueError, match=r"the largest label, 200000, implies K=200000 classes; "
                                         r"jaxnn takes at most 100000") as info:
        load_mat(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="num_labels=200000 classes; jaxnn takes at most 100000"):
        load_mat(path, num_labels=200_000)
    with pytest.raises(ValueError, match="num_labels must be a positive integer, got 10.5"):
        load_mat(path, num_labels=10.5)
    scipy.io.savemat(path, {"X": np.ones((2, 2)), "y": [[1], [1e12]]})
    with pytest.raises(ValueError, match=r"label 1e\+12 is out of range"):
        load_mat(path)


def test_bfgs_refuses_a_dense_matrix_that_cannot_fit_and_warns_when_it_is_slow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """scipy's BFGS keeps an n x n matrix: refused before scipy allocates it when memory is
    short, a warning above 2000 parameters, nothing for the course's small networks."""
    import warnings

    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(GiB))
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 400)), rng.integers(0, 10, 30)
    with pytest.raises(ValueError, match=r"fit\(method='BFGS'\) with 10,285 parameters: .* "
                       r"needs about 4\.7 GiB .* use method='L-BFGS-B'"):
        nn.fit(nn.init_params(0, (400, 25, 10)), X, y, method="BFGS", maxiter=1)
    with pytest.warns(UserWarning, match=r"multiplies 2,563 x 2,563 matrices") as caught:
        r = nn.fit(nn.init_params(0, (60, 40, 3)), X[:, :60], y % 3, method="BFGS", maxiter=1)
    assert r.n_iter == 1 and caught[0].filename == __file__  # the user's line
    clf = nn.NeuralNetClassifier((40,), method="BFGS", max_iter=1)
    with pytest.warns(UserWarning, match="multiplies") as caught:
        clf.fit(X[:, :60], y % 3)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nn.fit(nn.init_params(0, (4, 5, 3)), X[:, :4], y % 3, method="BFGS",
                      maxiter=2).n_iter == 2


def test_init_many_refuses_networks_that_cannot_fit() -> None:
    with pytest.raises(ValueError) as info:
        init_many(0, 10**7, (400, 25, 10))
    assert str(info.value).startswith("init_many: 10,000,000 networks of layer_sizes "
                                      "(400, 25, 10) (10,285 weights each): needs about 1.5 TiB")


def test_fit_many_counts_its_histories_and_the_sweeps_check_before_making_weights(
        monkeypatch) -> None:
    from jaxnn.parallel import fit_many
    from jaxnn.sweep import validation_curve

    X, y = np.random.default_rng(0).random((60, 4)), np.arange(60) % 3
    with pytest.raises(ValueError) as info:  # (2, 10**11) float64 costs: 1.5 TiB
        fit_many(init_many(0, 2, (4, 3, 3)), X, y, maxiter=10**11)
    assert str(info.value).startswith("fit_many: 2 networks 4-3-3 on 60 examples: needs about "
                                      "1.5 TiB")
    made = []
    monkeypatch.setattr("jaxnn.sweep.init_params", lambda *a, **k: made.append(a))
    with pytest.raises(ValueError, match=r"fit_many: 100000000 networks 4-3-3 on 48 examples"):
        validation_curve(X, y, [1.0], hidden=(3,), seeds=10**8, maxiter=2)
    assert made == []
