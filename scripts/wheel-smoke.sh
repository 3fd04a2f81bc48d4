#!/usr/bin/env bash
# Build the release wheel, check what it is (abi3, manylinux x86-64, numpy and h5py its only requirements,
# under 5 MB), install it into a brand-new virtualenv and run scripts/wheel_smoke.py there.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
maturin build --release --quiet --out "$work/dist"
wheel="$(ls "$work"/dist/kerust-*.whl)"
name="$(basename "$wheel")"
size=$(stat -c %s "$wheel")
echo "wheel: $name, $size bytes"
case "$name" in
  *-cp39-abi3-manylinux_*_x86_64.whl) ;;
  *) echo "wheel-smoke: expected an abi3 cp39 manylinux x86-64 wheel, got $name" >&2; exit 1 ;;
esac
if [ "$size" -ge $((5 * 1024 * 1024)) ]; then
  echo "wheel-smoke: the wheel is $size bytes, over the 5 MB target" >&2; exit 1
fi
requires="$(python - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
print(" ".join(sorted(l.split(":", 1)[1].split(">=")[0].strip() for l in lines
                      if l.startswith("Requires-Dist:") and "extra ==" not in l)))
PY
)"
if [ "$requires" != "h5py numpy" ]; then
  echo "wheel-smoke: runtime requirements should be numpy and h5py only, got: $requires" >&2; exit 1
fi
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"
(cd "$work" && "$work/venv/bin/python" "$OLDPWD/scripts/wheel_smoke.py")
