# Sourced by run.sh and test.sh: create .venv, install the build and test tools, build kerust into it.
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.5,<2" "numpy>=1.21" "h5py>=3" "pytest>=7" "ruff>=0.4" "hypothesis>=6"
maturin develop --release --quiet
