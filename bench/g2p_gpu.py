"""Train the G2P encoder-decoder on a lent GPU machine that has JAX but no TensorFlow.

A GPU machine that has TensorFlow (with JAX or not) needs none of this: `keras-seq train g2p`
itself trains there, on either backend, and writes the usual run directory (README, "Training on
a GPU or a Cloud TPU"):

    KERAS_BACKEND=jax keras-seq train g2p --train FILE --dev FILE --out runs/g2p-gpu --strategy data-parallel

The G2P pipeline of `keras-seq train g2p` needs TensorFlow (tf.data, in-graph tokenization); the
GPU machine has JAX only. So the work is split in three steps, the model and the data identical
to `keras_seq.g2p`'s:

    # 1. here (TensorFlow): vocabularies, teacher-forcing arrays and the model's settings
    python bench/g2p_gpu.py prepare --out .gpu/att --units 512 --encoder-layers 2 --attention ...
    # 2. on the GPU machine (KERAS_BACKEND=jax): model.fit for a wall-clock budget, then the
    #    weights (float16, split into files under 16 MB) of the best of {last epoch, average of
    #    the last epochs} by greedy dev WER
    KERAS_BACKEND=jax python3 bench/g2p_gpu.py train --prepared .gpu/att --seconds 300 --out $OUT/att
    # 3. here: a G2P model directory (`G2P.load`-able, exportable) from those weights
    python bench/g2p_gpu.py import --prepared .gpu/att --weights DIR --out runs/g2p-gpu-att

Training: the `EncoderDecoder` of `G2P.create` with the prepared settings, Adam with gradient-norm
clipping, masked cross-entropy, length buckets of fixed shapes (one compiled step per bucket), a
learning rate that is constant for the first 40% of the time budget and then decays geometrically
to 5% of it by the end, and a dev loss after every epoch. The dev words are scored only to choose
between the last weights and their average over the last epochs (model selection on dev, as the
split intends); the test part of the split is never read.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUCKETS = (6, 8, 10, 13, 40)  # encoder lengths (characters); each bucket is one batch shape
PART_BYTES = 15 * 2**20  # weight files stay under the device tool's 16 MB per file


# ---------------------------------------------------------------------------------------------
# 1. prepare (TensorFlow machine)
# ---------------------------------------------------------------------------------------------


def prepare(args):
    from keras_seq.g2p.model import G2P
    from keras_seq.g2p.train import _arrays, load_source

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_lexicon, dev_lexicon = load_source(args.train), load_source(args.dev)
    model_kwargs = dict(
        units=args.units, embedding_dim=args.embedding_dim, cell="lstm",
        encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
        bidirectional_encoder=True, attention=args.attention, dropout=args.dropout,
        candidate_activation=args.candidate_activation, context_every_step=args.context_every_step,
    )
    g2p = G2P.create(train_lexicon, max_input_length=32, beam_width=5, **model_kwargs)
    g2p.characters.save(out / "characters.txt")
    g2p.phonemes.save(out / "phonemes.txt")
    arrays = {}
    for split, lexicon in [("train", train_lexicon), ("dev", dev_lexicon)]:
        a = _arrays(lexicon, g2p)
        for key in ("encoder_inputs", "decoder_inputs", "labels"):
            arrays[f"{split}_{key}"] = a[key].astype(np.uint8)
    # Greedy dev WER on the device: every dev word once, with all its references.
    from keras_seq.g2p.data import encode_word

    dev_ids = np.zeros((len(dev_lexicon), 32), np.uint8)
    refs = []
    for row, (word, prons) in enumerate(dev_lexicon):
        ids = encode_word(word, g2p.characters)[:32]
        dev_ids[row, : len(ids)] = ids
        refs.append([[g2p.phonemes.token_to_id(p) for p in pron] for pron in prons])
    arrays["dev_words"] = dev_ids
    np.savez_compressed(out / "data.npz", **arrays)
    settings = {
        "model": g2p.model.get_config(),
        "model_kwargs": model_kwargs,
        "weights": {v.path: list(v.shape) for v in g2p.model.weights},
        "dev_references": refs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "clipnorm": 5.0,
        "train_words": len(train_lexicon),
        "dev_words": len(dev_lexicon),
        "command": " ".join(sys.argv),
    }
    (out / "settings.json").write_text(json.dumps(settings))
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"prepared {out}: {len(train_lexicon)} train words, {len(dev_lexicon)} dev words, "
          f"{sum(np.prod(s) for s in settings['weights'].values()) / 1e6:.1f}M weights, {size / 1e6:.1f} MB")


# ---------------------------------------------------------------------------------------------
# 2. train (JAX machine)
# ---------------------------------------------------------------------------------------------


def _length(a):
    return np.maximum((a != 0).sum(axis=1), 1)


class Batches:
    """Shuffled batches of fixed shapes: examples grouped into `BUCKETS` by encoder length, each
    bucket padded to its own longest encoder and decoder sequence."""

    def __init__(self, enc, dec, lab, batch_size, seed=0, drop_remainder=True):
        enc_len, dec_len = _length(enc), _length(lab)
        self.groups = []
        lower = 0
        for upper in BUCKETS:
            idx = np.nonzero((enc_len > lower) & (enc_len <= upper))[0]
            lower = upper
            if len(idx):
                self.groups.append((idx, int(enc_len[idx].max()), int(dec_len[idx].max())))
        self.enc, self.dec, self.lab = enc, dec, lab
        self.batch_size, self.drop_remainder = batch_size, drop_remainder
        self.rng = np.random.default_rng(seed)

    def epoch(self, shuffle=True):
        batches = []
        for idx, te, td in self.groups:
            idx = self.rng.permutation(idx) if shuffle else idx
            stop = len(idx) - len(idx) % self.batch_size if self.drop_remainder else len(idx)
            for s in range(0, stop, self.batch_size):
                batches.append((idx[s : s + self.batch_size], te, td))
        if shuffle:
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        for idx, te, td in batches:
            # A partial batch is padded with empty rows (their labels are all pads, which the
            # masked loss ignores), so that every batch of a bucket has one shape.
            rows = self.batch_size
            enc, dec, lab = (np.zeros((rows, t), np.int32) for t in (te, td, td))
            enc[: len(idx)], dec[: len(idx)], lab[: len(idx)] = (
                self.enc[idx, :te], self.dec[idx, :td], self.lab[idx, :td])
            yield {"encoder_inputs": enc, "decoder_inputs": dec}, lab

    def steps(self):
        return sum((len(i) // self.batch_size if self.drop_remainder else -(-len(i) // self.batch_size))
                   for i, _, _ in self.groups)


def _greedy_wer(model, words, references, batch=1024):
    """Greedy-search WER (exact match with any reference) over the dev words."""
    import jax
    import keras

    width = int(_length(words).max())
    wrong = 0
    # One compiled loop for every batch (the weights are constants of this compilation).
    greedy = jax.jit(lambda ids: model.generate(ids, method="greedy")["tokens"])
    for s in range(0, len(words), batch):
        ids = np.zeros((batch, width), np.int32)  # one shape: one compiled loop
        chunk = words[s : s + batch, :width]
        ids[: len(chunk)] = chunk
        tokens = keras.ops.convert_to_numpy(greedy(ids))[: len(chunk)]
        for row, refs in zip(tokens, references[s : s + batch]):
            hyp = []
            for t in row:
                if t in (0, model.end_token):
                    break
                hyp.append(int(t))
            wrong += hyp not in refs
    return wrong / len(words)


def train(args):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from keras_seq.models.seq2seq import EncoderDecoder

    start = time.time()
    prepared = Path(args.prepared)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads((prepared / "settings.json").read_text())
    data = np.load(prepared / "data.npz")
    log = open(out / "train.log", "a", buffering=1)

    def say(*parts):
        line = " ".join(str(p) for p in parts)
        print(f"[{prepared.name} {time.time() - start:6.0f}s] {line}", flush=True)
        log.write(line + "\n")

    keras.utils.set_random_seed(args.seed)
    config = dict(settings["model"])
    if args.dropout is not None:
        config["dropout"] = args.dropout
    (out / "config.json").write_text(json.dumps(config))
    model = EncoderDecoder.from_config(config)
    model.build()
    expected = settings["weights"]
    got = {v.path: list(v.shape) for v in model.weights}
    if got != expected:
        raise SystemExit(f"the model built here differs from the prepared one: {set(got) ^ set(expected)}")
    base_lr, batch_size = settings["learning_rate"], args.batch_size or settings["batch_size"]
    model.compile(
        optimizer=keras.optimizers.Adam(base_lr, clipnorm=settings["clipnorm"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    train_batches = Batches(data["train_encoder_inputs"], data["train_decoder_inputs"], data["train_labels"],
                            batch_size, seed=args.seed)
    dev_batches = Batches(data["dev_encoder_inputs"], data["dev_decoder_inputs"], data["dev_labels"],
                          512, drop_remainder=False)
    say(f"backend {keras.backend.backend()}, devices {_devices()}, {sum(np.prod(s) for s in expected.values()) / 1e6:.1f}M "
        f"weights, {train_batches.steps()} steps of {batch_size} per epoch, budget {args.seconds:.0f} s")

    budget = args.seconds - (time.time() - start)
    t0 = time.time()
    history, kept = [], []
    epoch, epoch_seconds = 0, 0.0
    best_wer, best = 1.0, None
    refs = settings["dev_references"]
    while not args.epochs or epoch < args.epochs:
        elapsed = time.time() - t0
        # The first epoch's time includes the compilation of every bucket's step: it does not
        # predict the next one, so a second epoch always runs.
        if epoch > 1 and elapsed + epoch_seconds > budget:
            break
        # The schedule follows the epochs when they are given, else the time budget.
        frac = epoch / args.epochs if args.epochs else min(elapsed / budget, 1.0)
        lr = base_lr if frac < 0.4 else base_lr * 0.05 ** ((frac - 0.4) / 0.6)
        model.optimizer.learning_rate.assign(lr)
        e0 = time.time()
        fit = model.fit(_forever(train_batches), steps_per_epoch=train_batches.steps(), epochs=1, verbose=0)
        loss = fit.history["loss"][-1]
        val = model.evaluate(_forever(dev_batches, shuffle=False), steps=dev_batches.steps(), verbose=0)
        epoch += 1
        epoch_seconds = time.time() - e0
        history.append({"epoch": epoch, "loss": loss, "val_loss": val, "learning_rate": lr,
                        "seconds": epoch_seconds, "elapsed": time.time() - start})
        say(f"epoch {epoch}: loss {loss:.4f} val_loss {val:.4f} lr {lr:.2e} ({epoch_seconds:.1f} s)")
        kept.append([keras.ops.convert_to_numpy(v.value).copy() for v in model.weights])
        kept = kept[-args.average :]
        if args.select_every and epoch >= args.select_from:
            wer = _greedy_wer(model, data["dev_words"], refs)
            history[-1]["dev_wer_greedy"] = wer
            say(f"  greedy dev WER {100 * wer:.2f}%")
            if wer < best_wer:
                best_wer, best = wer, (epoch, kept[-1])

    weights = list(model.weights)
    last = kept[-1]
    averaged = [np.mean(np.stack([k[i] for k in kept]), axis=0).astype(last[i].dtype) for i in range(len(last))]
    # Non-trainable state (the seed generator's counter) is taken from the last epoch.
    for i, v in enumerate(weights):
        if not v.trainable:
            averaged[i] = last[i]
    scores, candidates = {}, {"last": last, f"average of last {len(kept)}": averaged}
    if best is not None:
        scores[f"epoch {best[0]}"] = best_wer
        candidates[f"epoch {best[0]}"] = best[1]
    for name, values in list(candidates.items())[:2]:
        for v, a in zip(weights, values):
            v.assign(a)
        scores[name] = _greedy_wer(model, data["dev_words"], refs)
        say(f"greedy dev WER, {name}: {100 * scores[name]:.2f}%")
    best = min(scores, key=scores.get)
    _save_weights(out, [v.path for v in weights], candidates[best], args.weights_dtype)
    summary = {"chosen": best, "greedy_dev_wer": scores, "epochs": epoch, "history": history,
               "devices": _devices(), "seconds": time.time() - start, "batch_size": batch_size}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    say(f"kept the weights of '{best}' ({epoch} epochs, {time.time() - start:.0f} s)")


def _forever(batches, shuffle=True):
    while True:
        yield from batches.epoch(shuffle)


def _devices():
    import jax

    return [getattr(d, "device_kind", str(d)) for d in jax.devices()]


def _save_weights(out, paths, values, dtype="float16"):
    """The weights in `weights-N.npz` parts, each under `PART_BYTES`; float32 ones stored as `dtype`
    (float16 halves what has to come back from the device machine)."""
    part, size, n = {}, 0, 0
    for path, value in zip(paths, values):
        value = np.asarray(value)
        value = value.astype(dtype) if value.dtype == np.float32 else value
        if part and size + value.nbytes > PART_BYTES:
            np.savez(out / f"weights-{n}.npz", **part)
            part, size, n = {}, 0, n + 1
        part[path.replace("/", "|")] = value
        size += value.nbytes
    np.savez(out / f"weights-{n}.npz", **part)


# ---------------------------------------------------------------------------------------------
# 3. import (TensorFlow machine)
# ---------------------------------------------------------------------------------------------


def import_weights(args):
    from keras_seq.g2p.data import Vocabulary
    from keras_seq.g2p.model import G2P
    from keras_seq.models.seq2seq import EncoderDecoder

    prepared = Path(args.prepared)
    settings = json.loads((prepared / "settings.json").read_text())
    values = {}
    for f in sorted(Path(args.weights).glob("weights-*.npz")):
        with np.load(f) as part:
            values.update({k.replace("|", "/"): part[k] for k in part.files})
    config = json.loads(Path(args.config).read_text()) if args.config else settings["model"]
    model = EncoderDecoder.from_config(config)
    model.build()
    missing = [v.path for v in model.weights if v.path not in values]
    if missing or len(values) != len(model.weights):
        raise SystemExit(f"weights do not match the model: missing {missing}, extra {set(values) - {v.path for v in model.weights}}")
    wrong = [f"{v.path} {values[v.path].shape} != {tuple(v.shape)}" for v in model.weights
             if tuple(values[v.path].shape) != tuple(v.shape)]
    if wrong:
        raise SystemExit(f"weights do not match the model's shapes: {wrong[:3]}")
    for v in model.weights:
        v.assign(values[v.path].astype(v.dtype))
    g2p = G2P(model, Vocabulary.load(prepared / "characters.txt"), Vocabulary.load(prepared / "phonemes.txt"),
              max_input_length=32, beam_width=args.beam_width)
    g2p.save(args.out)
    print(f"wrote {args.out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    D = "/work/shared/data/g2p/"
    p.add_argument("--train", default=D + "cmudict-0.7b.train-dev-20-21")
    p.add_argument("--dev", default=D + "cmudict-0.7b.train-dev-1-21")
    p.add_argument("--out", required=True)
    p.add_argument("--units", type=int, default=512)
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--encoder-layers", type=int, default=2)
    p.add_argument("--decoder-layers", type=int, default=1)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--context-every-step", action="store_true", help="the context also enters every decoder step")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--candidate-activation", default="tanh")
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p = sub.add_parser("train")
    p.add_argument("--prepared", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--average", type=int, default=3, help="average the weights of this many last epochs")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="stop after this many (the schedule follows them)")
    p.add_argument("--dropout", type=float, default=None, help="override the prepared model's dropout")
    p.add_argument("--select-every", action="store_true", help="greedy dev WER after every epoch; keep the best")
    p.add_argument("--select-from", type=int, default=3)
    p.add_argument("--weights-dtype", choices=("float16", "float32"), default="float16")
    p = sub.add_parser("import")
    p.add_argument("--config", default=None, help="the config.json written by train (default: the prepared model's)")
    p.add_argument("--prepared", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--beam-width", type=int, default=5)
    args = parser.parse_args(argv)
    {"prepare": prepare, "train": train, "import": import_weights}[args.command](args)


if __name__ == "__main__":
    main()
