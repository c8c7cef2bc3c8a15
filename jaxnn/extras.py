"""jaxnn's optional packages, and the one error that names every one a call is missing.

The datasets, the plots, the estimator and the command import their optional packages only when
asked. A call that needs some that are absent, or older than the extra that brings them asks
for, raises one ``ImportError`` (:func:`require`) naming each of them by the name pip knows,
and the pip command of that extra; its ``name`` is the first missing package's import name, as
Python's own would be. The lowest versions are each extra's own, read from jaxnn's installed
metadata, which ``pyproject.toml``'s extras write, so they have no second home here; they are
read only when asked for (``importlib.metadata`` takes 50 ms to import).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from functools import cache
from pathlib import Path

#: the import name of each optional package, and the name pip knows it by
PIP_NAMES = {"mlxtend": "mlxtend", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
             "rich": "rich"}


def install_hint(extra: str) -> str:
    """The pip command that brings the extra ``extra`` to this installation of jaxnn: from the
    directory or file it was installed from (``pip install -e '.[all]'`` for an editable
    install of the current directory, as the README's commands make), by name otherwise."""
    source = install_source()
    if source is None:
        return f"pip install {shlex.quote(f'jaxnn[{extra}]')}"
    where, editable = source
    try:
        shown = "." if where.samefile(Path.cwd()) else str(where)
    except (OSError, ValueError):  # gone, or the current directory is; a NUL in the path
        shown = str(where)
    return f"pip install {'-e ' if editable else ''}{shlex.quote(f'{shown}[{extra}]')}"


def install_source() -> tuple[Path, bool] | None:
    """``(path, editable)`` when jaxnn was installed from a local directory or file (a wheel,
    an sdist), read from its installation's ``direct_url.json`` (PEP 610); None for an install
    from an index or a remote address, or when jaxnn runs from a source tree that was never
    installed."""
    import importlib.metadata  # 50 ms: only when a package is asked for
    import json
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    try:
        record = json.loads(importlib.metadata.distribution("jaxnn").read_text(
            "direct_url.json") or "null")
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        return None
    if not isinstance(record, dict) or not ({"dir_info", "archive_info"} & set(record)):
        return None  # a version-control checkout (vcs_info) is not a directory to install
    url = urlparse(str(record.get("url", "")))
    if url.scheme != "file" or url.netloc not in ("", "localhost"):  # remote, or a share
        return None
    info = record.get("dir_info")
    editable = isinstance(info, dict) and info.get("editable") is True
    return Path(url2pathname(url.path)), editable


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False


def _release(version: str) -> tuple[int, ...]:
    """The numeric release at the start of a version string, trailing zeros dropped so that
    ``"1.6"`` and ``"1.6.0"`` compare equal: ``"1.6.0rc1"`` -> ``(1, 6)``."""
    found = re.match(r"[0-9]+(?:\.[0-9]+)*", version.strip())
    parts = [int(part) for part in found[0].split(".")] if found else []
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def lowest_versions(extra: str) -> dict[str, str]:
    """The lowest version of each optional package that jaxnn's extra ``extra`` asks for
    (pip names; the highest floor where it names one twice); empty when jaxnn runs from a
    source tree that was never installed."""
    import importlib.metadata  # 50 ms: only when a package is asked for

    try:
        requirements = importlib.metadata.requires("jaxnn") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    ours = {_normalized(pip): pip for pip in PIP_NAMES.values()}
    lowest: dict[str, str] = {}
    for requirement in requirements:
        found = re.match(r"\s*([A-Za-z0-9._-]+)\s*\(?\s*>=\s*([0-9][^,;)\s]*)[^;]*;\s*extra\s*"
                         r"==\s*['\"]([^'\"]+)['\"]", requirement)
        if found and found[3] == extra and _normalized(found[1]) in ours:
            pip = ours[_normalized(found[1])]
            if pip not in lowest or _release(found[2]) > _release(lowest[pip]):
                lowest[pip] = found[2]
    return lowest


def _absent(modules: tuple[str, ...], extra: str) -> list[tuple[str, str]]:
    """``(import name, what to say)`` for each of ``modules`` that cannot be imported, or is
    older than the extra ``extra`` asks for."""
    import importlib.metadata

    out = []
    for module in dict.fromkeys(modules):
        pip = PIP_NAMES.get(module, module)
        if not _importable(module):
            out.append((module, pip))
            continue
        lowest = lowest_versions(extra)
        try:
            installed = importlib.metadata.version(pip)
        except importlib.metadata.PackageNotFoundError:
            continue
        if pip in lowest and _release(installed) < _release(lowest[pip]):
            out.append((module, f"{pip} >= {lowest[pip]} ({installed} is installed)"))
    return out


def missing(*modules: str, extra: str) -> list[str]:
    """Which of ``modules`` (import names) cannot be imported, or are older than the extra
    ``extra`` asks for: pip names, an old one with its version (``"scikit-learn >= 1.6 (1.5.2
    is installed)"``)."""
    return [said for _, said in _absent(modules, extra)]


def require(what: str, *modules: str, extra: str) -> None:
    """Raise one ``ImportError`` naming every package of ``modules`` that :func:`missing`
    finds, and the pip command of ``extra``; ``what`` names what needs them. The error's
    ``name`` is the first one's import name, as Python's own would be, so that a catcher can
    tell which package it is (:func:`missing_package`)."""
    absent = _absent(modules, extra)
    if absent:
        raise ImportError(f"{what} needs the optional package(s) "
                          f"{', '.join(said for _, said in absent)}: {install_hint(extra)}",
                          name=absent[0][0])


def missing_package(exc: BaseException) -> str | None:
    """The optional package (pip name) whose absence caused the ``ImportError`` ``exc``, or
    None when it is none of jaxnn's optional packages (a real bug, not to be hidden)."""
    for err in (exc, exc.__cause__):
        name = (getattr(err, "name", None) or "").split(".")[0]
        if isinstance(err, ImportError) and name in PIP_NAMES:
            return PIP_NAMES[name]
    return None
