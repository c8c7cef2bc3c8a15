"""NeuralNetClassifier: scikit-learn's own estimator checks, labels, probabilities, reuse."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from scipy.special import expit  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import jaxnn as nn  # noqa: E402
from jaxnn.estimator import NeuralNetClassifier  # noqa: E402
from jaxnn.extras import install_hint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          env=dict(os.environ, **env), capture_output=True, text=True,
                          timeout=300)


def test_passes_scikit_learns_check_estimator_in_full():
    # SCIPY_ARRAY_API=1 (read when scipy is first imported, hence the subprocess) so that
    # sklearn's array-API check runs too instead of being skipped: every check must pass
    out = _run("""
        from sklearn.utils.estimator_checks import check_estimator
        from jaxnn.estimator import NeuralNetClassifier
        results = check_estimator(NeuralNetClassifier(), on_fail=None)
        bad = [(r["check_name"], r["status"], repr(r["exception"])[:500])
               for r in results if r["status"] != "passed"]
        print(len(results), "checks")
        for b in bad:
            print("NOT PASSED", *b)
    """, SCIPY_ARRAY_API="1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "NOT PASSED" not in out.stdout, out.stdout
    assert int(out.stdout.split()[0]) >= 50


def test_import_jaxnn_does_not_import_sklearn_and_its_absence_is_explained():
    out = _run("""
        import sys
        import jaxnn, jaxnn.train
        assert "sklearn" not in sys.modules, "import jaxnn imported sklearn"

        class NoSklearn:
            def find_spec(self, name, path=None, target=None):
                if name == "sklearn" or name.startswith("sklearn."):
                    raise ImportError(f"No module named {name!r}")

        sys.meta_path.insert(0, NoSklearn())
        try:
            import jaxnn.estimator
        except ImportError as e:
            print(e)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    with contextlib.chdir(ROOT):  # where the child ran
        assert install_hint("sklearn") in out.stdout


def test_star_import_and_dir_without_sklearn():
    """``from jaxnn import *`` with scikit-learn unimportable: every public name arrives, and
    ``NeuralNetClassifier`` is listed in ``dir(jaxnn)`` (explained on access, not imported)."""
    out = _run("""
        import sys

        class NoSklearn:
            def find_spec(self, name, path=None, target=None):
                if name == "sklearn" or name.startswith("sklearn."):
                    raise ImportError(f"No module named {name!r}")

        sys.meta_path.insert(0, NoSklearn())
        ns = {}
        exec("from jaxnn import *", ns)
        import jaxnn
        missing = [n for n in jaxnn.__all__ if n not in ns]
        assert not missing, missing
        assert {"fit", "cost", "backprop", "check_gradients"} <= set(ns)
        assert "NeuralNetClassifier" in dir(jaxnn)
        assert "sklearn" not in sys.modules
        try:
            jaxnn.NeuralNetClassifier
        except ImportError as e:
            print(e)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    with contextlib.chdir(ROOT):  # where the child ran
        assert install_hint("sklearn") in out.stdout


def _blobs(m=90, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    y = np.arange(m) % 3
    return centers[y] + rng.normal(size=(m, 2)), y


def test_arbitrary_labels_probabilities_and_loss_curve():
    X, y = _blobs()
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = NeuralNetClassifier(hidden_layer_sizes=4, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"] and clf.n_features_in_ == 2
    assert clf.score(X, labels) > 0.95
    P = clf.predict_proba(X)
    assert P.shape == (90, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])
    # the course's sigmoid outputs, normalized, computed independently
    T1, T2 = (np.asarray(t, np.float64) for t in clf.params_)
    h = expit(np.c_[np.ones(90), expit(np.c_[np.ones(90), X] @ T1.T)] @ T2.T)
    np.testing.assert_allclose(P, h / h.sum(axis=1, keepdims=True), rtol=1e-5)
    # loss curve: one cost per iteration, ending at the final cost, which is jaxnn's cost
    assert len(clf.loss_curve_) == clf.n_iter_ >= 1
    assert clf.loss_curve_[-1] == pytest.approx(clf.loss_)
    assert clf.loss_ == pytest.approx(float(nn.cost(clf.params_, X, y, 1.0)), rel=1e-5)
    assert clf.result_.method == "L-BFGS-B"
    huge = np.full((1, 2), 1e39)  # finite in float64, infinite as the float32 network's input
    for call in (clf.predict_proba, clf.predict):  # were NaN rows, and class "cat"
        with pytest.raises(ValueError, match="X has values that overflow float32"):
            call(huge)


def test_binary_negative_labels_softmax_float64_and_other_methods():
    X, y = _blobs(m=60)
    y = np.where(y == 0, -1, 7)
    clf = NeuralNetClassifier((5,), lam=0.1, output="softmax", dtype="float64",
                              random_state=1).fit(X, y)
    assert list(clf.classes_) == [-1, 7] and clf.params_[-1].shape == (2, 6)
    assert clf.params_[0].dtype == np.float64 and clf.score(X, y) > 0.95
    assert not nn.precision.x64_enabled()
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    for kw in ({"method": "adam", "max_iter": 20, "batch_size": 10, "learning_rate": 0.05},
               {"hidden_layer_sizes": (), "activation": "tanh"}):
        clf = NeuralNetClassifier(random_state=0, **kw).fit(X, y)
        assert clf.score(X, y) > 0.9, kw


def test_random_state_reproducible_and_pickle_and_clone():
    X, y = _blobs()
    a = NeuralNetClassifier(3, max_iter=20, random_state=5).fit(X, y)
    b = NeuralNetClassifier(3, max_iter=20, random_state=5).fit(X, y)
    c = NeuralNetClassifier(3, max_iter=20, random_state=6).fit(X, y)
    assert all(np.array_equal(u, v) for u, v in zip(a.params_, b.params_, strict=True))
    assert not np.array_equal(a.params_[0], c.params_[0])
    d = pickle.loads(pickle.dumps(a))
    assert np.array_equal(d.predict_proba(X), a.predict_proba(X))
    e = clone(a)
    assert e.get_params() == a.get_params() and not hasattr(e, "params_")


def test_in_a_pipeline_and_cross_validation():
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(4, max_iter=50, random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.9


@pytest.mark.parametrize("kw, match", [
    ({"hidden_layer_sizes": (3, 0)}, "hidden_layer_sizes must be a positive int"),
    ({"hidden_layer_sizes": "big"}, "hidden_layer_sizes must be a positive int"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
    ({"dtype": "double-ish"}, "dtype must be 'float32' or 'float64'"),
    ({"dtype": None}, "dtype must be 'float32' or 'float64', got None"),
    ({"epsilon": 0}, "epsilon must be a finite number > 0"),
    ({"method": "newton"}, "method='newton' is not supported"),
    ({"lam": -1.0}, "lam must be a finite number >= 0"),
    ({"max_iter": 0}, "max_iter must be a positive integer"),
    ({"epsilon": 1e300}, r"epsilon=1e\+300 is too large for float32 weights"),
    ({"random_state": -1}, r"random_state must be None, an integer in \[0, 2\*\*32 - 1\]"),
])
def test_bad_parameters_raise_at_fit(kw, match):
    X, y = _blobs(m=12)
    clf = NeuralNetClassifier(**kw)  # constructing never validates (scikit-learn convention)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_one_class_is_an_error_naming_it():
    X, _ = _blobs(m=12)
    with pytest.raises(ValueError, match="at least 2 classes in y; got 1 class"):
        NeuralNetClassifier().fit(X, np.full(12, 4))
