"""How much memory a problem needs, how much the machine has, and the check that refuses an
allocation that cannot fit.

Entry points and file readers call :func:`check_memory` before making arrays whose size comes
from arguments or file headers, so a size too large for the machine is a clear ``ValueError``
naming what needed the memory, instead of XLA aborting the interpreter or the kernel killing
it. :func:`problem_bytes` estimates what a cost, backprop or fit computation needs;
:func:`available_memory` reads the host's or a device's free memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import numpy as np

from jaxnn.checks import check_sizes

#: a request of at most this many bytes is taken to fit without asking the system, which keeps
#: :func:`check_memory` pure arithmetic on small problems
MEMORY_FLOOR = 64 * 2**20
#: environment variable: a cap, in bytes, on the memory :func:`available_memory` reports
MEMORY_LIMIT_ENV = "JAXNN_MEMORY_LIMIT"


def param_count(layer_sizes: Sequence[int]) -> int:
    """Number of weights of a network: ``sum_l n_{l+1} (1 + n_l)`` (a Python int, exact)."""
    sizes = check_sizes(layer_sizes)
    return sum(o * (1 + i) for i, o in zip(sizes[:-1], sizes[1:], strict=True))


#: what to do when a training problem cannot fit (the one evaluation's check, or the loop's)
SMALLER_TRAINING = ("use fewer examples, smaller layers, or a mini-batch method "
                    "(method='adam' with batch_size)")

#: arrays of each layer's ``(m, n_l)`` size that the compiled training loops hold at once
#: (``fit``'s L-BFGS-B, ``lbfgs``, ``fmincg`` and ``fit_many``: their elementwise kernels keep
#: each intermediate). Measured: 6.8-7.6 for a 400-h-10 network, m = 5000, h = 10,000 and 40,000,
#: float32; ``backprop`` alone holds 2 (``problem_bytes``'s default).
LOOP_ACTIVATION_COPIES = 8
#: weight-sized vectors that a compiled training loop holds at once, the weights included, per
#: method: the search's vectors, the L-BFGS memory of 10 pairs (and, where it is shifted, its
#: new copy at each pass), the segment's input and output states. Measured (peak memory over
#: the weights', networks 4-h-3 on 2 examples, float32, h = 500,000 and 1,000,000): ``fit``
#: L-BFGS-B 53-59 (its memory a ring written in place outside the loop's ``lax.cond``: 92-94
#: when it was shifted, 75 when the ring was written inside the ``cond``, which copied it in
#: and out), lbfgs 73, fmincg 9.3; ``fit_many`` (per network) lbfgs 62, fmincg 14, adam 11.
#: Rounded up.
FIT_PARAM_COPIES = {"L-BFGS-B": 60, "lbfgs": 76, "fmincg": 12}
MANY_PARAM_COPIES = {"lbfgs": 64, "fmincg": 16, "adam": 12, "sgd": 12}


def problem_bytes(layer_sizes: Sequence[int], m: int, dtype: object = None, *,
                  grads: bool = True, optimizer_copies: int = 2, networks: int = 1,
                  activation_copies: int = 2) -> int:
    """Estimated bytes of memory that a cost / backprop / fit computation needs at least.

    Pure arithmetic on Python ints (no overflow, no array is made), cheap enough for every
    call. It counts, in the itemsize of ``dtype`` (None: JAX's default float):

    * the parameters ``P = param_count(layer_sizes)``, plus as many again for the gradient
      (``grads``) and ``optimizer_copies`` more (search direction, previous gradient, ...;
      pass ``2 * history`` for an L-BFGS that keeps ``history`` pairs of vectors);
    * the examples ``X`` ``(m, n_0)`` once, and per network the activations of every layer
      ``(m, n_l)``, plus (``grads``) one backward delta per layer ``(m, n_l)`` and the targets
      ``(m, K)``: ``activation_copies`` arrays per layer in all with ``grads`` (one without);
      pass :data:`LOOP_ACTIVATION_COPIES` for the compiled training loops;
    * all of it but ``X`` times ``networks`` (the members of ``fit_many``, which share ``X``).

    It is a floor, not a bound: XLA's temporaries and the optimizer's host copies come on top,
    so a problem refused by ``check_memory(problem_bytes(...))`` cannot run, while one that
    passes may still be tight. Example: ``(400, 25, 10)``, ``m = 5000``, float32: about 9.3 MiB.
    """
    sizes = check_sizes(layer_sizes)
    m = int(m)
    if m < 0:
        raise ValueError(f"m must be a count of examples >= 0, got {m}")
    item = _itemsize(dtype)
    copies = 1 + int(bool(grads)) + max(0, int(optimizer_copies))
    layers = max(1, int(activation_copies)) if grads else 1
    per_network = copies * param_count(sizes) + layers * m * sum(sizes[1:])
    if grads:
        per_network += m * sizes[-1]
    return item * (m * sizes[0] + max(1, int(networks)) * per_network)


def loop_bytes(layer_sizes: Sequence[int], m: int, dtype: object = None, *, networks: int = 1,
               maxiter: int = 0, param_copies: int) -> int:
    """:func:`problem_bytes` for the compiled training loops (``fit``'s L-BFGS-B, ``lbfgs``,
    ``fmincg``, ``fit_many``): :data:`LOOP_ACTIVATION_COPIES` arrays per layer,
    ``param_copies`` weight-sized vectors per network (the method's entry of
    :data:`FIT_PARAM_COPIES` or :data:`MANY_PARAM_COPIES`), and each network's cost history of
    ``maxiter`` values (at most float64)."""
    return problem_bytes(layer_sizes, m, dtype, optimizer_copies=max(0, param_copies - 2),
                         networks=networks, activation_copies=LOOP_ACTIVATION_COPIES
                         ) + networks * maxiter * 8


def _itemsize(dtype: object) -> int:
    if dtype is None:
        return np.dtype(jax.dtypes.canonicalize_dtype(float)).itemsize
    return np.dtype(dtype).itemsize


def format_bytes(n: int | float) -> str:
    """``1536`` -> ``"1.5 KiB"``: a byte count for messages, in binary units (an int past
    the largest float, from absurd sizes: ``"more than 1e308 B"``)."""
    try:
        n = float(n)
    except OverflowError:
        return "more than 1e308 B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory(device: object = None) -> tuple[int | None, str]:
    """``(bytes, where)``: how much memory a new allocation can use now, and which memory.

    ``device`` None is JAX's default device, or a ``jax.Device``, or ``"host"``. An
    accelerator reports ``bytes_limit - bytes_in_use`` of its ``memory_stats()``; the host
    (and CPU devices) the least of Linux's ``MemAvailable`` (``/proc/meminfo``), the
    container's cgroup limit minus its usage, and ``os.sysconf`` physical memory where those
    are missing. ``$JAXNN_MEMORY_LIMIT`` (bytes) caps the answer. ``bytes`` is None when
    nothing can be found out (then no limit is enforced)."""
    cap = _env_limit()
    dev = _device(device)
    found: list[int] = []
    where = "host memory"
    if dev is not None and getattr(dev, "platform", "cpu") != "cpu":
        where = f"memory of {dev}"
        try:
            stats = dev.memory_stats() or {}
        except Exception:  # some backends do not implement it
            stats = {}
        if "bytes_limit" in stats:
            found.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    else:
        found.extend(v for v in (_meminfo_available(), _cgroup_available()) if v is not None)
        if not found:
            found.extend(v for v in (_physical_memory(),) if v is not None)
    if cap is not None and (not found or cap < min(found)):
        return cap, f"{where}, capped by ${MEMORY_LIMIT_ENV}"
    return (max(0, min(found)) if found else None), where


def check_memory(n_bytes: int, what: str, *, hint: str = "", device: object = None) -> int:
    """Refuse, with a ``ValueError``, an allocation of ``n_bytes`` that cannot fit in memory.

    Call it before making arrays whose size comes from arguments or file headers, so that a
    size too large for the machine is a clear error instead of XLA aborting the interpreter
    (or the kernel killing it). ``what`` names what needs the memory and the argument that
    sets it (e.g. ``"init_params: layer_sizes (400, 100000000, 10), 40,100,000,010
    parameters"``); ``hint`` says what to reduce. ``device`` as in :func:`available_memory`.

    Requests up to ``MEMORY_FLOOR`` bytes pass without asking the system (pure arithmetic);
    larger ones read ``/proc/meminfo`` (or the device's statistics) once. Returns
    ``n_bytes``."""
    n_bytes = int(n_bytes)
    if n_bytes <= MEMORY_FLOOR and os.environ.get(MEMORY_LIMIT_ENV) is None:
        return n_bytes
    available, where = available_memory(device)
    if available is not None and n_bytes > available:
        tail = f"; {hint}" if hint else ""
        raise ValueError(f"{what}: needs about {format_bytes(n_bytes)} of memory but only "
                         f"{format_bytes(available)} is available ({where}){tail}")
    return n_bytes


def _env_limit() -> int | None:
    raw = os.environ.get(MEMORY_LIMIT_ENV)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):  # 0 or less would refuse every allocation
        raise ValueError(f"${MEMORY_LIMIT_ENV} must be a positive number of bytes (such as "
                         f"8e9), got {raw!r}; unset it for no cap")
    return int(value)


def _device(device: object) -> object:
    if isinstance(device, str) and device == "host":
        return None
    if device is not None:
        return device
    default = jax.config.jax_default_device
    if default is None or isinstance(default, str):
        try:
            return jax.devices(default)[0] if default else jax.devices()[0]
        except RuntimeError:
            return None
    return default


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit) as f:
                raw = f.read().strip()
            if raw == "max":
                continue
            with open(usage) as f:
                used = int(f.read().strip())
            cap = int(raw)
        except (OSError, ValueError):
            continue
        if cap < 2**60:  # cgroup v1 reports "no limit" as a huge number
            return cap - used
    return None


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None
