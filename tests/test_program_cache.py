"""The program cache (``jaxnn.saved_programs``): a training loop saved by one process is loaded by
the next without tracing or compiling anything, and gives the same iterates to the last bit;
a program is found again only under its own key; a damaged file or an unwritable directory costs
a compilation, never a wrong result or a failed fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import saved_programs as pc
from jaxnn.compiling import LOOPS, jit_with_options
from jaxnn.files.atomic import TMP_SUFFIX

METHODS = ("L-BFGS-B", "lbfgs", "fmincg")

# one process: each method's fit on a small problem, with the compilations and tracings it made
SCRIPT = """
import json, sys
import numpy as np
import jax, jax.monitoring
import jaxnn
if len(sys.argv) > 2:  # JAX's persistent compilation cache too, as the jaxnn command has it
    jax.config.update("jax_compilation_cache_dir", sys.argv[2])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
events = []
jax.monitoring.register_event_duration_secs_listener(lambda name, d, **kw: events.append(name))
rng = np.random.default_rng(0)
X, y = rng.normal(size=(60, 8)), np.arange(60) % 3
# jax.Arrays: on CPU their value checks run in numpy, without compiling a reduction
X, y, p0 = jax.numpy.asarray(X), jax.numpy.asarray(y), jaxnn.init_params(1, (8, 5, 3))
out = {}
with jaxnn.program_cache(sys.argv[1]):
    for method in METHODS:
        del events[:]
        r = jaxnn.fit(p0, X, y, lam=0.5, maxiter=30, method=method)
        out[method] = dict(cost=r.cost.hex(), n_evals=r.n_evals, theta=[
            float(v).hex() for v in np.concatenate([np.ravel(t) for t in r.params])],
            compiled=events.count("/jax/core/compile/backend_compile_duration"),
            traced=events.count("/jax/core/compile/jaxpr_trace_duration"))
