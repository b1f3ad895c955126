"""The book LSTM's inference and its gradient under a `tf.GradientTape` with and without `training=True`.

A quick check, not a comparison with other implementations (that is `bench/layers.py`): one shape
(batch 64, 50 steps, 64 inputs, 128 units), each function a `tf.function`, the median of rounds.
The two tape columns should be equal: the hand-written backward pass runs whenever a gradient is
taken. Run it once per version of the code to compare (alternate the runs; the machine is shared):

    PYTHONPATH=<checkout> python bench/gradient_paths.py [rounds]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_seq.layers import LSTM  # noqa: E402


def main(rounds=15):
    x = np.random.default_rng(0).normal(size=(64, 50, 64)).astype("float32")
    y = np.zeros((64, 128), "float32")
    layer = LSTM(128, candidate_activation="tanh")
    layer(x)

    def gradients(x, y, training):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x, training=training) - y))
        return tape.gradient(loss, layer.trainable_variables)

    functions = {
        "inference": tf.function(lambda: layer(x, training=False)),
        "tape, training=True": tf.function(lambda: gradients(x, y, True)),
        "tape, no training": tf.function(lambda: gradients(x, y, False)),
    }
    for f in functions.values():
        for _ in range(3):
            f()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, f in functions.items():
            start = time.perf_counter()
            out = f()
            np.asarray(out[0] if isinstance(out, list) else out)
            times[name].append(time.perf_counter() - start)
    print(f"keras {keras.__version__}, median of {rounds} rounds (ms):")
    for name, values in times.items():
        print(f"  {name:22s} {1000 * float(np.median(values)):7.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
