"""Fig. 10.12: the encoder-decoder (sequence-to-sequence) architecture. An encoder RNN reads the
input into a context C; a decoder RNN generates an output of another length from C. The task here
is spelling letter strings backwards (keras_seq.seq2seq.synthetic.reverse_task), trained with teacher forcing
and decoded with greedy and beam search; `--context-every-step` also feeds C to every decoder step
(as the figure draws it; otherwise C only starts the decoder); `--attention` adds additive attention.

The model is a `keras_seq.seq2seq.TextSeq2Seq` (characters in, characters out); for your own
pairs see `keras-seq train seq2seq`, for grapheme-to-phoneme conversion `keras-seq train g2p`.

Run: python examples/fig_10_12_encoder_decoder.py [--tiny] [--cell lstm|gru|elman] [--context-every-step]
                                                   [--attention]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.seq2seq import TextSeq2Seq  # noqa: E402
from keras_seq.seq2seq.synthetic import reverse_task  # noqa: E402
from keras_seq.text import make_teacher_forcing_arrays  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="lstm", choices=["elman", "lstm", "gru"])
    parser.add_argument("--context-every-step", action="store_true", help="feed C to every decoder step")
    parser.add_argument("--attention", action="store_true", help="add additive attention")
    parser.add_argument("--save", default=None, help="save the trained model to this directory")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)

    train = reverse_task(200 if tiny else 6000, 3, 8, seed=0)
    test = [entry for entry in reverse_task(300, 3, 8, seed=1) if entry not in train][:200]
    model = TextSeq2Seq.create(train, units=16 if tiny else 128, embedding_dim=16, cell=args.cell,
                               attention=args.attention, context_every_step=args.context_every_step,
                               candidate_activation="tanh")
    data = make_teacher_forcing_arrays(train, model.source_vocabulary, model.target_vocabulary)
    model.model.compile(keras.optimizers.Adam(0.01 if tiny else 0.005),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                      run_eagerly=tiny)
    model.model.fit({"encoder_inputs": data["encoder_inputs"], "decoder_inputs": data["decoder_inputs"]},
                  data["labels"], epochs=1 if tiny else 12, batch_size=64, verbose=0)

    words = [w for w, _ in test]
    truth = ["".join(p[0]).lower() for _, p in test]
    options = "".join(f", {name}" for name, on in [("context at every step", args.context_every_step),
                                                    ("attention", args.attention)] if on)
    print(f"Fig. 10.12 encoder-decoder ({args.cell}{options}): reverse a string")
    for method in ("greedy",) if tiny else ("greedy", "beam"):
        spelled = [r[0][0].lower() for r in model.predict(words, method=method)]
        print(f"  {method:<6} exact match on {len(words)} unseen strings: "
              f"{np.mean([s == t for s, t in zip(spelled, truth)]):.1%}")
    shown = model.predict(words[:4], method="greedy") if tiny else model.predict(words[:4], num_results=2)
    for word, result in zip(words[:4], shown):
        best = ", ".join(f"{output.lower()} ({score:.2f})" for output, score in result)
        print(f"  {word:<9} -> {best}")
    if args.save:
        model.save(args.save)
        print(f"  saved to {args.save} (try: keras-seq plot attention --model {args.save} --word abcdef --out a.png)")
    return model


if __name__ == "__main__":
    main()
