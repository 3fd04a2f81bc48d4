# Sourced by run.sh and test.sh: create .venv, install the build tool and kerust's runtime requirements, build
# kerust into it. test.sh adds scripts/test-requirements.txt.
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.5,<2" "numpy>=1.21" "h5py>=3"
maturin develop --release --quiet
