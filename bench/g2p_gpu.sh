#!/usr/bin/env bash
# One lent-GPU session: the layer checks of bench/gpu_check.sh, then two G2P models trained side by
# side by `keras-seq train g2p` on the JAX backend (with and without attention), packed for the trip
# back (bench/g2p_gpu.py pack). A run stopped by the time limit keeps its best epoch so far.
#
#   # here, first: the wheels the machine lacks in .whl/ (see gpu_check.sh) and the data
#   mkdir -p .gpu/data && cp ../shared/data/g2p/cmudict-0.7b.train-dev-20-21 .gpu/data/train.dict \
#       && cp ../shared/data/g2p/cmudict-0.7b.train-dev-1-21 .gpu/data/dev.dict
#   # there (run(carry=[".whl", ".gpu"])):
#   bash bench/g2p_gpu.sh 590 20    # the seconds the whole command may take, the epochs
#   # here, after: python bench/g2p_gpu.py unpack <files>/att runs/g2p-gpu-att
#
# Files in $OUT: gpu_check.log, RESULTS.md (from gpu_check.sh), att/ and noatt/ (packed runs:
# metrics.csv, settings.json, the model in parts), logs.tgz (each run's log).
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-590}
EPOCHS=${2:-20}
T0=$(date +%s)
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=jax
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"

timeout 150 bash bench/gpu_check.sh --rounds 5 > /dev/null 2>&1
echo "gpu_check rc=$? after $(( $(date +%s) - T0 )) s"
tail -n 25 "$OUT/gpu_check.log" 2>/dev/null

if [ ! -d /tmp/site/keras ] && compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD"
# What is left, less packing and the trip back.
SECONDS_LEFT=$(( LIMIT - ($(date +%s) - T0) - 30 ))
echo "training budget ${SECONDS_LEFT} s, ${EPOCHS} epochs"
mkdir -p /tmp/res
COMMON=(--train .gpu/data/train.dict --dev .gpu/data/dev.dict --epochs "$EPOCHS" --units 512 --embedding-dim 128
        --encoder-layers 2 --dropout 0.3 --candidate-activation tanh --batch-size 256 --learning-rate 2e-3 --overwrite)
timeout "$SECONDS_LEFT" python3 -m keras_seq.cli train g2p --out /tmp/res/att --attention "${COMMON[@]}" \
    > /tmp/res/att.log 2>&1 &
timeout "$SECONDS_LEFT" python3 -m keras_seq.cli train g2p --out /tmp/res/noatt --no-attention "${COMMON[@]}" \
    > /tmp/res/noatt.log 2>&1 &
wait
for m in att noatt; do
    python3 bench/g2p_gpu.py pack "/tmp/res/$m" "$OUT/$m"
    tail -n 5 "/tmp/res/$m/metrics.csv" 2>/dev/null
done
tar czf "$OUT/logs.tgz" -C /tmp/res att.log noatt.log 2>/dev/null
ls -la "$OUT" "$OUT"/*/
echo "done after $(( $(date +%s) - T0 )) s"
