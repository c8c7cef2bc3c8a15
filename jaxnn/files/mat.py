"""A MATLAB/Octave ``.mat`` reader that turns every corrupt file into a ``ValueError``.

:func:`read_mat` parses MATLAB level 5 files itself, in pure Python with every length checked:
scipy's compiled reader can crash the interpreter (segmentation fault) on a corrupt file, e.g.
an unknown data type code. Memory is bounded by what the file declares: a compressed variable
is inflated incrementally, never past the length its tag declares, and a declared length that
cannot fit in memory is refused before anything is inflated (a small file cannot inflate to
gigabytes). A missing file stays ``FileNotFoundError`` (any ``OSError`` stays one).
:func:`mat_keys` and :func:`real_matrix` are small validation helpers for the variables of a
file.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxnn.checks import check_input_file
from jaxnn.memory import check_memory

MAT_HINT = "a MATLAB v4/v5/v7 .mat file (as written by Octave's `save -v7` or scipy.io.savemat)"


def read_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a MATLAB/Octave `.mat` file into a dict of its variables, like `scipy.io.loadmat`.

    Level 5 files (MATLAB v5/v6/v7, compressed or not, either byte order) are parsed here, in
    pure Python with every length checked, because scipy's compiled reader can crash the
    interpreter on corrupt input. Numeric variables come back as arrays of their MATLAB class
    (2-D or more, Fortran order as stored, sharing memory with what was read where the class
    is the stored type); text (char arrays) as `str` (one row; `""` when empty) or an array
    of row strings; other variables (cells, structs, sparse, objects) as `Unsupported`
    placeholders that say what they are. Level 4 files go to `scipy.io.loadmat`.

    Memory: the file is read once; a compressed variable is inflated into a buffer of the
    length its tag declares, at most that many bytes (more is corruption, found without
    inflating the rest), and a declared length that cannot fit in memory
    (:func:`jaxnn.memory.check_memory`) is refused before inflating.

    Raises:
        FileNotFoundError (and other `OSError`s, naming `path`): the file cannot be opened.
        ValueError: the file is empty, truncated, corrupt, HDF5-based (v7.3), not a `.mat`
            file, not a regular file, or declares more than fits in memory.
    """
    where = f"{path}: "
    size = check_input_file(path)
    _check_host(size, f"{where}a file of {size:,} bytes")
    data = np.empty(size, dtype=np.uint8)
    with open(path, "rb") as f:
        got = f.readinto(memoryview(data))
    if got != size:
        raise ValueError(f"{where}the file changed while it was read ({got} of {size} bytes)")
    if not size:
        raise ValueError(f"{where}the file is empty; expected {MAT_HINT}")
    head = bytes(memoryview(data)[:128])
    version = _mat_version(head)
    if version == "7.3":
        raise ValueError(
            f"{where}MATLAB v7.3 (HDF5) files are not supported; re-save it in Octave/MATLAB "
            "with `save -v7 file.mat ...`"
        )
    if version == "4":
        return _read_mat4(data.tobytes(), where)
    if version is None:
        raise ValueError(f"{where}not a .mat file (no MATLAB 5 header); expected {MAT_HINT}")
    try:
        return _read_mat5(memoryview(data), head, where)
    except _Corrupt as exc:
        raise ValueError(
            f"{where}corrupt or truncated .mat file: {exc}; expected {MAT_HINT}"
        ) from exc


def _check_host(n_bytes: int, what: str) -> None:
    """The memory rule for what a file declares: host memory, since files load there."""
    check_memory(n_bytes, what, hint="is this the right file?", device="host")


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
_MX_CHAR = 4
# how the characters of a char array may be stored: data type -> codec
_MI_TEXT = {1: "latin-1", 2: "latin-1", 4: "utf-16", 16: "utf-8", 17: "utf-16", 18: "utf-32"}
_IN_CHUNK = 1 << 16  # compressed input fed to zlib at a time
_OUT_CHUNK = 1 << 18  # inflated output asked of zlib at a time (then copied into place)


