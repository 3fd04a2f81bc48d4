"""Fuzz kerust's file loaders (``kerust.saving.load_model`` / ``load_weights``) with hostile files.

The contract: a damaged or hostile file raises ``ValueError`` (or ``OSError``), never another exception type,
and never crashes, aborts or hangs the interpreter. Inputs are whole files; the mutator knows their structure:
it mutates the zip itself, or one member (``config.json`` / ``metadata.json`` as JSON values or as bytes,
``model.weights.h5`` as HDF5 objects through h5py or as bytes) and zips it again with valid checksums, so most
mutations get past the zip layer to the code behind it. ``.weights.h5`` inputs (anything starting with the HDF5
signature) are loaded with ``load_weights`` into every model listed in ``corpus/weights_models.json``.

Two ways to run it (see fuzz/README.md):

* ``python fuzz/fuzz_load.py --plain --seconds 600 --workers 2``: dependency-free. Worker processes run the
  inputs; the supervisor notices a worker that dies (abort, segfault) or hangs, and saves the input it was on.
* ``python fuzz/fuzz_load.py --atheris [libFuzzer flags] fuzz/corpus``: coverage-guided with atheris
  (``pip install atheris``), the same mutator as atheris's custom mutator.

Every input that raised another exception type, crashed or hung is written to the findings folder
(``--findings``, default ``fuzz/findings``) with a ``.txt`` beside it saying what happened.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import warnings
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ZIP_MAGIC = b"PK"
H5_MAGIC = b"\x89HDF\r\n\x1a\n"
ALLOWED = (ValueError, OSError)
SLOW_SECONDS = 20.0  # an input that takes longer counts as a hang

# ---- the mutator -------------------------------------------------------------------------------------------------

INTERESTING_INTS = [0, -1, 1, 2, 3, 7, 255, 256, 65535, 2**31 - 1, 2**31, -(2**31), 2**32, 2**53, 2**62,
                    2**63 - 1, 2**63, 2**64, -(2**63), 10**30]
CLASS_NAMES = ["Dense", "Conv2D", "Flatten", "Dropout", "BatchNormalization", "MaxPooling2D", "AveragePooling2D",
               "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape", "InputLayer", "Activation",
               "Sequential", "Functional", "Lambda", "TFOpLambda", "__import__", "Adam", "SGD", "RMSprop",
               "DTypePolicy", "GlorotUniform", "Zeros", "function", "", "dense"]
STRINGS = ["", "relu", "softmax", "same", "valid", "float32", "float64", "int8", "mixed_float16", "keras",
           "keras.layers", "os", "builtins", "../../etc/passwd", "a" * 300, "\x00", "é", "layers", "vars",
           "channels_first", "categorical_crossentropy", "accuracy", "None"]


def _random_json_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if r < 0.2:
        return rng.choice(INTERESTING_INTS)
    if r < 0.3:
        return rng.choice([0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 5e-324, 1e-45, float("nan"), float("inf"),
                           -float("inf")])
    if r < 0.45:
        return rng.choice(STRINGS + CLASS_NAMES)
    if r < 0.55:
        return rng.choice([None, True, False])
    if r < 0.7 and depth < 3:
        return [_random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if r < 0.8 and depth < 3:
        return {rng.choice(STRINGS + ["class_name", "config", "module", "name", "units", "batch_shape",
                                      "layers", "build_config", "input_shape", "shape"]):
                _random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if r < 0.83:
        return [[[0]]] * rng.randint(0, 3)
    return rng.choice([[], {}, [None], [1, 2], [None, 28, 28, 1], [None, -1], [None, 0], [None, 2**40],
                       {"class_name": rng.choice(CLASS_NAMES), "config": {}}])


def _nodes(value, path=()):
    """Every (path, value) in a JSON tree."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def mutate_json_value(tree, rng: random.Random):
    tree = copy.deepcopy(tree)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        nodes = list(_nodes(tree))
        path, node = rng.choice(nodes)
        op = rng.random()
        if op < 0.4:
            tree = _set(tree, path, _random_json_value(rng))
        elif op < 0.55 and isinstance(node, dict) and node:
            del node[rng.choice(list(node))]
        elif op < 0.65 and isinstance(node, dict):
            node[rng.choice(STRINGS + ["class_name", "config", "trainable", "dtype", "registered_name"])] = \
                _random_json_value(rng)
        elif op < 0.75 and isinstance(node, list) and node:
            i = rng.randrange(len(node))
            if rng.random() < 0.5:
                node.insert(i, copy.deepcopy(node[i]))
            else:
                del node[i]
        elif op < 0.85 and isinstance(node, (int, float)) and not isinstance(node, bool):
            tree = _set(tree, path, rng.choice([node + 1, node - 1, -node, node * 2**20, 0, node / 3]))
        elif op < 0.92 and isinstance(node, str):
            tree = _set(tree, path, rng.choice(CLASS_NAMES + STRINGS))
        else:
            deep = 0
            for _ in range(rng.choice([10, 100, 5000])):
                deep = [deep]
            tree = _set(tree, path, deep)
    return tree


