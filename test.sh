#!/usr/bin/env bash
# Set up and run every test: formatting and lints, Rust unit tests, then the Python suite against a release build.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-venv.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
ruff check python tests examples benches
python -m pytest -q tests