print(json.dumps(out))
""".replace("METHODS", repr(METHODS))


def _run(directory, xla_cache=None) -> dict:
    extra = [] if xla_cache is None else [str(xla_cache)]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(directory), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def fresh_memory(monkeypatch):
    """This process forgets the programs it loaded, as a new process would."""
    monkeypatch.setattr(pc, "_programs", type(pc._programs)())


def _problem(n_in=6, hidden=4, m=40, K=3):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(m, n_in)), np.arange(m) % K
    return tuple(np.asarray(t) for t in jaxnn.init_params(2, (n_in, hidden, K))), X, y


def test_a_fresh_process_loads_each_loop_and_compiles_nothing(tmp_path):
    first, second = _run(tmp_path), _run(tmp_path)
    assert len(list(tmp_path.glob("*.jaxnn-program"))) == len(METHODS)
    for method in METHODS:
        assert first[method]["compiled"] >= 1 and first[method]["traced"] >= 1, method
        assert second[method]["compiled"] == 0 and second[method]["traced"] == 0, method
        for field in ("cost", "n_evals", "theta"):  # the same iterates, bit for bit
            assert second[method][field] == first[method][field], (method, field)
    # and the same as without any cache, in this process
    p0 = jaxnn.init_params(1, (8, 5, 3))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 8)), np.arange(60) % 3
    plain = jaxnn.fit(p0, X, y, lam=0.5, maxiter=30)
    assert plain.cost.hex() == first["L-BFGS-B"]["cost"]


def test_a_program_jaxs_persistent_cache_supplied_is_not_saved(tmp_path):
    # serialized again, such an executable lacks its compiled functions: saved, it loaded in
    # the next process and failed when run ("Function ... not found"), in every later run
    programs, xla = tmp_path / "programs", tmp_path / "xla"
    first = _run(programs, xla)  # compiled: saved, and in JAX's cache
    saved = sorted(programs.glob("*.jaxnn-program"))
    assert len(saved) == len(METHODS) and any(xla.iterdir())
    for path in saved:  # as after an edit of jaxnn that leaves the programs as they were
        path.unlink()
    second = _run(programs, xla)  # JAX's cache supplies them: not saved
    assert not list(programs.glob("*.jaxnn-program"))
    third = _run(programs, xla)  # and every later process still runs them
    for method in METHODS:
        assert second[method]["traced"] >= 1 and third[method]["traced"] >= 1, method
        for field in ("cost", "n_evals", "theta"):
            assert second[method][field] == third[method][field] == first[method][field], (
                method, field)


def test_a_program_is_found_again_only_under_its_own_key(tmp_path, fresh_memory):
    p0, X, y = _problem()
    with jaxnn.program_cache(tmp_path):
        jaxnn.fit(p0, X, y, lam=1.0, maxiter=10)
        assert len(list(tmp_path.iterdir())) == 1
        jaxnn.fit(p0, X, y, lam=3.0, maxiter=20)  # lam and maxiter are the program's data
        jaxnn.fit(p0, X * 2, y, lam=1.0, maxiter=10)
        assert len(list(tmp_path.iterdir())) == 1
        p1, X1, y1 = _problem(hidden=5)  # another shape
        jaxnn.fit(p1, X1, y1, lam=1.0, maxiter=10)
        assert len(list(tmp_path.iterdir())) == 2
        jaxnn.fit(p0, X, y, lam=1.0, maxiter=10, dtype="float64")  # another dtype
        assert len(list(tmp_path.iterdir())) == 3
        jaxnn.fit(p0, X, y, lam=1.0, maxiter=10, grad="autodiff")  # another static argument
        assert len(list(tmp_path.iterdir())) == 4
        jaxnn.fit(p0, X, y, lam=1.0, maxiter=10, options={"maxcor": 5})  # another memory
        assert len(list(tmp_path.iterdir())) == 5


def test_a_damaged_or_foreign_file_is_compiled_again_and_replaced(tmp_path, monkeypatch):
    loads = []  # per lookup on disk: whether a program came back

    def spy(path, key, load=pc._load):
        program = load(path, key)
        loads.append(program is not None)
        return program

    monkeypatch.setattr(pc, "_load", spy)
    p0, X, y = _problem(hidden=7)
    with jaxnn.program_cache(tmp_path):
        monkeypatch.setattr(pc, "_programs", type(pc._programs)())
        expected = jaxnn.fit(p0, X, y, maxiter=15)
        (path,) = tmp_path.iterdir()
        good = path.read_bytes()
        foreign = good.replace(b"jax ", b"jax?", 1)  # saved under another key, same name
        assert foreign != good
        for damaged in (good[: len(good) // 2], b"not a program", b"", foreign):
            path.write_bytes(damaged)
            monkeypatch.setattr(pc, "_programs", type(pc._programs)())
            r = jaxnn.fit(p0, X, y, maxiter=15)
            assert loads[-1] is False  # not loaded: compiled
            assert r.cost == expected.cost and r.n_evals == expected.n_evals
            assert path.read_bytes() == good  # and replaced by the whole program
        monkeypatch.setattr(pc, "_programs", type(pc._programs)())
        assert jaxnn.fit(p0, X, y, maxiter=15).cost == expected.cost
        assert loads == [False, False, False, False, False, True]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(TMP_SUFFIX)]  # no leftovers


def test_an_unwritable_directory_warns_once_and_trains(tmp_path, fresh_memory):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    p0, X, y = _problem(hidden=6)
    expected = jaxnn.fit(p0, X, y, maxiter=10)
    with jaxnn.program_cache(blocker / "programs"), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = jaxnn.fit(p0, X, y, maxiter=10)
        jaxnn.fit(p0, X, y, maxiter=10, dtype="float64")
    assert r.cost == expected.cost
    caught = [x for x in w if "program cache" in str(x.message)]
    assert len(caught) == 1 and str(blocker / "programs") in str(caught[0].message), caught
    assert "compiled in each process" in str(caught[0].message)
    assert caught[0].filename == __file__  # the user's call of fit, not jaxnn's inside
    # a file given as the directory itself is refused at once (a path under it, as above,
    # is found unwritable only when the first program is saved)
    with pytest.raises(ValueError, match="is a file, not a directory"), \
            jaxnn.program_cache(blocker):
        pass


def test_calls_that_cannot_be_keyed_compile_as_jit_does(tmp_path, fresh_memory):
    x = np.arange(4.0, dtype=np.float32)
    key = pc._key(jaxnn.losses.penalty, {}, {"n": 3}, (x,), {})  # a jaxnn function, plain
    assert isinstance(key, str) and "float32[4]" in key
    assert pc._key(jaxnn.losses.penalty, {}, {"f": lambda: 1.0}, (x,), {}) is None  # closure
    assert pc._key(lambda v: v, {}, {}, (x,), {}) is None  # not jaxnn's code
    seen = []
    jax.jit(lambda v: seen.append(pc._key(jaxnn.losses.penalty, {}, {}, (v,), {})) or v)(x)
    assert seen == [None]  # traced
    # through jit_with_options: nothing is kept, and the results are jit's
    g = jit_with_options(lambda v, n: v * n, LOOPS, static_argnames=("n",))
    traced = jit_with_options(lambda v, n: v * n, {}, static_argnames=("n",))
    with jaxnn.program_cache(tmp_path):
        np.testing.assert_array_equal(g(x, n=5), x * 5)
        np.testing.assert_array_equal(jax.jit(lambda v: traced(v, n=2))(x), x * 2)
        with jax.disable_jit():
            jaxnn.fit(*_problem(hidden=2), maxiter=3)
        assert not list(tmp_path.iterdir())


def test_every_setting_of_jax_but_cache_and_logging_is_in_the_key():
    x = np.arange(4.0, dtype=np.float32)
    base = pc._key(jaxnn.losses.penalty, {}, {}, (x,), {})
    with jax.numpy_rank_promotion("raise"):  # scoped settings are read as the call sees them
        assert pc._key(jaxnn.losses.penalty, {}, {}, (x,), {}) != base
    previous = pc._read("jax_disable_most_optimizations")
    try:  # a compiler setting: a program saved without it is not loaded with it
        jax.config.update("jax_disable_most_optimizations", not previous)
        assert pc._key(jaxnn.losses.penalty, {}, {}, (x,), {}) != base
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    previous = pc._read("jax_log_compiles")
    try:
        jax.config.update("jax_log_compiles", not previous)
        assert pc._key(jaxnn.losses.penalty, {}, {}, (x,), {}) == base
    finally:
        jax.config.update("jax_log_compiles", previous)


def test_static_arguments_are_kept_only_as_text_another_process_reads_alike():
    spec = jaxnn.NetSpec((4, 3, 2))
    assert pc._static_text(spec) == pc._static_text(jaxnn.NetSpec((4, 3, 2)))
    assert pc._static_text(spec) != pc._static_text(jaxnn.NetSpec((4, 3, 2), grad="autodiff"))
    method = pc._static_text(spec.value_and_grad)
    assert method.startswith("jaxnn.spec.NetSpec.value_and_grad of ") and "0x" not in method
    assert pc._static_text((1, 2.5, "a", None, True)) == (
        "tuple(int:1, float:2.5, str:'a', NoneType:None, bool:True)")
    assert pc._static_text(1) != pc._static_text(1.0) != pc._static_text(True)
    assert pc._static_text(jaxnn.fit) == "jaxnn.train.trainer.fit"
    for unkeyable in (lambda: 1, (1, lambda: 1), optax.adam(0.1), np.sum, object()):
        assert pc._static_text(unkeyable) is None, unkeyable


def test_the_directory_is_set_for_a_block_or_for_every_thread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pc._directory() is None
    with jaxnn.program_cache("a") as d:
        assert d == tmp_path / "a"  # made absolute: a later chdir does not move it
        with jaxnn.program_cache(None) as inner:
            assert inner is None and pc._directory() is None
        assert pc._directory() == tmp_path / "a"
    assert pc._directory() is None
    try:
        assert jaxnn.set_program_cache(tmp_path / "b") is None
        assert jaxnn.set_program_cache("~/x") == tmp_path / "b"
        assert pc._directory() == Path.home() / "x"
        with jaxnn.program_cache(tmp_path / "c"):  # a block overrides it
            assert pc._directory() == tmp_path / "c"
        jaxnn.set_program_cache(tmp_path / "d")
        with ThreadPoolExecutor(1) as pool:  # other threads see it too
            assert pool.submit(pc._directory).result() == tmp_path / "d"
            p0, X, y = _problem(hidden=3)
            pool.submit(jaxnn.fit, p0, X, y, maxiter=5).result()
        assert [p.suffix for p in (tmp_path / "d").iterdir()] == [".jaxnn-program"]
    finally:
        jaxnn.set_program_cache(None)
    for bad in (123, b"programs", "", ["a"]):
        with pytest.raises(ValueError, match=r"directory must be a path \(a non-empty str or "
                                            r"os.PathLike\) or None, got "):
            jaxnn.set_program_cache(bad)
        with pytest.raises(ValueError, match="directory must be a path"), \
                jaxnn.program_cache(bad):
            pass
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for bad, said in (("/tmp/a\0b", "contains a NUL byte"),
                      ("~no-such-user-jaxnn/x", "pass a path without ~user"),
                      (a_file, "is a file, not a directory")):
        with pytest.raises(ValueError, match=said):
            jaxnn.set_program_cache(bad)
    assert pc._directory() is None

MESH_SCRIPT = """
import json, sys, numpy as np, jax, jaxnn
from jaxnn import saved_programs
loads = []
load = saved_programs._load
saved_programs._load = lambda *a: loads.append(load(*a) is not None) or load(*a)
rng = np.random.default_rng(0)
X, y = rng.normal(size=(64, 8)), np.arange(64) % 3
p0 = jaxnn.init_params(1, (8, 5, 3))
out = []
with jaxnn.program_cache(sys.argv[1]):
    out.append(jaxnn.fit(p0, X, y, maxiter=20, devices=4).cost.hex())
    out.append([float(c).hex() for c in jaxnn.fit_many(jaxnn.init_many(0, 3, (8, 5, 3)), X, y,
                                                        maxiter=20).cost])
    with jax.default_device(jax.devices()[1]):
        r = jaxnn.fit_many(jaxnn.init_many(0, 3, (8, 5, 3)), X, y, maxiter=20, lams=0.5)
        out.append([float(c).hex() for c in r.cost])
