"""Files under hostile conditions.

1. Crash safety: a process SIGKILLed at random moments while it saves over an existing ``.keras`` or
   ``.weights.h5`` file leaves the old or the new file, complete, never a broken one. A killed save may leave its
   temporary file behind, always named ``.<file name>.<16 hex digits>.tmp`` beside the target; a save that
   finishes leaves none.
2. Hostile files: every input the fuzzer (``fuzz/``) ever found is kept in ``tests/fuzz_regressions/`` and must
   raise ValueError or OSError; a short fuzzing run (about 10 s, a subprocess so that an abort is caught) runs here.

``KERUST_LONG_TESTS=1`` makes the kill loop and the fuzzing run longer (see README.md, "Guarantees")."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import kerust  # noqa: E402
from kerust import layers, saving  # noqa: E402

LONG = os.environ.get("KERUST_LONG_TESTS", "") not in ("", "0")
HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
REGRESSIONS = HERE.parent / "fuzz_regressions"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() and SIGKILL")


def _temp_pattern(target: Path) -> re.Pattern:
    """The name ``saving._atomic_write`` gives its temporary file."""
    return re.compile(r"^\." + re.escape(target.name) + r"\.[0-9a-f]{16}\.tmp$")


# ---- the saver process -------------------------------------------------------------------------------------------


def _model(seed: int):
    kerust.utils.set_random_seed(seed)
    m = kerust.Sequential([kerust.Input((784,)), layers.Dense(512, activation="relu"), layers.Dense(10,
                                                                                               activation="softmax")])
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(seed).random((8, 784)).astype("float32")
    m.train_on_batch(x, kerust.utils.to_categorical(np.arange(8) % 10, 10))  # optimizer slots exist
    return m


def _probe() -> np.ndarray:
    return np.random.default_rng(99).random((16, 784)).astype("float32")


def _saver_main(folder: str, kind: str) -> None:
    """A zygote: on each "go" it forks a child that saves models A and B alternately over one path forever;
    the test SIGKILLs that child. Forking skips Python start-up for every kill."""
    target = os.path.join(folder, "model.keras" if kind == "keras" else "model.weights.h5")
    models = [_model(1), _model(2)]

    def save(m) -> None:
        if kind == "keras":
            m.save(target)
        else:
            m.save_weights(target)

    np.savez(os.path.join(folder, "expected.npz"), a=models[0].predict(_probe(), verbose=0),
             b=models[1].predict(_probe(), verbose=0))
    save(models[0])
    print("ready", flush=True)
    while sys.stdin.readline().strip() == "go":
        start = int(time.time() * 1000) % 2  # which model the child writes first
        pid = os.fork()
        if pid == 0:
            try:
                i = start
                while True:
                    save(models[i % 2])
                    i += 1
            finally:
                os._exit(3)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"dead {status}", flush=True)


# ---- the test ----------------------------------------------------------------------------------------------------


def _load_prediction(path: Path, kind: str) -> np.ndarray:
    if kind == "keras":
        model = saving.load_model(path)
    else:
        model = _model(3)
        model.load_weights(path)
    return model.predict(_probe(), verbose=0)


@pytest.mark.parametrize("kind", ["keras", "weights"])
def test_sigkill_while_saving_leaves_the_old_or_the_new_file(kind, tmp_path):
    kills = 60 if LONG else 20
    rng = random.Random(20240611 + (kind == "weights"))
    target = tmp_path / ("model.keras" if kind == "keras" else "model.weights.h5")
    temp = _temp_pattern(target)
    proc = subprocess.Popen([sys.executable, str(HERE), "saver", str(tmp_path), kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    child = None
    seen = {"a": 0, "b": 0}
    leftovers = 0
    try:
        assert proc.stdout.readline().strip() == "ready", "the saver did not start"
        with np.load(tmp_path / "expected.npz") as f:
            expected = {"a": f["a"], "b": f["b"]}
        for i in range(kills):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline().split()
            assert line[0] == "pid", line
            child = int(line[1])
            time.sleep(rng.uniform(0.0, 0.15))
            os.kill(child, signal.SIGKILL)
            status = proc.stdout.readline().split()
            child = None
            assert status[0] == "dead" and os.WIFSIGNALED(int(status[1])), f"the saver child exited by itself: {status}"
            # the file is one of the two complete versions
            try:
                got = _load_prediction(target, kind)
            except Exception as e:  # noqa: BLE001 - any failure to load is the bug this test looks for
                pytest.fail(f"kill {i}: the file is broken after SIGKILL during a save: {type(e).__name__}: {e}")
            match = [k for k, v in expected.items() if np.array_equal(got, v)]
            assert match, f"kill {i}: the file loads but holds neither version"
            seen[match[0]] += 1
            # nothing else beside it but the saver's temporary files
            for entry in os.listdir(tmp_path):
                if entry in (target.name, "expected.npz"):
                    continue
                assert temp.match(entry), f"kill {i}: unexpected file {entry!r} left beside the target"
                leftovers += 1
                os.unlink(tmp_path / entry)
        assert seen["a"] and seen["b"], f"the kills never caught one of the versions: {seen}"
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
        proc.stdin.close()
        proc.wait(30)
    print(f"{kind}: {kills} kills, versions found {seen}, temporary files left by killed saves: {leftovers}")
    # saves that finish leave no temporary file
    model = _model(4)
    for _ in range(3):
        if kind == "keras":
            model.save(target)
        else:
            model.save_weights(target)
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, "expected.npz"])


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "m.keras"
    old = _model(1)
    old.save(target)
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        _model(2).save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]


# ---- hostile files -----------------------------------------------------------------------------------------------


def _regression_inputs() -> list:
    if not REGRESSIONS.is_dir():
        return []
    return sorted(p for p in REGRESSIONS.iterdir() if p.name.endswith((".keras", ".h5")))


def test_fuzz_regression_inputs_raise_value_or_os_error():
    """Each file in tests/fuzz_regressions/ once made the loader raise another exception type (or crash): all are
    loaded as the fuzzer loads them (``.keras`` with load_model, ``.weights.h5`` with load_weights into each
    corpus model), in a subprocess under a 2 GiB address-space limit, so that a crash or a runaway allocation
    fails this test instead of the test run."""
    paths = _regression_inputs()
    assert paths, f"no regression inputs in {REGRESSIONS}"
    proc = subprocess.run([sys.executable, str(REPO / "fuzz" / "fuzz_load.py"), "--check", *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


def test_known_hdf5_memory_blowups_are_refused_without_running_out_of_memory():
    """These files make libhdf5 allocate without bound while listing a group. The loader walks every HDF5
    file in a forked child under a 1 GiB limit first, so they are refused with a ValueError. The test process
    itself runs under a 4 GiB safety limit, so a regression fails here instead of taking the machine."""
    paths = sorted((REGRESSIONS / "known_hdf5_blowups").glob("*.h5"))
    assert paths
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "from kerust import saving\n"
        "try:\n"
        "    saving._open_h5_path(sys.argv[1])\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
        "    sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    for path in paths:
        proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                              timeout=180, check=False)
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "HDF5 structure is malformed" in proc.stdout


def test_short_fuzzing_run_finds_nothing(tmp_path):
    seconds = 120 if LONG else 10
    harness = REPO / "fuzz" / "fuzz_load.py"
    if not harness.is_file():
        pytest.skip("fuzz/fuzz_load.py not found")
    proc = subprocess.run(
        [sys.executable, str(harness), "--plain", "--seconds", str(seconds), "--seed", "1", "--workers", "1",
         "--mem-mb", "2048", "--findings", str(tmp_path / "findings")],
        capture_output=True, text=True, timeout=seconds + 120, check=False)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    folder = tmp_path / "findings"
    # "mutator-…": h5py died while the mutator rewrote a broken file, which says nothing about the loader
    found = sorted(f for f in os.listdir(folder) if not f.startswith("mutator-")) if folder.exists() else []
    assert not found, f"the fuzzer found inputs with a wrong exception or a crash: {found}\n{proc.stdout[-3000:]}"


if __name__ == "__main__":
    if sys.argv[1] == "saver":
        _saver_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