class _Elements:
    """A cursor over level 5 data elements in `data`, every length checked against the end.

    `data` is a memoryview: payloads are views of it, not copies."""

    def __init__(self, data: memoryview, endian: str) -> None:
        self.data, self.endian, self.pos = data, endian, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int, what: str) -> memoryview:
        if n > len(self.data) - self.pos:
            raise _Corrupt(f"{what} needs {n} bytes, only {len(self.data) - self.pos} remain")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def element(self, what: str, *, align: bool = True) -> tuple[int, memoryview]:
        """The next `(data type, payload)`; small (<= 4 byte) elements are packed in the tag.

        Elements inside a matrix are padded to 8 bytes; top-level ones are not (`align=False`).
        """
        return _split_tag(self.take(8, f"the tag of {what}"), self.endian, what,
                          lambda n: self.take(n, what), align and self._skip_padding)

    def _skip_padding(self, n: int) -> None:
        self.pos = min(len(self.data), self.pos + (-n) % 8)


def _split_tag(tag: memoryview | bytes, endian: str, what: str, payload: Any,
               pad: Any = None) -> tuple[int, memoryview]:
    """Decode an 8-byte tag: small elements carry their data in it, others `payload(n)`."""
    first, second = struct.unpack(endian + "II", tag)
    small_count = first >> 16
    if small_count:
        if small_count > 4:
            raise _Corrupt(f"{what}: small element of {small_count} bytes (at most 4)")
        return first & 0xFFFF, memoryview(struct.pack(endian + "I", second)[:small_count])
    body = payload(second)
    if pad:
        pad(second)
    return first, body


def _read_mat5(data: memoryview, head: bytes, where: str) -> dict[str, Any]:
    """All variables of a level 5 file (after its 128-byte header)."""
    endian = "<" if head[126:128] == b"IM" else ">"
    variables: dict[str, Any] = {
        "__header__": head[:116].rstrip(b" \0"),
        "__version__": "1.0",
        "__globals__": [],
    }
    top = _Elements(data[128:], endian)
    while not top.at_end():
        what = f"variable {len(variables) - 2}"
        kind, payload = top.element(what, align=False)
        if kind == _MI_COMPRESSED:
            kind, payload = _inflate(payload, endian, f"{where}{what}")
        if kind != _MI_MATRIX:
            raise _Corrupt(f"unexpected data type {kind} at the top level (expected a matrix)")
        name, value = _matrix(payload, endian, where)
        variables[name] = value
    return variables


class _Inflater:
    """Incremental zlib inflation of `source`: output on demand, input fed in small chunks
    (so no call copies more than `_IN_CHUNK` bytes of unconsumed input)."""

    def __init__(self, source: memoryview) -> None:
        self.source, self.pos = source, 0
        self.zlib = zlib.decompressobj()
        self.pending = b""

    def read_into(self, out: memoryview) -> int:
        """Fill `out` as far as the stream goes; return the number of bytes written."""
        got = 0
        while got < len(out) and not self.zlib.eof:
            if self.pending:
                feed = self.pending
            else:
                feed = self.source[self.pos : self.pos + _IN_CHUNK]
                self.pos += len(feed)
            try:
                chunk = self.zlib.decompress(feed, min(len(out) - got, _OUT_CHUNK))
            except zlib.error as exc:
                raise _Corrupt(f"compressed variable does not decompress ({exc})") from exc
            self.pending = self.zlib.unconsumed_tail
            out[got : got + len(chunk)] = chunk
            got += len(chunk)
            if not chunk and not feed:
                break  # no input left and nothing more comes out
        return got


def _inflate(payload: memoryview, endian: str, what: str) -> tuple[int, memoryview]:
    """Decompress a miCOMPRESSED element and return the element inside it.

    The inner tag declares the element's length: that many bytes are inflated into a buffer
    of that size (after :func:`check_memory` accepts it), and a stream that goes on for more
    than 7 bytes past it (padding) is corrupt, found without inflating the rest."""
    inflater = _Inflater(payload)
    tag = bytearray(8)
    if inflater.read_into(memoryview(tag)) < 8:
        raise _Corrupt("compressed variable is cut short (no element inside)")
    first, declared = struct.unpack(endian + "II", tag)
    if first >> 16:  # a small element: its data sit in the tag
        kind, inner = _split_tag(bytes(tag), endian, "the compressed variable", None)
        declared = 0
    else:
        _check_host(declared, f"{what}: a compressed variable that declares {declared:,} bytes")
        kind, inner = first, memoryview(np.empty(declared, np.uint8))
        got = inflater.read_into(inner)
        if got < declared:
            raise _Corrupt(f"compressed variable is cut short: its tag declares {declared} "
                           f"bytes, the stream holds {got}")
    if inflater.read_into(memoryview(bytearray(8))) > 7:
        raise _Corrupt(f"compressed variable inflates past the {declared} bytes its tag "
                       "declares")
    if not inflater.zlib.eof:
        raise _Corrupt("compressed variable is cut short")
    return kind, inner


