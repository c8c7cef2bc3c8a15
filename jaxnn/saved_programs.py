"""Compiled training loops kept on disk, so that a fresh process need not trace, lower and
compile them again.

The first call of a compiled loop in a process costs its tracing, its lowering to MLIR and XLA's
compilation: about 0.7 s of the default ``fit``'s 1.5 s on 2 cores (``benchmarks/RESULTS.md``).
JAX's own persistent compilation cache saves only the last of the three, and only when turned on
in JAX's global configuration, which the library never changes. Within :func:`program_cache`
(in this thread or task) or after :func:`set_program_cache` (in every thread), the loops that
``fit`` compiles are instead saved as XLA executables (``jax.experimental.serialize_executable``)
in a directory, and a later process with the same program loads one in about 0.1 s and runs it
without tracing anything.

A saved program is found again only under the same key: the function, its static arguments,
the shapes, dtypes and placements of its arguments, the compiler options, jaxnn's version and
source files (their contents), the versions of jax and jaxlib, every JAX setting (as the call
sees it, scoped ones included) but the persistent cache's and logging's, ``XLA_FLAGS``, the
backend and its devices, and on CPU the processor (its model and instruction-set flags), since
an executable compiled for one CPU may not run on another. Anything else compiles as usual:
calls with traced arguments, static arguments that are not plain values, ``jax.disable_jit``,
programs over several devices (data-parallel ``fit``: a loaded program would not place its
unsharded arguments on the mesh as ``jit`` does), and every program where the processor
cannot be identified (neither ``/proc/cpuinfo`` nor, on macOS, ``sysctl``) or jaxnn's source
files cannot be read.

A program that JAX's own persistent cache supplied (when the caller turned that cache on) is
not saved: serialized again, such an executable lacks its compiled functions and fails when
run. A file that does not load is compiled again and replaced; files are written atomically, so
processes sharing the directory never see half a file. Loading an executable runs code from the
file: use a directory only you can write, as for JAX's own cache. Nothing is ever deleted
(each edit of jaxnn's sources makes new keys): remove the directory to reclaim its space (a
program is about 0.5 MB).

The ``jaxnn`` command keeps its programs in ``$XDG_CACHE_HOME/jaxnn/programs`` (else
``~/.cache/jaxnn/programs``) unless given ``--no-compile-cache``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import functools
import hashlib
import inspect
import os
import pickle
import platform
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.monitoring
import jaxlib
from jax.experimental import serialize_executable

from jaxnn.checks import is_traced
from jaxnn.files.atomic import atomic_write, remove_stale_temps
from jaxnn.user_warnings import warn

# --- the directory in use ---------------------------------------------------------------------


_UNSET = object()
#: the directory of a :func:`program_cache` block (``_UNSET`` outside any block)
_block: contextvars.ContextVar = contextvars.ContextVar("jaxnn_program_cache", default=_UNSET)
#: the directory set by :func:`set_program_cache`, for every thread (None: none)
_default: Path | None = None
#: programs loaded or compiled in this process, by directory and key (the most recent ones)
_programs: OrderedDict[tuple[Path, str], jax.stages.Compiled] = OrderedDict()
_PROGRAMS_KEPT = 64
_lock = threading.Lock()  # guards _programs
#: JAX settings that do not change a program: the persistent cache's and logging's
_NOT_SETTINGS = ("compilation_cache", "persistent_cache", "log_compiles", "logging_level",
                 "explain_cache_misses")
_SUFFIX = ".jaxnn-program"
#: directories a write failed in (warned about once each)
_unwritable: set[Path] = set()


def _path(directory: str | os.PathLike | None) -> Path | None:
    """The directory, checked, ``~`` expanded and made absolute (a later ``chdir`` does not
    move it)."""
    if directory is None:
        return None
    if not isinstance(directory, str | os.PathLike) or not isinstance(
            os.fspath(directory), str) or not os.fspath(directory):
        raise ValueError(f"directory must be a path (a non-empty str or os.PathLike) or None, "
                        f"got {directory!r}")
    if "\0" in os.fspath(directory):
        raise ValueError(f"directory {directory!r} contains a NUL byte; pass a real path")
    try:
        path = Path(directory).expanduser().absolute()
    except RuntimeError as e:  # ~user for a user that does not exist
        raise ValueError(f"directory {directory!r}: {e}; pass a path without ~user") from None
    if path.exists() and not path.is_dir():
        raise ValueError(f"directory {os.fspath(directory)!r} is a file, not a directory; "
                         "pass a directory (made when the first program is saved)")
    return path


def _directory() -> Path | None:
    """The directory in use here: the innermost block's, else :func:`set_program_cache`'s."""
    block = _block.get()
    return _default if block is _UNSET else block


def set_program_cache(directory: str | os.PathLike | None) -> Path | None:
    """Keep the compiled training loops in ``directory`` from now on, in every thread (None:
    stop), except inside a :func:`program_cache` block; returns the directory set before. The
    directory is made when the first program is saved."""
    global _default
    previous, _default = _default, _path(directory)
    return previous


@contextlib.contextmanager
def program_cache(directory: str | os.PathLike | None) -> Iterator[Path | None]:
    """Within the block (this thread or task), keep the compiled training loops in
    ``directory`` (None: compile them in each process, as ``jax.jit`` does). Yields the
    directory, made absolute::

        with jaxnn.program_cache("~/.cache/my-project/programs"):
            result = jaxnn.fit(params, X, y)   # the loop is loaded if a process saved it
    """
    token = _block.set(_path(directory))
    try:
        yield _block.get()
    finally:
        _block.reset(token)


# --- the call ---------------------------------------------------------------------------------


def cached_call(jitted: Callable, fun: Callable, options: dict, static_argnames: tuple,
                args: tuple, kw: dict) -> object:
    """``jitted(*args, **kw)``, through the program cache when one is in use and the call can
    be keyed. ``jitted`` is ``jax.jit(fun, static_argnames=..., compiler_options=options)``."""
    directory = _directory()
    if directory is None or jax.config.jax_disable_jit:
        return jitted(*args, **kw)
    positions = dict(_static_positions(fun, static_argnames))  # position -> name
    statics = {k: v for k, v in kw.items() if k in static_argnames}
    statics.update((name, args[i]) for i, name in positions.items() if i < len(args))
    dynamic_args = tuple(a for i, a in enumerate(args) if i not in positions)
    dynamic_kw = {k: v for k, v in kw.items() if k not in statics}
    key = _key(fun, options, statics, dynamic_args, dynamic_kw)
    if key is None:
        return jitted(*args, **kw)
    with _lock:
        program = _programs.get((directory, key))
    if program is None:
        path = directory / (hashlib.sha256(key.encode()).hexdigest() + _SUFFIX)
        program = _load(path, key)
        if program is None:
            program, served = _compile(jitted, args, kw)
            if not served:  # see _compile
                _save(path, key, program)
    with _lock:
        _programs[directory, key] = program
        _programs.move_to_end((directory, key))
        while len(_programs) > _PROGRAMS_KEPT:
            _programs.popitem(last=False)
    return program(*dynamic_args, **dynamic_kw)  # a compiled program takes no static args


#: the event JAX records when its persistent compilation cache serves a compilation
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def _compile(jitted: Callable, args: tuple, kw: dict) -> tuple[jax.stages.Compiled, bool]:
    """``(jitted.lower(*args, **kw).compile(), served)``: ``served`` when JAX's persistent
    compilation cache (turned on by the caller, e.g. the ``jaxnn`` command) supplied the
    executable. Such an executable is not saved: serialized again it lacks its compiled
    functions, and the file loads but fails when run ("Function ... not found", jaxlib 0.10.2).
    The next process then compiles (from that cache) instead of loading a broken program."""
    me, hits = threading.get_ident(), []

    def listen(event: str, **_: object) -> None:  # any thread's events come here: keep ours
        if event == CACHE_HIT_EVENT and threading.get_ident() == me:
            hits.append(event)

    jax.monitoring.register_event_listener(listen)
    try:
        program = jitted.lower(*args, **kw).compile()
    finally:
        jax.monitoring.unregister_event_listener(listen)
    return program, bool(hits)


def _device(program: jax.stages.Compiled) -> jax.Device | None:
    """The one device ``program`` runs on, or None when it runs on several: a loaded program
    over several would not place its unsharded arguments on the mesh as ``jit`` does, so those
    are not saved."""
    shardings = jax.tree_util.tree_leaves((program.input_shardings, program.output_shardings))
    devices = set().union(*(s.device_set for s in shardings))
    return devices.pop() if len(devices) == 1 else None


@functools.lru_cache(maxsize=64)
def _static_positions(fun: Callable, names: tuple) -> tuple[tuple[int, str], ...]:
    """``(position, name)`` of each static argument that can also be passed by position."""
    params = list(inspect.signature(fun).parameters.values())
    return tuple((i, p.name) for i, p in enumerate(params) if p.name in names and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


# --- the key ----------------------------------------------------------------------------------


def _key(fun: Callable, options: dict, statics: dict, args: tuple, kw: dict) -> str | None:
    """Everything that decides the compiled program, as text; None when a part cannot be
    written down the same way in another process (a traced argument, a closure)."""
    name = _static_text(fun)
    if name is None:  # not a module-level function of jaxnn
        return None
    parts = [name, repr(sorted(options.items()))]
    for name in sorted(statics):
        text = _static_text(statics[name])
        if text is None:
            return None
        parts.append(f"{name}={text}")
    leaves, tree = jax.tree_util.tree_flatten((args, kw))
    parts.append(repr(tree))
    devices: set = set()
    for leaf in leaves:
        if is_traced(leaf):
            return None
        if isinstance(leaf, jax.Array):
            devices |= leaf.devices()
            parts.append(f"{jax.typeof(leaf)} {leaf.sharding!r} {leaf.committed}")
        else:
            parts.append(str(jax.typeof(leaf)))
    if len(devices) > 1:  # a loaded program would not place its arguments on the mesh itself
        return None
    environment = _environment(frozenset(devices) or frozenset(jax.devices()[:1]))
    if environment is None:
        return None
    parts.append(environment)
    parts.append(_settings())
    return "\n".join(parts)


def _settings() -> str:
    """JAX's settings as this call sees them (a scoped ``jax.enable_x64`` included): all of
    them but the persistent cache's and logging's, since many change the program."""
    return " ".join(f"{name}={_read(name)!r}" for name in sorted(jax.config.values)
                    if not any(part in name for part in _NOT_SETTINGS))


def _read(name: str) -> object:
    """A JAX setting's value here: one with a context manager is read as an attribute (its
    scoped value), the others with ``jax.config.read``."""
    try:
        return getattr(jax.config, name)
    except AttributeError:
        return jax.config.read(name)


def _static_text(value: object) -> str | None:
    """A static argument as text that is the same in every process, or None (a closure, an
    object whose text holds its address)."""
    if value is None or isinstance(value, bool | int | float | str | enum.Enum):
        return f"{type(value).__qualname__}:{value!r}"
    if isinstance(value, tuple | list | frozenset):
        items = [_static_text(v) for v in (sorted(value, key=repr)
                                           if isinstance(value, frozenset) else value)]
        return None if None in items else f"{type(value).__qualname__}({', '.join(items)})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _static_text(getattr(value, f.name))
                  for f in dataclasses.fields(value)}
        if None in fields.values():
            return None
        return f"{_qualified(type(value))}{fields}"
    if hasattr(value, "__self__") and hasattr(value, "__func__"):  # a bound method
        owner = _static_text(value.__self__)
        return None if owner is None else f"{_qualified(value.__func__)} of {owner}"
    if callable(value) and getattr(value, "__closure__", None) is None \
            and getattr(value, "__module__", "").split(".")[0] == "jaxnn" \
            and "<locals>" not in getattr(value, "__qualname__", "<locals>"):
        return _qualified(value)  # a module-level function of jaxnn (its code is in the key)
    return None


def _qualified(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


@functools.lru_cache(maxsize=16)
def _environment(devices: frozenset) -> str | None:
    """The versions, backend, devices and (on CPU) processor a program is compiled for; None
    where the processor or jaxnn's sources cannot be told apart from others."""
    client = next(iter(devices)).client
    kinds = sorted(f"{d.platform}:{d.id}:{d.device_kind}" for d in devices)
    cpu = _processor() if client.platform == "cpu" else ""
    if cpu is None or _sources() is None:
        return None
    return (f"jax {jax.__version__} jaxlib {jaxlib.__version__} {client.platform} "
            f"{client.platform_version} {kinds} of {len(client.devices())} {cpu} "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r} sources {_sources()}")


