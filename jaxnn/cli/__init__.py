"""The ``jaxnn`` command: ``train``, ``gradcheck``, ``predict``, ``show`` and ``sweep``.

``main(argv)`` parses the arguments, runs a subcommand and returns the exit status:

* 0: done;
* 1: a check failed (``gradcheck`` found gradients that disagree), training diverged or
  stopped before its first iteration, or standard output could not be written (the command
  went on without it);
* 2: a user error (missing or malformed file, bad option value, missing optional package, a
  problem too large for memory), printed as one line without a traceback;
* 130: interrupted with Ctrl-C (``train`` saves the weights it reached first);
* 143: stopped by a SIGTERM (``kill``, a job scheduler), which the command answers as a Ctrl-C.

Warnings (a BFGS run on a large network, a cache that cannot be written) are printed as one
line each, ``jaxnn train: warning: ...``, under the user's own warning filters.

Each subcommand is one module of this package (:mod:`jaxnn.cli.train`,
:mod:`~jaxnn.cli.gradcheck`, :mod:`~jaxnn.cli.predict`, :mod:`~jaxnn.cli.show`,
:mod:`~jaxnn.cli.sweep`) with an ``add_parser`` and a ``run``; the options they share are in
:mod:`jaxnn.cli.options`. The parser imports neither JAX nor the optional packages: ``--help``
and argument errors answer at once, and JAX, optax, scipy, rich and matplotlib are imported
when a command runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import types
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from jaxnn.cli import gradcheck, predict, show, sweep, train
from jaxnn.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    UsageError,
    command_words,
    missing_extra,
    standard_output,
)

__all__ = ["main", "build_parser"]

COMMANDS = (train, gradcheck, predict, show, sweep)


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (one line, exit 2) instead of
    printing the usage block and exiting; subparsers inherit the class.

    A mistyped option is named with the option it most resembles (``--wieghts``: did you mean
    ``--weights``?), also where argparse would complain first of the required option that the
    typo was meant to give."""

    given: tuple[str, ...] = ()  # the arguments this parser was last asked to parse
    commands: tuple[str, ...] = ()  # the subcommands' names (the top parser's)

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's
        self.given = tuple(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if mistyped := self.mistyped_option(extras):  # left over: none of this parser's
            self.error(mistyped)
        return namespace, extras

    def error(self, message: str) -> NoReturn:
        # a required option reported missing: was it given under a mistyped name? (only
        # then: argparse's other complaints name the token they are about)
        if message.startswith(REQUIRED_MESSAGES) or (self.commands and "invalid choice" in
                                                      message):  # "--wieghts w predict"
            message = self.mistyped_option(self.given) or message
        raise UsageError(f"{message}{self.closest_choice(message)} (see '{self.prog} --help')")

    @staticmethod
    def closest_choice(message: str) -> str:
        """``"; did you mean L-BFGS-B?"`` for argparse's complaint of an invalid choice
        (``l-bfgs-b``, ``trian``) that resembles one of the choices, whatever the case; else
        ``""``. The choices are read from the complaint, quoted or not (Python 3.11-3.14)."""
        import difflib
        import re

        found = re.search(r"invalid choice: (.+?) \(choose from (.*)\)$", message)
        if not found:
            return ""
        given = found[1].strip("'\"").lower()
        choices = {c.strip().strip("'\"").lower(): c.strip().strip("'\"")
                   for c in found[2].split(",")}
        close = difflib.get_close_matches(given, list(choices), n=1, cutoff=0.6)
        return f"; did you mean {choices[close[0]]}?" if close else ""

    def mistyped_option(self, tokens: Sequence[str]) -> str | None:
        """``"unrecognized option --x; did you mean --y?"`` for the first of ``tokens`` shaped
        like an option (``-x``, ``--name``, ``--name=value``) that is none of this parser's,
        nor an abbreviation of one; the top parser looks only before the subcommand (its
        first token that is no option)."""
        import difflib
        import re

        # every option string is in the help (the public view of the parser's options); an
        # option mentioned in another's help is a real one too. Without colours (3.14 adds them)
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.format_help())
        options = sorted(set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", text)))
        for token in tokens:
            if token == "--" or (self.commands and not token.startswith("-")):
                break
            name = token.split("=", 1)[0]
            if not re.fullmatch(r"--?[A-Za-z][\w-]*", name) or name in options or (
                    name.startswith("--") and any(o.startswith(name) for o in options)):
                continue
            words = {option.lstrip("-"): option for option in options}  # dashes match alike
            close = difflib.get_close_matches(name.lstrip("-"), list(words), n=1, cutoff=0.7)
            return f"unrecognized option {name}" + (f"; did you mean {words[close[0]]}?"
                                                     if close else "")
        return None


#: how argparse (3.11-3.14) begins its complaints of a required option not given
REQUIRED_MESSAGES = ("the following arguments are required", "one of the arguments")


def build_parser() -> ArgumentParser:
    """The ``jaxnn`` argument parser with every subcommand."""
    from jaxnn import __version__

    parser = ArgumentParser(
        prog="jaxnn",
        description="The classic neural-network exercise (ex4) in JAX: train, check gradients, "
                    "predict and draw hidden units.")
    parser.add_argument("--version", action="version", version=f"jaxnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    parser.commands = tuple(sub.choices)
    return parser


# ---- entry point ---------------------------------------------------------------------------------


MAX_MESSAGE = 400  # characters of an error message shown (one line)


def one_line(message: str) -> str:
    """``message`` on one line, at most :data:`MAX_MESSAGE` characters (a library's message
    can quote megabytes of a corrupt file)."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 5] + " ..."


# what to make smaller when memory runs out, in each command's options
MEMORY_HINTS = {
    "train": "use fewer examples, smaller --hidden layers, --dtype float32, or a --method "
             "other than BFGS (it keeps an n x n matrix)",
    "sweep": "use fewer examples, smaller --hidden layers, fewer --seeds or --dtype float32",
}
MEMORY_HINT = "use fewer examples or smaller layers"


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {one_line(command_words(message))}", file=sys.stderr)
    return EXIT_USAGE


def _lost_output(prog: str, out: OSError | None, err: OSError | None, code: int) -> int:
    """A command whose standard output or error could not be written (``> /dev/full``) did
    its work without them: said on standard error (when it can be written), and exit status
    1 where the command had none to give."""
    for name, exc in (("standard output", out), ("standard error", err)):
        if exc is not None:
            print(f"{prog}: error: {name}: cannot write ({exc.strerror or exc}); the command "
                  "went on without it", file=sys.stderr)
    return EXIT_FAILED if code == EXIT_OK else code


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxnn`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status (see the module docstring). Every error that reaches here is one line on standard
    error: a user error, a file-system error, a value the library refused, memory that cannot
    be had; a Ctrl-C is exit 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {command.__name__.rpartition(".")[2] for command in COMMANDS}
    prog = "jaxnn" + (f" {argv[0]}" if argv and argv[0] in commands else "")
    def show(message, category, *_, **__) -> None:  # noqa: ANN001 - one line per warning
        kind = "warning" if category is UserWarning else category.__name__
        text = " ".join(command_words(str(message)).split())
        print(f"{prog}: {kind}: {text}", file=sys.stderr)

    interrupts, code = _Interrupts(), None
    try:
        with warnings.catch_warnings(), interrupts, standard_output() as (out, err):
            warnings.showwarning = show  # the user's filters stay; only the printing changes
            code = _main(argv, prog)
            if out.failed is not None or err.failed is not None:
                code = _lost_output(prog, out.failed, err.failed, code)
    except KeyboardInterrupt:  # heard as the handler was put in place or undone
        interrupts.pending = True
    if code is None or (interrupts.pending and code != EXIT_INTERRUPTED):  # its last moments
        print(f"{prog}: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and interrupts.terminated else code


class _Interrupts:
    """Make every Ctrl-C stop the command, and never half-way through an import.

    Python raises ``KeyboardInterrupt`` in whatever Python code runs next. While JAX is
    imported that is often a garbage-collection or weak-reference callback, or a ``__del__``,
    where the exception is reported as unraisable and dropped (the command then ran to the
    end), or the import itself, which it leaves half done (the interpreter then crashed as it
    exited, or printed a traceback). For the command's duration only, and only over Python's
    defaults, an interrupt heard inside an import, or dropped as unraisable, is handed back to
    the main thread 10 ms later, until it arrives where it can be raised."""

    def __init__(self) -> None:
        self.pending = False
        self.installed = False
        self.terminated = False  # a SIGTERM was heard (the exit status is then 143)
        self.sigterm = False  # its handler is ours

    def __enter__(self) -> _Interrupts:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler and \
                threading.current_thread() is threading.main_thread():
            self._unraisablehook = sys.unraisablehook
            signal.signal(signal.SIGINT, self._on_sigint)
            sys.unraisablehook = self._on_unraisable
            self.installed = True
            # a SIGTERM (kill, a job scheduler) stops the command as a Ctrl-C does: train
            # saves what it reached, files are left whole; only over the default action
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self.sigterm = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            sys.unraisablehook = self._unraisablehook
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _on_sigterm(self, signum: int, frame: types.FrameType | None) -> None:
        self.terminated = True
        self._on_sigint(signum, frame)

    def _on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        if _inside_an_import(frame):
            self._hold()
            return
        self.pending = False
        raise KeyboardInterrupt

    def _on_unraisable(self, unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            self._hold()  # raised in a callback that drops exceptions: raise it again later
        else:
            self._unraisablehook(unraisable)

    def _hold(self) -> None:
        self.pending = True
        timer = threading.Timer(0.01, self._again)
        timer.daemon = True
        timer.start()

    def _again(self) -> None:
        if self.pending and signal.getsignal(signal.SIGINT) == self._on_sigint:
            # a real signal, which also wakes a main thread blocked in a system call
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _inside_an_import(frame: types.FrameType | None) -> bool:
    """``frame`` runs a module's code as it is imported: an exception raised there leaves the
    module half made."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _main(argv: list[str], prog: str) -> int:
    try:
        parser = build_parser()
        try:
            args, unknown = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else 0
        if unknown:  # argparse names the top-level parser; the help to read is where they are
            at = argv.index(args.command) if args.command else len(argv)
            first = next((i for i, a in enumerate(argv) if a == unknown[0] and i != at), at + 1)
            where = f"jaxnn {args.command}" if args.command and first > at else "jaxnn"
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see '{where} --help')")
        if getattr(args, "func", None) is None:
            raise UsageError(f"choose a command: {', '.join(parser.commands)} "
                             "(see 'jaxnn --help')")
        return int(args.func(args) or 0)
    except UsageError as exc:
        return _fail(prog, str(exc))
    except ImportError as exc:
        if (error := missing_extra(exc)) is None:
            raise
        return _fail(prog, str(error))
    except OSError as exc:  # anything the file system says: missing, loop, permission, ...
        return _fail(prog, _os_error(exc))
    except (ValueError, TypeError, OverflowError) as exc:  # an argument the library refused
        return _fail(prog, str(exc))
    except Warning as exc:  # a warning that -W error (or a filter) made an error
        return _fail(prog, f"{type(exc).__name__}: {exc}")
    except MemoryError:
        hint = MEMORY_HINTS.get(prog.removeprefix("jaxnn "), MEMORY_HINT)
        return _fail(prog, f"not enough memory for this problem; {hint}")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:  # XLA's errors (XlaRuntimeError) are RuntimeErrors
        if "RESOURCE_EXHAUSTED" in str(exc) or "Out of memory" in str(exc):
            hint = MEMORY_HINTS.get(prog.removeprefix("jaxnn "), MEMORY_HINT)
            return _fail(prog, f"not enough memory for this problem (XLA could not allocate "
                               f"it); {hint}")
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
