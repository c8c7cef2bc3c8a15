"""Data parallelism: a ``Mesh`` over the example axis and arrays placed on it.

JAX's ``jit`` follows its inputs' shardings, so ``backprop(params, Xs, ys)`` with
``Xs, ys = shard_examples(X, y, 8)`` runs on 8 devices and returns the gradients one device
computes, to rounding; :func:`jaxnn.fit` takes ``devices=`` for the same placement. For several
processes (hosts), see ``docs/multihost.md`` and :func:`shard_local_examples`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from jaxnn.checks import check_devices
from jaxnn.train.problem import BATCH_AXIS

__all__ = ["data_mesh", "replicate", "shard_examples", "shard_local_examples"]

Array = jax.Array
Devices = int | Sequence[jax.Device] | Mesh


def data_mesh(devices: Devices | None = None, axis_name: str = BATCH_AXIS) -> Mesh:
    """A 1-D ``Mesh`` with axis ``axis_name`` over ``devices`` (the helpers here split arrays
    over the mesh's one axis, whatever its name).

    ``devices``: None (all of ``jax.devices()``, every process's in a multi-process run), a
    count ``N`` (the first ``N``), a list of ``jax.Device``, or a 1-D ``Mesh`` (returned as
    is). The rule is :func:`jaxnn.checks.check_devices`, which ``fit`` and ``fit_many`` use."""
    if devices is None:
        return Mesh(np.array(jax.devices()), (axis_name,))
    return check_devices(devices, axis_name)


def shard_examples(
    X: ArrayLike,
    y: ArrayLike | None = None,
    devices: Devices | None = None,
    *,
    drop_remainder: bool = False,
) -> tuple[Array, Array | None]:
    """Place ``X`` ``(m, n)`` and ``y`` (``(m,)`` labels or ``(m, K)`` targets) on the devices,
    split by rows over the mesh axis ``"batch"`` (``NamedSharding(mesh, P("batch"))``; a
    ``Mesh`` passed as ``devices`` keeps its own axis name).

    Every device holds ``m / N`` consecutive examples. ``m`` must be a multiple of the number
    of devices ``N`` (an uneven split would need padding, which changes the mean in the cost);
    with ``drop_remainder=True`` the last ``m mod N`` examples are dropped instead. Pass the
    results to :func:`jaxnn.cost`, :func:`jaxnn.backprop` or any jitted function: the
    computation runs on all ``N`` devices and reduces across them.

    Arrays keep their dtype (a float64 numpy ``X`` stays float64 only under x64)."""
    mesh = data_mesh(devices, BATCH_AXIS)
    X = X if isinstance(X, jax.Array) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, n), got shape {tuple(X.shape)}")
    m, N = X.shape[0], mesh.size
    if y is not None:
        y = y if isinstance(y, jax.Array) else np.asarray(y)
        if y.ndim not in (1, 2) or y.shape[0] != m:
            raise ValueError(f"y must have one row per row of X ({m}), got shape "
                             f"{tuple(y.shape)}")
    if m % N:
        if not drop_remainder:
            raise ValueError(
                f"X has {m} rows, which {N} devices cannot share evenly; pass "
                f"drop_remainder=True to drop the last {m % N}, or use a device count that "
                f"divides {m}")
        keep = m - m % N
        if keep == 0:
            raise ValueError(f"X has {m} rows: fewer than the {N} devices")
        X, y = X[:keep], (y[:keep] if y is not None else None)
    rows = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    Xs = jax.device_put(X, rows)
    ys = jax.device_put(y, rows) if y is not None else None
    return Xs, ys


def replicate(tree: Any, devices: Devices | None = None) -> Any:
    """Put every array of ``tree`` (e.g. params) on all devices of the mesh, whole
    (``NamedSharding(mesh, P())``)."""
    mesh = data_mesh(devices, BATCH_AXIS)
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_local_examples(
    X_local: ArrayLike,
    y_local: ArrayLike | None = None,
    devices: Devices | None = None,
) -> tuple[Array, Array | None]:
    """Multi-process form of :func:`shard_examples`: each process passes only *its own*
    examples and gets the global arrays (rows of process 0 first, then process 1, ...).

    Uses ``jax.make_array_from_process_local_data``; every process must pass the same number
    of rows, a multiple of its number of local devices. In a single process it is
    :func:`shard_examples`."""
    mesh = data_mesh(devices, BATCH_AXIS)
    rows = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    X_local = np.asarray(X_local)
    n_local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    if X_local.ndim != 2 or X_local.shape[0] % max(n_local, 1):
        raise ValueError(f"X_local must be 2-D with a multiple of {n_local} rows (this "
                         f"process's devices), got shape {X_local.shape}")
    Xs = jax.make_array_from_process_local_data(rows, X_local)
    ys = None
    if y_local is not None:
        y_local = np.asarray(y_local)
        if y_local.ndim not in (1, 2) or y_local.shape[0] != X_local.shape[0]:
            raise ValueError(f"y_local must be {X_local.shape[0]} labels (m,) or target rows "
                             f"(m, K), one per row of X_local, got shape {y_local.shape}")
        ys = jax.make_array_from_process_local_data(rows, y_local)
    return Xs, ys
