# Sourced by test.sh: a separate virtualenv with real Keras (JAX backend, CPU), never a kerust dependency, for
# the tests that check that Keras itself reads kerust's files (tests/test_saving.py, tests/test_functional.py).
# It exports KERUST_KERAS_PYTHON for them.
if [ ! -x .keras-venv/bin/python ] || ! .keras-venv/bin/python -c "import keras, jax" 2>/dev/null; then
  python3 -m venv .keras-venv
  .keras-venv/bin/python -m pip install -q --upgrade pip
  .keras-venv/bin/python -m pip install -q -r scripts/keras-requirements.txt
fi
export KERUST_KERAS_PYTHON="$PWD/.keras-venv/bin/python"
