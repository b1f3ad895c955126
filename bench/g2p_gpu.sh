#!/usr/bin/env bash
# One lent-GPU session: the layer checks of bench/gpu_check.sh, then two G2P models trained side by
# side on the GPU (with and without attention) for the time that is left, and their weights.
#
#   # here, first: the wheels the machine lacks in .whl/ (see gpu_check.sh) and the prepared data
#   python bench/g2p_gpu.py prepare --out .gpu/att --attention
#   python bench/g2p_gpu.py prepare --out .gpu/noatt
#   # there (run(carry=[".whl", ".gpu"])):
#   bash bench/g2p_gpu.sh 590      # the seconds the whole command may take
#   # here, after: python bench/g2p_gpu.py import --prepared .gpu/att --weights <files>/att --out runs/g2p-gpu-att
#
# Files in $OUT: gpu_check.log, RESULTS.md (from gpu_check.sh), att/weights-*.npz,
# noatt/weights-*.npz, logs.tgz (each run's log and summary.json).
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-590}
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
# What is left, less the final dev scoring and saving (about 2 minutes with compilation).
SECONDS_LEFT=$(( LIMIT - ($(date +%s) - T0) - 100 ))
echo "training budget ${SECONDS_LEFT} s"
mkdir -p /tmp/res
for m in att noatt; do
    python3 bench/g2p_gpu.py train --prepared ".gpu/$m" --out "/tmp/res/$m" --seconds "$SECONDS_LEFT" \
        > "/tmp/res/$m.log" 2>&1 &
done
wait
for m in att noatt; do
    mkdir -p "$OUT/$m"
    cp /tmp/res/$m/weights-*.npz "$OUT/$m/" 2>/dev/null
    grep -v -E "^(WARNING|I0000)" "/tmp/res/$m.log" | tail -n 12
done
tar czf "$OUT/logs.tgz" -C /tmp/res att.log noatt.log att/summary.json noatt/summary.json att/train.log noatt/train.log 2>/dev/null
ls -la "$OUT" "$OUT"/*/
echo "done after $(( $(date +%s) - T0 )) s"
