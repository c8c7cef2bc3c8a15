"""A MATLAB/Octave ``.mat`` reader that turns every corrupt file into a ``ValueError``.

:func:`read_mat` parses MATLAB level 5 files itself, in pure Python with every length checked:
scipy's compiled reader can crash the interpreter (segmentation fault) on a corrupt file, e.g.
an unknown data type code. A missing file stays ``FileNotFoundError``. :func:`mat_keys` and
:func:`real_matrix` are small validation helpers for the variables of a file.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MAT_HINT = "a MATLAB v4/v5/v7 .mat file (as written by Octave's `save -v7` or scipy.io.savemat)"


def read_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a MATLAB/Octave `.mat` file into a dict of its variables, like `scipy.io.loadmat`.

    Level 5 files (MATLAB v5/v6/v7, compressed or not, either byte order) are parsed here, in
    pure Python with every length checked, because scipy's compiled reader can crash the
    interpreter on corrupt input. Numeric variables come back as arrays of their MATLAB class
    (2-D or more, Fortran order as stored); other variables (text, cells, structs, sparse,
    objects) as `Unsupported` placeholders that say what they are. Level 4 files go to
    `scipy.io.loadmat`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is empty, truncated, corrupt, HDF5-based (v7.3) or not a `.mat` file.
    """
    data = Path(path).read_bytes()
    where = f"{path}: "
    if not data:
        raise ValueError(f"{where}the file is empty; expected {MAT_HINT}")
    version = _mat_version(data)
    if version == "7.3":
        raise ValueError(
            f"{where}MATLAB v7.3 (HDF5) files are not supported; re-save it in Octave/MATLAB "
            "with `save -v7 file.mat ...`"
        )
    if version == "4":
        return _read_mat4(data, where)
    if version is None:
        raise ValueError(f"{where}not a .mat file (no MATLAB 5 header); expected {MAT_HINT}")
    try:
        return _read_mat5(data)
    except _Corrupt as exc:
        raise ValueError(
            f"{where}corrupt or truncated .mat file: {exc}; expected {MAT_HINT}"
        ) from exc


class Unsupported:
    """Placeholder for a `.mat` variable that is not a numeric array (text, cell, struct...)."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"Unsupported({self.description!r})"


class _Corrupt(Exception):
    """Internal: the level 5 structure is inconsistent (turned into ValueError by read_mat)."""


def _mat_version(data: bytes) -> str | None:
    """The format level, "5", "7.3" or "4", or None; the same test as scipy's loader."""
    if 0 in data[:4]:
        return "4"  # level 4 files start with a small integer type code
    if len(data) < 128:
        return None
    major = data[125] if data[126:128] == b"IM" else data[124]
    if data[126:128] not in (b"IM", b"MI"):
        return None
    return {1: "5", 2: "7.3"}.get(major)


def _read_mat4(data: bytes, where: str) -> dict[str, Any]:
    """Level 4 files: scipy's (pure Python) reader; any failure becomes ValueError."""
    import scipy.io

    try:
        with warnings.catch_warnings():  # e.g. "byte ordering 'Cray'": a corrupt header
            warnings.simplefilter("ignore")
            return scipy.io.loadmat(io.BytesIO(data))
    except Exception as exc:  # scipy raises many types on corrupt input
        raise ValueError(
            f"{where}corrupt, truncated or not a .mat file ({type(exc).__name__}: {exc}); "
            f"expected {MAT_HINT}"
        ) from exc


# MATLAB level 5 data types (mi*) holding numbers, and array classes (mx*) that are numeric.
_MI_NUMERIC = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
_MX_NUMERIC = {
    6: "f8",
    7: "f4",
    8: "i1",
    9: "u1",
    10: "i2",
    11: "u2",
    12: "i4",
    13: "u4",
    14: "i8",
    15: "u8",
}
_MX_OTHER = {
    1: "a cell array",
    2: "a struct",
    3: "an object",
    4: "text (a char array)",
    5: "a sparse matrix",
    16: "a function handle",
    17: "an opaque object",
}
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED, _MI_UTF8 = 1, 5, 6, 14, 15, 16


class _Elements:
    """A cursor over level 5 data elements in `data`, every length checked against the end."""

    def __init__(self, data: bytes, endian: str) -> None:
        self.data, self.endian, self.pos = data, endian, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise _Corrupt(f"{what} needs {n} bytes, only {len(self.data) - self.pos} remain")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def element(self, what: str, *, align: bool = True) -> tuple[int, bytes]:
        """The next `(data type, payload)`; small (<= 4 byte) elements are packed in the tag.

        Elements inside a matrix are padded to 8 bytes; top-level ones are not (`align=False`).
        """
        first, second = struct.unpack(self.endian + "II", self.take(8, f"the tag of {what}"))
        small_count = first >> 16
        if small_count:
            if small_count > 4:
                raise _Corrupt(f"{what}: small element of {small_count} bytes (at most 4)")
            return first & 0xFFFF, struct.pack(self.endian + "I", second)[:small_count]
        payload = self.take(second, what)
        if align:
            self.pos = min(len(self.data), self.pos + (-second) % 8)
        return first, payload


def _read_mat5(data: bytes) -> dict[str, Any]:
    """All variables of a level 5 file (after its 128-byte header)."""
    endian = "<" if data[126:128] == b"IM" else ">"
    variables: dict[str, Any] = {
        "__header__": data[:116].rstrip(b" \0"),
        "__version__": "1.0",
        "__globals__": [],
    }
    top = _Elements(data[128:], endian)
    while not top.at_end():
        kind, payload = top.element(f"variable {len(variables) - 2}", align=False)
        if kind == _MI_COMPRESSED:
            kind, payload = _inflate(payload, endian)
        if kind != _MI_MATRIX:
            raise _Corrupt(f"unexpected data type {kind} at the top level (expected a matrix)")
        name, value = _matrix(payload, endian)
        variables[name] = value
    return variables


