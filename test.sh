#!/usr/bin/env bash
# Set up and run every test: formatting and lints, Rust unit tests, the Python suite against a release build
# (notebook, docs site, typing, scikit-learn and ONNX checks included), then the release wheel in a fresh venv.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-venv.sh
python -m pip install -q -r scripts/test-requirements.txt
. scripts/keras-venv.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
ruff check python tests examples benches
KERUST_CI=1 python -m pytest -q tests
scripts/wheel-smoke.sh