@functools.cache
def _processor() -> str | None:
    """The CPU's model and instruction-set flags (``/proc/cpuinfo``; on macOS ``sysctl``'s
    brand string and feature flags), or None where neither says (nothing is then kept: an
    executable compiled for one CPU may use instructions another lacks)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        if sys.platform != "darwin":
            return None
        try:
            out = subprocess.run(["sysctl", "machdep.cpu.brand_string", "hw.optional"],
                                 capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return f"{platform.machine()} {out.stdout}"
    wanted = ("model name", "flags", "Features", "CPU part", "CPU implementer")
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in wanted:
            fields.setdefault(name.strip(), value.strip())
    return f"{platform.machine()} {sorted(fields.items())}"


@functools.cache
def _sources() -> str | None:
    """jaxnn's version and a digest of its source files (None where there are none to read:
    nothing is then kept), so that a program saved by other code is never loaded."""
    from jaxnn import __version__

    root = Path(__file__).parent
    files = sorted(root.rglob("*.py"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__} {digest.hexdigest()}"


# --- the files --------------------------------------------------------------------------------


def _load(path: Path, key: str) -> jax.stages.Compiled | None:
    """The program saved under ``key`` at ``path``, or None (absent, unreadable, another key,
    or from a jax that cannot load it: it is then compiled again and replaced)."""
    try:
        with open(path, "rb") as f:
            saved_key, device_id, serialized, in_tree, out_tree = pickle.load(f)
        if saved_key != key:
            return None
        (device,) = [d for d in jax.devices() if d.id == device_id]
        return serialize_executable.deserialize_and_load(serialized, in_tree, out_tree,
                                                         execution_devices=[device])
    except Exception:  # noqa: BLE001 - absent, truncated, foreign: compile again
        return None


def _save(path: Path, key: str, program: jax.stages.Compiled) -> None:
    """Write ``program`` to ``path`` with :func:`jaxnn.files.atomic.atomic_write`, with the
    device it runs on, first removing the temporaries that killed writers of ``path`` left. A
    program over several devices, or one this backend cannot serialize, is not saved; a
    directory that cannot be written gets one warning."""
    device = _device(program)
    if device is None:
        return
    try:
        data = pickle.dumps((key, device.id, *serialize_executable.serialize(program)),
                            protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a program this backend cannot serialize: not kept
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        atomic_write(path, lambda f: f.write(data))
    except (OSError, ValueError) as e:
        if path.parent not in _unwritable:
            _unwritable.add(path.parent)
            reason = ("it is not a directory" if path.parent.exists()
                      and not path.parent.is_dir() else e)
            warn(f"jaxnn's program cache cannot write to {path.parent} ({reason}); the "
                 "training loops are compiled in each process")