def _inflate(payload: bytes, endian: str) -> tuple[int, bytes]:
    """Decompress a miCOMPRESSED element and return the element inside it."""
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(payload)
    except zlib.error as exc:
        raise _Corrupt(f"compressed variable does not decompress ({exc})") from exc
    if not inflater.eof:
        raise _Corrupt("compressed variable is cut short")
    return _Elements(inner, endian).element("the compressed variable")


def _matrix(payload: bytes, endian: str) -> tuple[str, Any]:
    """Parse a miMATRIX element: `(name, array or Unsupported)`."""
    parts = _Elements(payload, endian)
    kind, flags = parts.element("array flags")
    if kind != _MI_UINT32 or len(flags) != 8:
        raise _Corrupt(f"array flags of type {kind} and {len(flags)} bytes (expected uint32 x2)")
    flags_class = struct.unpack(endian + "II", flags)[0]
    mclass, is_complex, is_logical = flags_class & 0xFF, flags_class >> 11 & 1, flags_class >> 9 & 1
    if mclass == 17:  # opaque objects have no dimensions
        return _name(parts), Unsupported(_MX_OTHER[17])
    dims = _dims(parts)
    name = _name(parts)
    if mclass in _MX_OTHER:
        return name, Unsupported(_MX_OTHER[mclass])
    if mclass not in _MX_NUMERIC:
        raise _Corrupt(f"variable {name!r} has unknown array class {mclass}")
    value = _numeric(parts, dims, _MX_NUMERIC[mclass], f"{name} (real part)")
    if is_complex:  # set the parts: value + 1j * imag would turn 0 + inf j into nan + inf j
        imag = _numeric(parts, dims, _MX_NUMERIC[mclass], f"{name} (imag part)")
        out = np.empty_like(value, dtype=np.result_type(value, 1j))
        out.real, out.imag = value, imag
        value = out
    elif is_logical:
        value = value.astype(bool)
    return name, value


def _dims(parts: _Elements) -> tuple[int, ...]:
    kind, raw = parts.element("dimensions")
    if kind not in (_MI_INT32, _MI_UINT32) or len(raw) % 4 or len(raw) < 8:
        raise _Corrupt(f"dimensions of type {kind} and {len(raw)} bytes (expected >= 2 int32)")
    dims = struct.unpack(f"{parts.endian}{len(raw) // 4}i", raw)
    if min(dims) < 0:
        raise _Corrupt(f"negative dimension in {dims}")
    return dims


def _name(parts: _Elements) -> str:
    kind, raw = parts.element("variable name")
    if kind not in (_MI_INT8, _MI_UTF8):
        raise _Corrupt(f"variable name of data type {kind} (expected int8 text)")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _Corrupt(f"variable name {raw!r} is not ASCII") from exc


def _numeric(parts: _Elements, dims: tuple[int, ...], out: str, what: str) -> np.ndarray:
    """Read a numeric element holding `prod(dims)` numbers; return dtype `out`, shape `dims`."""
    kind, raw = parts.element(what)
    if kind not in _MI_NUMERIC:
        raise _Corrupt(f"{what} has data type {kind}, which is not numeric")
    stored = np.dtype(_MI_NUMERIC[kind]).newbyteorder(parts.endian)
    count = math.prod(dims)
    if len(raw) != count * stored.itemsize:
        raise _Corrupt(
            f"{what} holds {len(raw)} bytes; dimensions {dims} of {stored.name} need "
            f"{count * stored.itemsize}"
        )
    values = np.frombuffer(raw, dtype=stored).reshape(dims, order="F")
    return values.astype(np.dtype(out).newbyteorder("="))


def mat_keys(variables: Mapping[str, Any]) -> list[str]:
    """The user variables of a `loadmat` dict (without `__header__` and friends), sorted."""
    return sorted(k for k in variables if not k.startswith("__"))


def real_matrix(value: Any, name: str, where: str) -> np.ndarray:
    """Validate that `value` is a non-empty, real, numeric 2-D array; return it as float64.

    Sparse matrices are densified. Raises `ValueError` starting with `where` (e.g. "file.mat: ")
    and naming the variable `name` and the problem.
    """
    if isinstance(value, Unsupported):
        raise ValueError(f"{where}{name} is {value.description}; expected a real numeric matrix")
    if hasattr(value, "toarray"):  # scipy.sparse, as level 4 files may hold
        value = value.toarray()
    array = np.asarray(value)
    kind = _describe_non_numeric(array)
    if kind is not None:
        raise ValueError(f"{where}{name} is {kind}; expected a real numeric matrix")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{where}{name} has shape {array.shape}; expected a non-empty 2-D matrix")
    return array.astype(np.float64, order="C")


def _describe_non_numeric(array: np.ndarray) -> str | None:
    """A phrase for why `array` is not real numeric data, or None if it is."""
    if array.dtype.kind == "c":
        return f"complex ({array.dtype})"
    if array.dtype.kind == "O":
        return "a cell array or struct (object dtype)"
    if array.dtype.kind in "USV":
        return f"text or a struct ({array.dtype})"
    if array.dtype.kind not in "fiu":
        return f"of dtype {array.dtype}"
    return None