def mutate_bytes(data: bytes, rng: random.Random, max_size: int = 1 << 22) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8])):
        op = rng.random()
        if not buf:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        pos = rng.randrange(len(buf))
        if op < 0.3:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op < 0.5:
            width = rng.choice([1, 2, 4, 8])
            value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
            buf[pos:pos + width] = value.to_bytes(width, rng.choice(["little", "big"]))
        elif op < 0.6:
            buf[pos] = rng.randrange(256)
        elif op < 0.7:
            del buf[pos:pos + rng.randint(1, 64)]
        elif op < 0.8:
            start = rng.randrange(len(buf))
            chunk = buf[start:start + rng.randint(1, 64)]
            buf[pos:pos] = chunk
        elif op < 0.88:
            del buf[rng.randrange(len(buf)):]
        else:
            buf[pos:pos + 1] = bytes([rng.choice([0, 0xFF, 0x7F, 0x80])]) * rng.randint(1, 32)
    return bytes(buf[:max_size])


def mutate_h5(data: bytes, rng: random.Random) -> bytes:
    """Change HDF5 objects through h5py: shapes, dtypes, links, groups, attributes."""
    import h5py
    import numpy as np

    bio = io.BytesIO(data)
    try:
        f = h5py.File(bio, "r+")
    except Exception:  # noqa: BLE001 - an already broken file: mutate its bytes instead
        return mutate_bytes(data, rng)
    with f:
        items: list = []
        f.visititems(lambda name, obj: items.append((name, obj)) and None)
        datasets = [n for n, o in items if isinstance(o, h5py.Dataset)]
        groups = [""] + [n for n, o in items if isinstance(o, h5py.Group)]
        for _ in range(rng.choice([1, 1, 2])):
            op = rng.random()
            try:
                if op < 0.3 and datasets:
                    name = rng.choice(datasets)
                    del f[name]
                    shape = rng.choice([(), (0,), (1,), (3, 3), (2**20, 2**20), (2**31,), (1, 1, 1, 1, 1),
                                        (rng.randint(0, 9), rng.randint(0, 9))])
                    dtype = rng.choice(["f4", "f8", "f2", "i8", "u1", "?", "c8", "S4", h5py.string_dtype(),
                                        h5py.vlen_dtype(np.float32), [("a", "f4"), ("b", "i4")]])
                    if shape and np.prod(shape, dtype=object) > 10**6:
                        f.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * len(shape))
                    elif rng.random() < 0.1:
                        f.create_dataset(name, data=h5py.Empty("f4"))
                    else:
                        f.create_dataset(name, shape=shape, dtype=dtype)
                elif op < 0.45 and items:
                    del f[rng.choice([n for n, _ in items])]
                elif op < 0.55 and datasets:
                    name = rng.choice(datasets)
                    del f[name]
                    f[name] = rng.choice([h5py.SoftLink("/" + rng.choice(groups + datasets + ["nowhere"])),
                                          h5py.ExternalLink("/etc/passwd", "/x"),
                                          h5py.ExternalLink("other.h5", "/layers")])
                elif op < 0.65:
                    group = f[rng.choice(groups)] if groups else f
                    key = rng.choice(["0", "1", "99", "-1", "vars", "layers", "x", "dense_1", "optimizer"])
                    if key not in group:
                        if rng.random() < 0.5:
                            group.create_group(key)
                        else:
                            group.create_dataset(key, data=np.float32(rng.random()))
                elif op < 0.75 and items:
                    name, obj = rng.choice(items)
                    obj.attrs[rng.choice(["name", "dtype", "layer_names", "keras_version", "x"])] = rng.choice(
                        ["", "dense", "a" * 1000, 3, np.float64("nan"), np.arange(3)])
                elif op < 0.85 and len(datasets) >= 2:
                    a, b = rng.sample(datasets, 2)
                    f.move(a, a + "_tmp")
                    f.move(b, a)
                    f.move(a + "_tmp", b)
                elif datasets:
                    name = rng.choice(datasets)
                    ds = f[name]
                    if ds.shape and 0 < ds.size <= 10**6 and ds.dtype.kind in "fiu":
                        arr = ds[()]
                        flat = arr.reshape(-1)
                        flat[rng.randrange(flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e38, -1, 2**31])
                        ds[...] = arr
                    elif ds.shape == () and ds.dtype.kind in "fiu":
                        ds[()] = rng.choice([-1, 0, 2**62, np.nan, np.inf, 1e300]) if ds.dtype.kind == "f" else \
                            rng.choice([-1, 0, 2**62])
            except Exception:  # noqa: BLE001 - h5py refused this edit; keep going
                continue
    return bio.getvalue()


