"""What every ``jaxnn`` subcommand shares: user errors, exit statuses, optional packages.

Everything that can go wrong because of what the user typed or pointed at becomes a
:class:`UsageError`, which :func:`jaxnn.cli.main` prints as one line (exit status 2).
"""

from __future__ import annotations

import importlib.util

EXTRA_HINT = "pip install 'jaxnn[all]'"

# the import name of each optional package, and the name pip knows it by
_PACKAGES = {"rich": "rich", "matplotlib": "matplotlib", "sklearn": "scikit-learn",
             "mlxtend": "mlxtend"}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with the command line or the files it names: printed as one line, exit 2."""


def require(command: str, *modules: str) -> None:
    """Raise :class:`UsageError` naming *every* missing optional package (by its pip name)
    and the extra that brings them all, if any of ``modules`` cannot be imported."""
    missing = [_PACKAGES.get(m, m) for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"jaxnn {command} needs the optional package(s) {', '.join(missing)}, which the "
            f"'all' extra installs: {EXTRA_HINT}"
        )


def missing_module(exc: ImportError) -> str | None:
    """The optional package (pip name) whose absence caused ``exc``, or None if it is not one
    of jaxnn's optional packages (then ``exc`` is a real bug and should not be hidden)."""
    for err in (exc, exc.__cause__):
        name = (getattr(err, "name", None) or "").split(".")[0]
        if isinstance(err, ImportError) and name in _PACKAGES:
            return _PACKAGES[name]
    return None


def missing_extra(exc: ImportError) -> UsageError:
    """A one-line :class:`UsageError` for an optional package that failed to import."""
    name = missing_module(exc) or exc.name or str(exc)
    return UsageError(f"missing optional package {name}: {EXTRA_HINT}")