print(json.dumps([out, loads]))
"""


def test_with_several_devices_only_single_device_programs_are_kept(tmp_path):
    """A data-parallel loop is compiled in each process; ``fit_many``'s, on one device of the
    four (the first, then the second), is loaded onto the device it was compiled for."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    runs = [subprocess.run([sys.executable, "-c", MESH_SCRIPT, str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    (out1, loads1), (out2, loads2) = (json.loads(p.stdout) for p in runs)
    assert out1 == out2
    assert loads1 == [False, False] and loads2 == [True, True]  # the two fit_many programs
    assert len(list(tmp_path.iterdir())) == 2


def test_programs_are_written_by_the_projects_atomic_write_and_dead_writers_temps_go(
        tmp_path, monkeypatch):
    """The cache writes through :func:`jaxnn.files.atomic.atomic_write` (fsynced, its
    temporary named for its writer), so the temporary a writer killed mid-write left is
    removed by the next writer of that program; a live writer's is left alone."""
    import socket

    from jaxnn.files import atomic

    writes = []

    def spy(path, write, real=atomic.atomic_write):
        writes.append(Path(path))
        real(path, write)

    monkeypatch.setattr(pc, "atomic_write", spy)
    p0, X, y = _problem(hidden=9)
    with jaxnn.program_cache(tmp_path):
        monkeypatch.setattr(pc, "_programs", type(pc._programs)())
        expected = jaxnn.fit(p0, X, y, maxiter=12)
        (path,) = tmp_path.iterdir()
        assert writes == [path]
        good = path.read_bytes()
        host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dead_tmp = tmp_path / f".{path.name}.{dead}@{host}.abc.tmp"
        live_tmp = tmp_path / f".{path.name}.{os.getpid()}@{host}.def.tmp"
        dead_tmp.write_bytes(good[:100])  # a writer killed mid-write
        live_tmp.write_bytes(good[:50])  # one still writing
        path.write_bytes(b"damaged")
        monkeypatch.setattr(pc, "_programs", type(pc._programs)())
        r = jaxnn.fit(p0, X, y, maxiter=12)
    assert r.cost == expected.cost and writes == [path, path]
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live_tmp.name])