def _zip(members: list, rng: random.Random) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in members:
                zf.writestr(zipfile.ZipInfo(name), data,
                            compress_type=zipfile.ZIP_DEFLATED if rng.random() < 0.2 else zipfile.ZIP_STORED)
    return out.getvalue()


def mutate_keras(data: bytes, rng: random.Random) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    except Exception:  # noqa: BLE001 - not a readable zip any more: bytes only
        return mutate_bytes(data, rng)
    if not members or rng.random() < 0.15:
        return mutate_bytes(data, rng)
    op = rng.random()
    if op < 0.08:  # the archive's member list
        what = rng.random()
        i = rng.randrange(len(members))
        if what < 0.3:
            members[i] = (rng.choice(["../evil", "/abs", "config.json", "model.weights.h5", "x\\y", "",
                                      "model.weights.npz", "assets/a"]), members[i][1])
        elif what < 0.6:
            members.append(members[i])
        else:
            del members[i]
        return _zip(members, rng)
    weights = [i for i, (n, _) in enumerate(members) if n.endswith(".h5")]
    texts = [i for i, (n, _) in enumerate(members) if n.endswith(".json")]
    if weights and (op < 0.55 or not texts):
        i = rng.choice(weights)
        name, blob = members[i]
        members[i] = (name, mutate_h5(blob, rng) if rng.random() < 0.6 else mutate_bytes(blob, rng))
    elif texts:
        i = rng.choice(texts)
        name, blob = members[i]
        try:
            value = json.loads(blob)
            if rng.random() < 0.8:
                blob = json.dumps(mutate_json_value(value, rng)).encode()
            else:
                blob = mutate_bytes(blob, rng)
        except (ValueError, RecursionError):
            blob = mutate_bytes(blob, rng)
        members[i] = (name, blob)
    return _zip(members, rng)


def mutate(data: bytes, rng: random.Random) -> bytes:
    try:
        if data.startswith(H5_MAGIC):
            return mutate_h5(data, rng) if rng.random() < 0.6 else mutate_bytes(data, rng)
        return mutate_keras(data, rng)
    except Exception:  # noqa: BLE001 - h5py/zipfile choked on an input the mutator itself broke earlier
        return mutate_bytes(data, rng)


# ---- running one input -------------------------------------------------------------------------------------------


class MemoryBlowup(Exception):
    """Loading took more than ``BLOWUP_MB`` of memory before it stopped (typically with a failed allocation under
    the workers' address-space limit): the file made something allocate without bound, which the contract
    forbids as much as a crash. (A single absurd allocation that fails at once, without using memory, is fine:
    the loader turns it into ValueError.)"""


BLOWUP_MB = 512


def _reset_peak_rss() -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _run_allowed(call) -> None:
    _reset_peak_rss()
    before = _peak_rss_mb()
    try:
        call()
    except ALLOWED as e:
        grown = _peak_rss_mb() - before
        if grown > BLOWUP_MB:
            raise MemoryBlowup(f"{type(e).__name__} after the process grew by {grown:.0f} MB: {e}") from e