def _matrix(payload: memoryview, endian: str, where: str) -> tuple[str, Any]:
    """Parse a miMATRIX element: `(name, array, str or Unsupported)`."""
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
    if mclass == _MX_CHAR:
        return name, _text(parts, dims, name)
    if mclass in _MX_OTHER:
        return name, Unsupported(_MX_OTHER[mclass])
    if mclass not in _MX_NUMERIC:
        raise _Corrupt(f"variable {name!r} has unknown array class {mclass}")
    out = _MX_NUMERIC[mclass]
    _check_host(math.prod(dims) * np.dtype(out).itemsize * (2 if is_complex else 1),
                f"{where}variable {name!r} of shape {dims}")
    value = _numeric(parts, dims, out, f"{name} (real part)")
    if is_complex:  # set the parts: value + 1j * imag would turn 0 + inf j into nan + inf j
        imag = _numeric(parts, dims, out, f"{name} (imag part)")
        complex_value = np.empty_like(value, dtype=np.result_type(value, 1j))
        complex_value.real, complex_value.imag = value, imag
        value = complex_value
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
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError as exc:
        raise _Corrupt(f"variable name {bytes(raw)!r} is not ASCII") from exc


def _numeric(parts: _Elements, dims: tuple[int, ...], out: str, what: str) -> np.ndarray:
    """Read a numeric element holding `prod(dims)` numbers; return dtype `out`, shape `dims`.

    When the stored type is `out` in native byte order, the result is a view of the bytes
    read (no copy)."""
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
    return values.astype(np.dtype(out).newbyteorder("="), copy=False)


def _text(parts: _Elements, dims: tuple[int, ...], name: str) -> Any:
    """A char array: `str` for one row (or an empty array), else an array of row strings."""
    kind, raw = parts.element(f"{name} (text)")
    codec = _MI_TEXT.get(kind)
    if codec is None:
        raise _Corrupt(f"text variable {name!r} has data type {kind}, which is not text")
    if codec in ("utf-16", "utf-32"):
        codec += "-le" if parts.endian == "<" else "-be"
    try:
        text = bytes(raw).decode(codec, errors="surrogatepass" if "16" in codec else "strict")
    except UnicodeDecodeError as exc:
        raise _Corrupt(f"text variable {name!r} is not valid {codec} ({exc})") from exc
    count = math.prod(dims)
    if len(dims) != 2:
        return Unsupported(f"text (a char array of shape {dims})")
    rows, cols = dims
    if count == 0:
        return "" if rows <= 1 else np.array([""] * rows)
    if len(text) != count:
        if rows == 1:  # e.g. a character outside the BMP: one char here, two UTF-16 units
            return text
        raise _Corrupt(f"text variable {name!r} holds {len(text)} characters, its dimensions "
                       f"{dims} need {count}")
    if rows == 1:
        return text
    grid = np.array(list(text)).reshape(dims, order="F")
    return np.array(["".join(row) for row in grid])


def mat_keys(variables: Mapping[str, Any]) -> list[str]:
    """The user variables of a `loadmat` dict (without `__header__` and friends), sorted."""
    return sorted(k for k in variables if not k.startswith("__"))


def real_matrix(value: Any, name: str, where: str, dtype: Any = np.float64) -> np.ndarray:
    """Validate that `value` is a non-empty, real, numeric 2-D array; return it as `dtype`.

    The result is C-ordered; it is `value` itself (no copy) when that already is. Sparse
    matrices are densified. Raises `ValueError` starting with `where` (e.g. "file.mat: ")
    and naming the variable `name` and the problem.
    """
    if isinstance(value, Unsupported):
        raise ValueError(f"{where}{name} is {value.description}; expected a real numeric matrix")
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(f"{where}{name} is text ({shown!r}); expected a real numeric matrix")
    if hasattr(value, "toarray"):  # scipy.sparse, as level 4 files may hold
        value = value.toarray()
    array = np.asarray(value)
    kind = _describe_non_numeric(array)
    if kind is not None:
        raise ValueError(f"{where}{name} is {kind}; expected a real numeric matrix")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{where}{name} has shape {array.shape}; expected a non-empty 2-D matrix")
    dtype = np.dtype(dtype)
    if array.dtype != dtype or not array.flags.c_contiguous:
        _check_host(array.size * dtype.itemsize, f"{where}{name} of shape {array.shape} as {dtype}")
    return np.asarray(array, dtype=dtype, order="C")


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
