#!/usr/bin/env bash
# GPU check for a lent accelerator machine that has JAX (and PyTorch) but no TensorFlow.
#
#   bash bench/gpu_check.sh [--rounds N] [--skip-bench] [--skip-cudnn] [--smoke]
#
# Run from the repository root on the device machine, with the wheels that machine lacks
# (keras, namex, optree: see bench/RESULTS.md "GPU check") in .whl/ (carried: run(carry=[".whl"])).
# It installs them into /tmp/site, then, under KERAS_BACKEND=jax on the GPU:
#   1. the layer equivalence checks: the book ElmanRNN/LSTM/GRU layers against their cells in
#      keras.layers.RNN, forward (with a mask) and jax.grad of the weights and inputs;
#   2. the layer benchmark: the book LSTM/GRU against keras.layers.LSTM/GRU (cuDNN-backed on JAX
#      where Keras uses it), inference and a training step, median over interleaved rounds;
#   3. against cuDNN: the book LSTM/GRU against Keras's with use_cudnn=True, alone and under
#      keras.layers.Bidirectional, without and with right-padded masks (see bench/gpu_check.py);
# and appends the results, with the card's name, to bench/RESULTS.md (and copies it to $OUT).
# Nothing here imports TensorFlow (keras_seq.layers do not on the JAX backend).
set -euo pipefail
cd "$(dirname "$0")/.."

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # keras_seq from this tree
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
export XLA_PYTHON_CLIENT_PREALLOCATE=false

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
LOG="${OUT:-/tmp}/gpu_check.log"
python3 bench/gpu_check.py --results bench/RESULTS.md "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then cp bench/RESULTS.md "$OUT/RESULTS.md"; fi
exit "$status"