class _Loader:
    """Loads one input the way a user would: a `.keras` path with load_model, a `.weights.h5` path with
    load_weights into each reference model."""

    def __init__(self, workdir: Path) -> None:
        from kerust import saving

        self.saving = saving
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        specs = json.loads((CORPUS / "weights_models.json").read_text())
        self.models = [saving.model_from_config(spec) for spec in specs.values()]

    def run(self, data: bytes) -> None:
        is_h5 = data.startswith(H5_MAGIC)
        path = self.workdir / ("input.weights.h5" if is_h5 else "input.keras")
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if is_h5:
                for model in self.models:
                    _run_allowed(lambda model=model: model.load_weights(path))
            else:
                _run_allowed(lambda: self.saving.load_model(path))


def _corpus() -> list:
    return [p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.suffix in (".keras", ".h5")]


def _save_finding(findings: Path, data: bytes, kind: str, detail: str) -> Path:
    findings.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    suffix = ".weights.h5" if data.startswith(H5_MAGIC) else ".keras"
    path = findings / f"{kind}-{digest}{suffix}"
    path.write_bytes(data)
    path.with_name(path.name + ".txt").write_text(detail)
    return path


# ---- plain mode: supervisor and workers --------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> None:
    """Run mutated inputs until the deadline. The supervisor watches `beat` ("mutating" or "loading", and its
    modification time), `base` (the input being mutated) and `current` (the input being loaded)."""
    state = Path(args.state)
    _limit_memory(args.mem_mb)  # a loader that allocates without bound fails here instead of taking the machine
    warnings.simplefilter("ignore")  # h5py's overflow warnings while mutating, the loader's own warnings
    rng = random.Random(args.seed)
    loader = _Loader(state / "work")
    seeds = _corpus()
    pool = list(seeds)
    execs = 0
    deadline = time.time() + args.seconds
    findings = Path(args.findings)
    while time.time() < deadline:
        base = rng.choice(pool)
        (state / "base").write_bytes(base)
        (state / "beat").write_text("mutating")
        data = base
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = mutate(data, rng)
        (state / "current").write_bytes(data)
        (state / "beat").write_text("loading")
        faulthandler.dump_traceback_later(SLOW_SECONDS / 2, exit=False)  # where a slow input is stuck
        try:
            loader.run(data)
        except BaseException as e:  # noqa: BLE001 - the exceptions the contract forbids
            if isinstance(e, KeyboardInterrupt):
                raise
            detail = f"{type(e).__module__}.{type(e).__name__}: {e}\n\n{traceback.format_exc()}"
            kind = "memory" if isinstance(e, MemoryBlowup) else "exception"
            path = _save_finding(findings, data, kind, detail)
            print(f"FINDING {path.name}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            if kind == "memory":
                break  # a fresh worker: this one's heap is full of the blowup's leftovers
        faulthandler.cancel_dump_traceback_later()
        execs += 1
        # keep some mutants as new bases (a crude corpus that drifts away from the seeds)
        if rng.random() < 0.05:
            pool.append(data)
            if len(pool) > 200:
                pool.pop(len(seeds) + rng.randrange(len(pool) - len(seeds)))
    (state / "beat").write_text("done")
    (state / "stats").write_text(json.dumps({"execs": execs}))


def _supervise(args: argparse.Namespace) -> int:
    import tempfile

    findings = Path(args.findings)
    root = Path(tempfile.mkdtemp(prefix="kerust-fuzz-"))
    end = time.time() + args.seconds
    total_execs = 0
    crashes = 0
    slots: dict = {}
    next_seed = args.seed * 1000

    def start(i: int) -> None:
        nonlocal next_seed
        state = root / f"w{i}-{next_seed}"
        state.mkdir()
        remaining = max(1, int(end - time.time()))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--seed", str(next_seed), "--seconds",
               str(remaining), "--state", str(state), "--findings", str(findings), "--mem-mb", str(args.mem_mb)]
        slots[i] = (subprocess.Popen(cmd, stdout=None if args.verbose else subprocess.DEVNULL), state)
        next_seed += 1

    for i in range(args.workers):
        start(i)
    while slots:
        time.sleep(0.2)
        for i, (proc, state) in list(slots.items()):
            rc = proc.poll()
            try:
                phase = (state / "beat").read_text()
                since = time.time() - (state / "beat").stat().st_mtime
            except OSError:  # not written yet
                phase, since = "", 0.0
            # a worker that dies or hangs while *mutating* (h5py writing a file the mutator broke) is the
            # mutator's problem, not the loader's: saved as "mutator-…" with the input it was mutating
            mutating = phase == "mutating"
            victim = state / ("base" if mutating else "current")
            prefix = "mutator-" if mutating else ""
            if rc is None:
                if phase in ("mutating", "loading") and since > SLOW_SECONDS:
                    proc.kill()
                    proc.wait()
                    data = victim.read_bytes() if victim.exists() else b""
                    path = _save_finding(findings, data, prefix + "hang", f"took more than {SLOW_SECONDS} s")
                    print(f"FINDING {path.name}: hang", flush=True)
                    rc = "hang"
                else:
                    continue
            stats = state / "stats"
            if stats.exists():
                total_execs += json.loads(stats.read_text())["execs"]
            elif rc != "hang":
                crashes += 1
                data = victim.read_bytes() if victim.exists() else b""
                why = f"the worker process died with status {rc}" + (
                    f" (signal {signal.Signals(-rc).name})" if isinstance(rc, int) and rc < 0 else "") + (
                    " while mutating this input" if mutating else "")
                path = _save_finding(findings, data, prefix + "crash", why)
                print(f"FINDING {path.name}: {why}", flush=True)
            del slots[i]
            if time.time() < end - 1:
                start(i)
    summary = {"seconds": args.seconds, "workers": args.workers, "execs": total_execs, "crashes": crashes,
               "findings": sorted(p.name for p in findings.glob("*")) if findings.exists() else []}
    print(json.dumps(summary), flush=True)
    return 0


