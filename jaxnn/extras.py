"""jaxnn's optional packages, and the one error that names every one a call is missing.

The datasets, the plots, the estimator and the command import their optional packages only when
asked. A call that needs some that are absent, or older than jaxnn's extras ask for, raises one
``ImportError`` naming each of them by the name pip knows and the pip command of the extra that
brings them all: :func:`require`. It asks only when called (``importlib.metadata`` takes 50 ms to
import). The lowest versions are read from jaxnn's installed metadata,
which ``pyproject.toml``'s extras write, so they have no second home here.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache

#: the import name of each optional package, and the name pip knows it by
PIP_NAMES = {"mlxtend": "mlxtend", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
             "rich": "rich"}


def install_hint(extra: str) -> str:
    """The pip command that brings the extra ``extra``."""
    return f"pip install 'jaxnn[{extra}]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False


def _release(version: str) -> tuple[int, ...]:
    """The numeric release at the start of a version string: ``"1.6.0rc1"`` -> ``(1, 6, 0)``."""
    found = re.match(r"[0-9]+(?:\.[0-9]+)*", version.strip())
    return tuple(int(part) for part in found[0].split(".")) if found else ()


@cache
def lowest_versions() -> dict[str, str]:
    """The lowest version of each optional package that jaxnn's extras ask for (pip names);
    empty when jaxnn runs from a source tree that was never installed."""
    import importlib.metadata  # 50 ms: only when a package is asked for

    try:
        requirements = importlib.metadata.requires("jaxnn") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    lowest = {}
    for requirement in requirements:
        found = re.match(r"\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9][^,;\s]*)", requirement)
        if found and found[1] in PIP_NAMES.values():
            lowest[found[1]] = found[2]
    return lowest


def missing(*modules: str) -> list[str]:
    """Which of ``modules`` (import names) cannot be imported, or are older than jaxnn needs:
    pip names, an old one with its version (``"scikit-learn >= 1.6 (1.5.2 is installed)"``)."""
    import importlib.metadata

    out, lowest = [], None
    for module in dict.fromkeys(modules):
        pip = PIP_NAMES.get(module, module)
        if not _importable(module):
            out.append(pip)
            continue
        lowest = lowest_versions() if lowest is None else lowest
        try:
            installed = importlib.metadata.version(pip)
        except importlib.metadata.PackageNotFoundError:
            continue
        if pip in lowest and _release(installed) < _release(lowest[pip]):
            out.append(f"{pip} >= {lowest[pip]} ({installed} is installed)")
    return out


def require(what: str, *modules: str, extra: str) -> None:
    """Raise one ``ImportError`` naming every package of ``modules`` that :func:`missing`
    finds, and the pip command of ``extra``; ``what`` names what needs them."""
    absent = missing(*modules)
    if absent:
        raise ImportError(f"{what} needs the optional package(s) {', '.join(absent)}: "
                          f"{install_hint(extra)}")


def missing_package(exc: BaseException) -> str | None:
    """The optional package (pip name) whose absence caused the ``ImportError`` ``exc``, or
    None when it is none of jaxnn's optional packages (a real bug, not to be hidden)."""
    for err in (exc, exc.__cause__):
        name = (getattr(err, "name", None) or "").split(".")[0]
        if isinstance(err, ImportError) and name in PIP_NAMES:
            return PIP_NAMES[name]
    return None
