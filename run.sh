#!/usr/bin/env bash
# Set up (virtualenv, build the Rust engine) and run the main job: the tutorial CNN on the bundled MNIST.
#   ./run.sh                 # 1 epoch (about a minute after the build)
#   EPOCHS=3 ./run.sh        # the tutorial's model to >= 99% test accuracy
#   ./run.sh examples/mnist_mlp.py --epochs 3
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-venv.sh
if [ $# -gt 0 ]; then
  python "$@"
else
  python examples/mnist_cnn.py --epochs "${EPOCHS:-1}"
fi
