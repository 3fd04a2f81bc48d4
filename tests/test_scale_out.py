"""Scale-out on one machine: many small trainings in parallel processes, one kerust thread each.

Each trial is trained in a worker process (joblib's loky backend, ``concurrent.futures.ProcessPoolExecutor``,
scikit-learn's ``n_jobs``) and must give bit-identical losses, weights and predictions to the same trial run
serially in this process on another thread count (kerust is deterministic given a seed, whatever the thread
count), and every worker must have computed on exactly one kerust thread."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Tuple

import kerust
import numpy as np
import pytest
from kerust import layers

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process pools are exercised on POSIX here")

# (seed, width) of each trial
TRIALS: List[Tuple[int, int]] = [(1, 8), (2, 8), (3, 16), (4, 16)]


def _data() -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    return x, y


def trial(seed: int, width: int, threads: Optional[int] = 1) -> Dict[str, Any]:
    """One training trial, as a tuning script would run it in a worker: one kerust thread (``threads=None``
    leaves the count as the process has it), a fixed seed, a tiny model."""
    if threads is not None:
        kerust.config.set_num_threads(threads)
    kerust.utils.set_random_seed(seed)
    x, y = _data()
    model = kerust.Sequential([kerust.Input((6,)), layers.Dense(width, activation="relu"), layers.Dropout(0.2),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return {"seed": seed, "width": width, "threads": kerust.config.get_num_threads(), "pid": os.getpid(),
            "loss": history.history["loss"], "weights": model.get_weights(), "pred": model.predict(x, verbose=0)}


def report_threads() -> Tuple[int, int]:
    return os.getpid(), kerust.config.get_num_threads()


@pytest.fixture
def serial() -> Iterator[Dict[Tuple[int, int], Dict[str, Any]]]:
    """Every trial run here, in this process, on 3 threads (not the workers' 1)."""
    before = kerust.config.get_num_threads()
    kerust.config.set_num_threads(3)
    try:
        yield {(s, w): trial(s, w, threads=None) for s, w in TRIALS}
    finally:
        kerust.config.set_num_threads(before)
    assert kerust.config.get_num_threads() == before


def _check_same(results: List[Dict[str, Any]], serial: Dict[Tuple[int, int], Dict[str, Any]]) -> None:
    assert sorted((r["seed"], r["width"]) for r in results) == sorted(TRIALS)
    for r in results:
        ref = serial[(r["seed"], r["width"])]
        assert r["pid"] != os.getpid(), "the trial ran in this process, not in a worker"
        assert r["threads"] == 1
        assert ref["threads"] == 3
        assert r["loss"] == ref["loss"]  # exact float equality
        assert len(r["weights"]) == len(ref["weights"]) == 4
        for a, b in zip(r["weights"], ref["weights"]):
            assert np.array_equal(a, b)
        assert np.array_equal(r["pred"], ref["pred"])
    # the trials are really different from each other (seeds and widths matter)
    losses = {tuple(r["loss"]) for r in results}
    assert len(losses) == len(TRIALS)


def test_joblib_loky_workers_train_with_one_thread_and_match_serial(serial: Dict) -> None:
    joblib = pytest.importorskip("joblib")
    results = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(trial)(s, w) for s, w in TRIALS)
    _check_same(results, serial)


def test_process_pool_with_a_one_thread_initializer_matches_serial(serial: Dict) -> None:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as on macOS/Windows
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=kerust.config.set_num_threads,
                             initargs=(1,)) as pool:
        # threads=None: the trial itself does not touch the count; the initializer set it for the worker
        futures = [pool.submit(trial, s, w, None) for s, w in TRIALS]
        results = [f.result(timeout=120) for f in futures]
    _check_same(results, serial)


def test_workers_inherit_rayon_num_threads(monkeypatch: pytest.MonkeyPatch, serial: Dict) -> None:
    """The other way to give each worker one thread: RAYON_NUM_THREADS=1 in the environment the workers start
    from (kerust reads it when a process first computes); the trial itself does not set a count."""
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pid, threads = pool.submit(report_threads).result(timeout=120)
        result = pool.submit(trial, 2, 8, None).result(timeout=120)
    assert pid != os.getpid() and threads == 1
    assert result["threads"] == 1 and result["pid"] == pid
    assert result["loss"] == serial[(2, 8)]["loss"]
    assert np.array_equal(result["pred"], serial[(2, 8)]["pred"])


def named_by_threads(n_features_in: int, hidden: int = 8) -> kerust.Sequential:
    """A model function for the scikit-learn wrapper that records, in the model's name, the kerust thread count
    and process it was built in (the name survives the trip back to the parent in the .keras bytes)."""
    model = kerust.Sequential([kerust.Input((n_features_in,)), layers.Dense(hidden, activation="relu"),
                               layers.Dense(2, activation="softmax")],
                              name=f"threads{kerust.config.get_num_threads()}_pid{os.getpid()}")
    model.compile(optimizer=kerust.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    return model


def test_sklearn_n_jobs_with_one_thread_per_worker_matches_in_process() -> None:
    pytest.importorskip("sklearn")
    from kerust.wrappers import KerasClassifier
    from sklearn.model_selection import GridSearchCV, cross_validate

    x, y = _data()
    clf = KerasClassifier(named_by_threads, hidden=8, epochs=3, random_state=0, num_threads=1)
    par = cross_validate(clf, x, y, cv=3, n_jobs=2, return_estimator=True)
    seq = cross_validate(clf.set_params(num_threads=3), x, y, cv=3, n_jobs=1, return_estimator=True)
    assert np.array_equal(par["test_score"], seq["test_score"])
    for p, s in zip(par["estimator"], seq["estimator"]):
        assert p.model_.name.startswith("threads1_pid") and p.model_.name != f"threads1_pid{os.getpid()}"
        assert s.model_.name == f"threads3_pid{os.getpid()}"
        assert np.array_equal(p.predict_proba(x), s.predict_proba(x))
    grid = {"hidden": [4, 8], "epochs": [1, 3]}
    g_par = GridSearchCV(clf.set_params(num_threads=1), grid, cv=3, n_jobs=2).fit(x, y)
    g_seq = GridSearchCV(clf.set_params(num_threads=None), grid, cv=3, n_jobs=1).fit(x, y)
    assert np.array_equal(g_par.cv_results_["mean_test_score"], g_seq.cv_results_["mean_test_score"])
    assert g_par.best_params_ == g_seq.best_params_
