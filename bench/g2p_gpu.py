"""Bring a `keras-seq train` run back from a lent GPU machine: `pack` there, `unpack` here.

Training on a GPU is `keras-seq train` itself, on either backend, and needs no TensorFlow on the
JAX backend (the data pipeline falls back to NumPy batches; README, "Training on a GPU or a
Cloud TPU"):

    KERAS_BACKEND=jax python3 -m keras_seq.cli train g2p --train .gpu/data/train.dict \\
        --dev .gpu/data/dev.dict --out /tmp/res/att --attention --units 512 --encoder-layers 2

What this script adds is only the trip back. The device tool returns files of at most 16 MB
each, and a large model's `model.keras` is bigger, so `pack` copies a run directory's small
files and cuts its model file into parts (with a manifest of sizes and SHA-256 digests), and
`unpack` puts the model directory together again here, checked against the manifest:

    # there, after training (bench/g2p_gpu.sh does both steps)
    python3 bench/g2p_gpu.py pack /tmp/res/att $OUT/att
    # here, with the returned files
    python3 bench/g2p_gpu.py unpack <files>/att runs/g2p-gpu-att
    keras-seq evaluate --model runs/g2p-gpu-att --data ../shared/data/g2p/cmudict-0.7b.train-dev-1-21

`pack` and `unpack` know nothing of models: they carry any application's run directory (its
top-level files; `backup/`, `last/` and `epochs/` stay behind). Nothing here imports TensorFlow,
Keras or keras_seq.
"""

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

PART_BYTES = 15 * 2**20  # under the device tool's 16 MB per returned file
MANIFEST = "pack.json"
MODEL_FILE = "model.keras"


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def pack(run_dir, out_dir, part_bytes=PART_BYTES):
    """Copies `run_dir`'s top-level files to `out_dir`, `model.keras` cut into parts."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / MODEL_FILE).is_file():
        raise SystemExit(f"pack: {run_dir} has no {MODEL_FILE}: not a finished run directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for path in sorted(p for p in run_dir.iterdir() if p.is_file() and p.name != MODEL_FILE):
        shutil.copy2(path, out_dir / path.name)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": _digest(path)}
    parts = []
    with open(run_dir / MODEL_FILE, "rb") as f:
        for n, chunk in enumerate(iter(lambda: f.read(part_bytes), b"")):
            name = f"{MODEL_FILE}.part-{n:03d}"
            (out_dir / name).write_bytes(chunk)
            parts.append(name)
    model = run_dir / MODEL_FILE
    manifest = {"files": files, "model": {"parts": parts, "bytes": model.stat().st_size, "sha256": _digest(model)}}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    print(f"packed {run_dir} into {out_dir}: {len(files)} files, {MODEL_FILE} in {len(parts)} parts")


def unpack(packed_dir, out_dir):
    """The run's model directory again, in `out_dir` (which must not exist), checked against the manifest."""
    packed_dir, out_dir = Path(packed_dir), Path(out_dir)
    if not (packed_dir / MANIFEST).is_file():
        raise SystemExit(f"unpack: {packed_dir} has no {MANIFEST} (was it written by `pack`?)")
    if out_dir.exists():
        raise SystemExit(f"unpack: {out_dir} already exists; choose another directory")
    manifest = json.loads((packed_dir / MANIFEST).read_text())
    missing = [n for n in [*manifest["files"], *manifest["model"]["parts"]] if not (packed_dir / n).is_file()]
    if missing:
        raise SystemExit(f"unpack: {packed_dir} lacks {', '.join(missing)}")
    tmp = out_dir.with_name(out_dir.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, meta in manifest["files"].items():
        shutil.copy2(packed_dir / name, tmp / name)
    with open(tmp / MODEL_FILE, "wb") as f:
        for name in manifest["model"]["parts"]:
            f.write((packed_dir / name).read_bytes())
    checks = {**manifest["files"], MODEL_FILE: manifest["model"]}
    wrong = [name for name, meta in checks.items()
             if (tmp / name).stat().st_size != meta["bytes"] or _digest(tmp / name) != meta["sha256"]]
    if wrong:
        shutil.rmtree(tmp)
        raise SystemExit(f"unpack: {', '.join(wrong)} differ from what was packed (size or SHA-256); "
                         "the files were damaged or mixed with another run's")
    tmp.rename(out_dir)
    print(f"unpacked {packed_dir} into {out_dir}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="a run directory's files, the model cut into parts of under 16 MB")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p = sub.add_parser("unpack", help="the model directory again from packed files")
    p.add_argument("packed_dir")
    p.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.run_dir, args.out_dir)
    else:
        unpack(args.packed_dir, args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
