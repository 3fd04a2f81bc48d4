"""Saves that fail: a full disk and a read-only folder.

Every way kerust writes a user's file (``model.save``, ``model.save_weights``, ``kerust.saving.save_model``,
``ModelCheckpoint`` in its modes, ``BackupAndRestore``, ``kerust.onnx.export``) goes through
``kerust._files.atomic_write``: the new bytes are built in memory, written to a temporary file beside the target,
fsynced and renamed over it. So a save that cannot be written must raise ``OSError`` and leave the previous file
byte for byte, loadable with its old weights, and no temporary file.

How the faults are made, each in its own process (forked from one ``sys.executable`` child that imported kerust
once) so that the limits do not reach pytest:

- **Disk full**: ``resource.setrlimit(RLIMIT_FSIZE, ...)`` set after the previous file exists, below the size of
  the new one. The kernel then refuses the write past the limit with ``EFBIG`` (and sends ``SIGXFSZ``, which
  CPython ignores at start-up: checked below, since otherwise the child would die instead of raising).
- **Read-only folder**: the folder is made ``0o555`` after the previous file exists. Root ignores permission bits
  (``CAP_DAC_OVERRIDE``), so when the tests run as root the child first gives the folder to ``nobody`` (65534)
  and drops to that user with ``setgroups``/``setgid``/``setuid`` (which clears the capabilities): then the
  ``0o555`` bits are what refuses the write, as for any user. The child checks that creating a file there really
  fails before it saves, so these tests cannot pass by accident.

``CSVLogger`` is not a save: as in Keras it opens its file when training begins and streams one row per epoch, so
a full disk stops it with ``OSError`` (checked) but its file is not kept whole. A save interrupted by an exception
while the model is being serialised, or by ``KeyboardInterrupt`` while the bytes are written, leaves the old file
too (in-process tests at the end)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")
resource = pytest.importorskip("resource")  # POSIX only

import kerust  # noqa: E402
from kerust import layers, saving  # noqa: E402

NOBODY = 65534
TEMP = re.compile(r"^\..*\.[0-9a-f]{16}\.tmp$")  # the name atomic_write gives its temporary file

pytestmark = pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX file limits and users")

# ---- the child process -----------------------------------------------------------------------------------------
# It makes the previous file, records its hash and the weights it holds (in `side`, a folder that is not limited),
# turns the fault on, attempts the new save and prints one JSON line: what was raised and what the folder holds.
CHILD = textwrap.dedent(r"""
    import errno, hashlib, json, os, resource, signal, sys, tempfile, traceback
    import numpy as np
    import kerust
    from kerust import layers


    def model(width, seed):
        kerust.utils.set_random_seed(seed)
        m = kerust.Sequential([kerust.Input((3,)), layers.Dense(width, activation="relu", name="hidden"),
                               layers.Dense(1, name="out")])
        m.compile(optimizer="sgd", loss="mse")
        return m


    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    # Everything the saves import lazily is imported now: once a child is `nobody` it cannot read /root.
    import csv, datetime, h5py, io, secrets, shutil, zipfile  # noqa: F401
    with tempfile.TemporaryDirectory() as warm_dir:
        warm = model(2, 0)
        warm.fit(x, y, epochs=1, verbose=0, callbacks=[kerust.callbacks.BackupAndRestore(warm_dir + "/b"),
                                                       kerust.callbacks.CSVLogger(warm_dir + "/log.csv")])
        warm.save(os.path.join(warm_dir, "warm.keras"))
        warm.save_weights(os.path.join(warm_dir, "warm.weights.h5"))
        kerust.saving.load_model(os.path.join(warm_dir, "warm.keras"))
        try:
            import onnx  # noqa: F401
            import kerust.onnx
            kerust.onnx.export(warm, os.path.join(warm_dir, "warm.onnx"))
        except ImportError:
            pass


    def scenario(spec):
        kind, fault, folder, side = spec["kind"], spec["fault"], spec["folder"], spec["side"]
        report = {"sigxfsz_ignored": signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN}

        def sha(path):
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()

        def fault_on(previous, new_size=None):
            # the previous files are complete: note what they hold, then make the folder refuse the new one
            report["before"] = {os.path.relpath(p, folder): sha(p) for p in previous}
            if fault == "fsize":
                limit = max(os.path.getsize(p) for p in previous) // 2 if new_size is None else new_size // 2
                if new_size is not None:  # the previous file fits under the limit, the new (bigger) one does not
                    limit = max(limit, max(os.path.getsize(p) for p in previous) + 1)
                    assert limit < new_size, (limit, new_size)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
                report["limit"] = limit
            else:
                ro = spec["ro_folder"]
                if os.geteuid() == 0:  # root ignores 0o555: become `nobody`, the folder's owner
                    os.chown(ro, 65534, 65534)
                    os.chmod(ro, 0o555)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                else:
                    os.chmod(ro, 0o555)
                try:  # the folder must really refuse a new file
                    fd = os.open(os.path.join(ro, ".probe"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except PermissionError:
                    report["refuses_new_files"] = True
                else:
                    os.close(fd)
                    os.unlink(os.path.join(ro, ".probe"))
                    report["refuses_new_files"] = False

        class FaultAfter(kerust.callbacks.Callback):
            # after epoch `epoch`'s end (the callbacks before it in the list have saved): note the weights, fault on
            def __init__(self, epoch, previous):
                super().__init__()
                self.epoch, self.previous = epoch, previous

            def on_epoch_end(self, epoch, logs=None):
                if epoch == self.epoch:
                    np.savez(os.path.join(side, "expected.npz"), *self.model.get_weights())
                    fault_on([os.path.join(folder, p) for p in self.previous])

        class Score(kerust.callbacks.Callback):
            # a monitored value that improves every epoch, so that save_best_only saves every epoch
            def on_epoch_end(self, epoch, logs=None):
                logs["score"] = float(epoch)

        try:
            if kind in ("save", "save_model", "save_weights", "onnx"):
                ext = {"save": ".keras", "save_model": ".keras", "save_weights": ".weights.h5", "onnx": ".onnx"}[kind]
                target = os.path.join(folder, "m" + ext)
                old = model(4, 1)
                old.fit(x, y, epochs=1, verbose=0)
                np.savez(os.path.join(side, "expected.npz"), *old.get_weights())
                # the new model is bigger (weights files: the same model, so it loads into the old architecture)
                new = model(4, 2) if kind == "save_weights" else model(64, 2)
                scratch = os.path.join(side, "new" + ext)
                write = {"save": lambda m, p: m.save(p),
                         "save_model": lambda m, p: kerust.saving.save_model(m, p),
                         "save_weights": lambda m, p: m.save_weights(p),
                         "onnx": lambda m, p: kerust.onnx.export(m, p)}[kind]
                write(old, target)
                write(new, scratch)
                fault_on([target], None if kind == "save_weights" else os.path.getsize(scratch))
                write(new, target)
            elif kind.startswith("checkpoint"):
                mode = kind.split(":")[1]
                name = {"every": "ckpt.keras", "best": "ckpt.keras", "weights": "ckpt.weights.h5",
                        "named": "ckpt-{epoch}.keras"}[mode]
                ckpt = kerust.callbacks.ModelCheckpoint(os.path.join(folder, name), save_best_only=mode == "best",
                                                        monitor="score", mode="max",
                                                        save_weights_only=mode == "weights")
                previous = [name.format(epoch=1)]
                model(4, 1).fit(x, y, epochs=3, verbose=0, callbacks=[Score(), ckpt, FaultAfter(0, previous)])
            elif kind.startswith("backup"):
                double = kind == "backup:double"
                backup = os.path.join(folder, "backup")
                os.makedirs(backup)
                spec["ro_folder"] = backup
                previous = ["backup/latest.weights.h5", "backup/training_metadata.json"]
                if double:  # after epoch 1 the .bkp files hold epoch 0's backup: a failed copy must keep them
                    previous += ["backup/latest.weights.h5.bkp", "backup/training_metadata.json.bkp"]
                cb = kerust.callbacks.BackupAndRestore(backup, double_checkpoint=double)
                model(4, 1).fit(x, y, epochs=4, verbose=0, callbacks=[cb, FaultAfter(1 if double else 0, previous)])
            elif kind == "csv":
                path = os.path.join(folder, "log.csv")

                class FaultAfterFirstRow(kerust.callbacks.Callback):
                    def on_epoch_end(self, epoch, logs=None):
                        if epoch == 0:
                            fault_on([path])

                model(4, 1).fit(x, y, epochs=6, verbose=0,
                                callbacks=[kerust.callbacks.CSVLogger(path), FaultAfterFirstRow()])
            else:
                raise ValueError(kind)
            report["raised"] = None
        except BaseException as exc:
            report["raised"] = [c.__name__ for c in type(exc).__mro__]
            report["errno"] = getattr(exc, "errno", None)
            report["message"] = str(exc)
        report["listing"] = sorted(os.path.relpath(os.path.join(d, f), folder)
                                   for d, _, files in os.walk(folder) for f in files)
        return report


    # The zygote: for each spec on stdin, a forked child (no Python start-up) runs it, its limits and user dropped
    # with it; the zygote then says how the child ended.
    print("READY", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                print("REPORT " + json.dumps(scenario(json.loads(line))), flush=True)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {status}", flush=True)
""")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Zygote:
    """The child process: kerust imported once; each scenario runs in a process forked from it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._stderr = open(log, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        assert self._line() == "READY", self.log.read_text()[-3000:]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the child process died: {self.log.read_text()[-3000:]}"
        return line.rstrip("\n")

    def run(self, spec: dict) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        report = None
        while True:
            line = self._line()
            if line.startswith("REPORT "):
                report = json.loads(line[len("REPORT "):])
            elif line.startswith("EXIT "):
                status = int(line[len("EXIT "):])
                break
        # a child killed by SIGXFSZ (or anything else) crashed: not an error the user can catch
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
            f"the save's process ended with wait status {status}: {self.log.read_text()[-3000:]}"
        assert report is not None
        assert report["sigxfsz_ignored"], "CPython ignores SIGXFSZ; then a write past RLIMIT_FSIZE raises EFBIG"
        return report

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self._stderr.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = _Zygote(tmp_path_factory.mktemp("zygote") / "stderr.txt")
    yield z
    z.close()


@pytest.fixture
def folders(tmp_path):
    """(folder, side): the folder the saves write to and an unlimited one for the child's notes.

    As root the child becomes `nobody`, who must reach both: pytest's tmp_path lies under a 0o700 folder, so they
    are made in a fresh temporary folder that others may traverse (0o711), removed afterwards."""
    if os.geteuid() != 0:
        folder, side = tmp_path / "target", tmp_path / "side"
        folder.mkdir()
        side.mkdir()
        yield folder, side
        for d, dirs, _ in os.walk(folder):  # pytest must be able to remove it
            for name in [d, *(os.path.join(d, x) for x in dirs)]:
                os.chmod(name, 0o755)
        return
    base = Path(tempfile.mkdtemp(prefix="kerust-save-faults-"))
    try:
        os.chmod(base, 0o711)
        folder, side = base / "target", base / "side"
        folder.mkdir()
        side.mkdir()
        os.chmod(folder, 0o755)
        os.chmod(side, 0o777)  # the child, as nobody, writes its notes here before the fault
        yield folder, side
    finally:
        shutil.rmtree(base)


def _check_fault(report: dict, fault: str) -> None:
    assert report["raised"] is not None, f"the save did not fail: {report}"
    assert "OSError" in report["raised"], f"a failed save must raise OSError, not {report['raised'][0]}: {report}"
    if fault == "fsize":
        assert report["errno"] == errno.EFBIG, report
    else:
        assert report["refuses_new_files"] is True, report
        assert report["errno"] in (errno.EACCES, errno.EPERM, errno.EROFS), report
        assert "PermissionError" in report["raised"] or report["errno"] == errno.EROFS, report


def _check_previous_files(folder: Path, report: dict) -> None:
    for rel, digest in report["before"].items():
        assert (folder / rel).exists(), f"{rel} was removed by the failed save"
        assert _sha(folder / rel) == digest, f"{rel} changed although the save failed"
    leftovers = [p for p in report["listing"] if TEMP.match(os.path.basename(p))]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert sorted(report["listing"]) == sorted(report["before"]), report["listing"]


def _expected(side: Path) -> list:
    with np.load(side / "expected.npz") as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _same_weights(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(a), b)


def _small_model(width: int = 4) -> kerust.Sequential:
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(width, activation="relu", name="hidden"),
                           layers.Dense(1, name="out")])
    m.compile(optimizer="sgd", loss="mse")
    return m


FAULTS = ["fsize", "readonly"]


def _spec(kind: str, fault: str, folder: Path, side: Path) -> dict:
    return {"kind": kind, "fault": fault, "folder": str(folder), "side": str(side), "ro_folder": str(folder)}


# ---- model.save, saving.save_model, model.save_weights, onnx.export ------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", ["save", "save_model"])
def test_keras_file_save_that_fails_keeps_the_previous_file(kind, fault, folders, zygote):
    folder, side = folders
    report = zygote.run(_spec(kind, fault, folder, side))
    _check_fault(report, fault)
    _check_previous_files(folder, report)
    loaded = kerust.saving.load_model(folder / "m.keras")
    assert loaded.layers[0].units == 4  # the old model, not the new 64-unit one
    _same_weights(loaded.get_weights(), _expected(side))


@pytest.mark.parametrize("fault", FAULTS)
def test_weights_file_save_that_fails_keeps_the_previous_file(fault, folders, zygote):
    folder, side = folders
    report = zygote.run(_spec("save_weights", fault, folder, side))
    _check_fault(report, fault)
    _check_previous_files(folder, report)
    m = _small_model()
    m.load_weights(folder / "m.weights.h5")
    _same_weights(m.get_weights(), _expected(side))


@pytest.mark.parametrize("fault", FAULTS)
def test_onnx_export_that_fails_keeps_the_previous_file(fault, folders, zygote):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    folder, side = folders
    report = zygote.run(_spec("onnx", fault, folder, side))
    _check_fault(report, fault)
    _check_previous_files(folder, report)
    proto = onnx.load(str(folder / "m.onnx"))
    onnx.checker.check_model(proto)
    held = sorted((numpy_helper.to_array(t) for t in proto.graph.initializer), key=lambda a: (a.shape, a.sum()))
    old = _expected(side)
    # the old model's four weights are among the initializers (Dense kernels, biases), the new 64-unit ones not
    for w in old:
        assert any(h.shape == w.shape and np.array_equal(h, w) for h in held), w.shape
    assert not any(64 in h.shape for h in held)


# ---- callbacks -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("mode", ["every", "best", "weights", "named"])
def test_model_checkpoint_that_fails_keeps_the_previous_checkpoint(mode, fault, folders, zygote):
    folder, side = folders
    report = zygote.run(_spec(f"checkpoint:{mode}", fault, folder, side))
    _check_fault(report, fault)
    # "named" writes ckpt-2.keras next: it must not exist, even partly
    _check_previous_files(folder, report)
    (name,) = report["before"]
    if mode == "weights":
        m = _small_model()
        m.load_weights(folder / name)
    else:
        m = kerust.saving.load_model(folder / name)
    _same_weights(m.get_weights(), _expected(side))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("double", [False, True], ids=["single", "double_checkpoint"])
def test_backup_and_restore_that_fails_keeps_the_previous_backup(double, fault, folders, zygote):
    folder, side = folders
    report = zygote.run(_spec("backup:double" if double else "backup:single", fault, folder, side))
    _check_fault(report, fault)
    _check_previous_files(folder, report)
    finished = 2 if double else 1
    meta = json.loads((folder / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == finished
    if os.geteuid() == 0:
        os.chown(folder / "backup", 0, 0)
    os.chmod(folder / "backup", 0o755)
    # a new fit resumes from that backup: the weights of the last finished epoch, the next epoch
    m = _small_model()
    seen = []
    resume = kerust.callbacks.BackupAndRestore(folder / "backup", double_checkpoint=double)
    probe = kerust.callbacks.LambdaCallback(on_train_begin=lambda logs: seen.append(m.get_weights()),
                                            on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    m.fit(x, x.sum(axis=1, keepdims=True), epochs=finished + 1, verbose=0, callbacks=[resume, probe])
    _same_weights(seen[0], _expected(side))
    assert seen[1:] == [finished]


def test_csv_logger_on_a_full_disk_raises_oserror(folders, zygote):
    """Not a save (Keras streams the rows to a file opened when training begins): the row that does not fit raises
    OSError (EFBIG), it does not crash the process."""
    folder, side = folders
    report = zygote.run(_spec("csv", "fsize", folder, side))
    _check_fault(report, "fsize")
    assert report["listing"] == ["log.csv"]


def test_child_faults_are_real(folders):
    """The mechanisms themselves: with the limit on, a plain write past it fails with EFBIG in the child; as
    `nobody` (or the owner, when not root) a 0o555 folder refuses a new file (checked inside the child too)."""
    folder, side = folders
    script = textwrap.dedent("""
        import errno, os, resource, signal, sys
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        try:
            with open(sys.argv[1], "wb") as f:
                f.write(b"x" * 1000)
        except OSError as e:
            print("errno", e.errno)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(folder / "big.bin")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"errno {errno.EFBIG}", done
    assert (folder / "big.bin").stat().st_size == 100
    assert signal.SIGXFSZ in signal.valid_signals()


# ---- exceptions while serialising / writing (in process) ---------------------------------------------------------
def _old_and_new(path: Path, write) -> tuple:
    old = _small_model()
    old.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=1, verbose=0)
    write(old, path)
    new = _small_model()
    return old, new, path.read_bytes()


@pytest.mark.parametrize("kind", ["save", "save_weights"])
def test_exception_while_serialising_keeps_the_previous_file(kind, tmp_path, monkeypatch):
    path = tmp_path / ("m.keras" if kind == "save" else "m.weights.h5")
    write = (lambda m, p: m.save(p)) if kind == "save" else (lambda m, p: m.save_weights(p))
    old, new, before = _old_and_new(path, write)
    original = saving._write_weights

    def half_written(f, model):  # the in-memory HDF5 file is written, then serialisation fails
        original(f, model)
        raise RuntimeError("serialisation failed (simulated)")

    monkeypatch.setattr(saving, "_write_weights", half_written)
    with pytest.raises(RuntimeError, match="simulated"):
        write(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    if kind == "save":
        _same_weights(kerust.saving.load_model(path).get_weights(), old.get_weights())


def test_exception_in_a_layer_config_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    old, new, before = _old_and_new(path, lambda m, p: m.save(p))

    def broken(self):
        raise ValueError("get_config failed (simulated)")

    monkeypatch.setattr(type(new.layers[0]), "get_config", broken)
    with pytest.raises(ValueError, match="simulated"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]


@pytest.mark.parametrize("kind", ["save", "save_weights", "checkpoint"])
def test_keyboard_interrupt_while_writing_keeps_the_previous_file(kind, tmp_path, monkeypatch):
    """Interrupted after the temporary file is written, before it is renamed: the interrupt propagates, the
    temporary file is removed, the old file stays."""
    path = tmp_path / ("m.weights.h5" if kind == "save_weights" else "m.keras")
    write = (lambda m, p: m.save_weights(p)) if kind == "save_weights" else (lambda m, p: m.save(p))
    old, new, before = _old_and_new(path, write)
    seen = []

    def interrupted(fd):
        seen.append(sorted(os.listdir(tmp_path)))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if kind == "checkpoint":
            new.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=1, verbose=0,
                    callbacks=[kerust.callbacks.ModelCheckpoint(path)])
        else:
            write(new, path)
    monkeypatch.undo()
    assert len(seen[0]) == 2 and any(TEMP.match(n) for n in seen[0])  # the temporary file existed
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    if kind != "save_weights":
        _same_weights(kerust.saving.load_model(path).get_weights(), old.get_weights())