# ---- atheris mode ------------------------------------------------------------------------------------------------


def _atheris(argv: list) -> None:
    import atheris

    with atheris.instrument_imports():
        import kerust.saving  # noqa: F401

    import tempfile

    loader = _Loader(Path(tempfile.mkdtemp(prefix="kerust-atheris-")))
    seeds = _corpus()

    def test_one_input(data: bytes) -> None:
        loader.run(data)  # anything but ValueError/OSError propagates: atheris reports it and saves the input

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if not data.startswith((ZIP_MAGIC, H5_MAGIC)) or rng.random() < 0.02:
            data = rng.choice(seeds)
        out = mutate(data, rng)
        return out if len(out) <= max_size else out[:max_size]

    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def _limit_memory(mem_mb: int) -> None:
    if mem_mb:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))


def _check(paths: list) -> int:
    """Run saved inputs once each (the regression test's entry point); 1 if any raises a forbidden exception.
    ``--mem-mb N`` first: the address-space limit (default 2048 MiB). After one input blew up memory, the next
    ones' growth is not measured reliably (the heap stays big): check such inputs one per process."""
    import tempfile

    mem_mb = 2048
    if paths[:1] == ["--mem-mb"]:
        mem_mb, paths = int(paths[1]), paths[2:]
    _limit_memory(mem_mb)
    loader = _Loader(Path(tempfile.mkdtemp(prefix="kerust-check-")))
    bad = 0
    for path in paths:
        try:
            loader.run(Path(path).read_bytes())
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            bad += 1
            print(f"{Path(path).name}: {type(e).__module__}.{type(e).__name__}: {e}", flush=True)
    return 1 if bad else 0


def main() -> int:
    if sys.argv[1:2] == ["--check"]:
        return _check(sys.argv[2:])
    if "--atheris" in sys.argv:
        argv = [a for a in sys.argv if a != "--atheris"]
        if not any(a.startswith("-max_len") for a in argv):
            argv.insert(1, "-max_len=4194304")
        _atheris(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plain", action="store_true", help="dependency-free mode (the default)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--findings", default=str(HERE / "findings"))
    parser.add_argument("--verbose", action="store_true", help="show the workers' output")
    parser.add_argument("--mem-mb", type=int, default=6144,
                        help="address-space limit of each worker in MiB (0: none); default %(default)s")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
