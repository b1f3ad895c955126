"""keras_seq.models.Adam: Adam's step from the summed gradient of an embedding table on TensorFlow
(where the gradient is a tf.IndexedSlices with one slice per occurrence of an id), as JAX takes it;
keras_seq.models.SliceAdam: Keras's Adam, whose TensorFlow step from those slices JAX reproduces."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.models import Adam, SliceAdam


def _step(optimizer, ids, scale=1.0):
    emb = keras.layers.Embedding(5, 2, embeddings_initializer="zeros")
    emb.build((None,))
    with tf.GradientTape() as tape:
        loss = scale * tf.reduce_sum(emb(tf.constant(ids)))
    grads = tape.gradient(loss, emb.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)  # what Keras's Adam gets on TensorFlow
    optimizer.apply(grads, emb.trainable_variables)
    return emb.embeddings.numpy()


def test_a_repeated_id_moves_by_the_learning_rate_as_in_adam():
    # Adam's first step moves every coordinate with a nonzero gradient by lr (m/sqrt(v) = sign(g)).
    ids = [1, 1, 1, 1, 2]
    ours = _step(Adam(0.01), ids)
    np.testing.assert_allclose(ours[1:3], -0.01, rtol=1e-4)
    np.testing.assert_array_equal(ours[[0, 3, 4]], 0.0)
    keras_own = _step(keras.optimizers.Adam(0.01), ids)  # the slices squared apart: sqrt(4) x lr
    np.testing.assert_allclose(keras_own[1], -0.02, rtol=1e-3)


def test_clipnorm_measures_the_summed_gradient():
    # Gradient of row 1: 4 * (3, 3) -> norm 16.97; clipped to 1 -> (0.707, 0.707); SGD lr 1.
    class SGD(Adam):  # Adam's gradient preparation, plain SGD's update: the clipped gradient shows
        def update_step(self, gradient, variable, learning_rate):
            variable.assign_sub(gradient * learning_rate)

    moved = _step(SGD(1.0, clipnorm=1.0), [1, 1, 1, 1], scale=3.0)
    np.testing.assert_allclose(moved[1], -np.sqrt(0.5), rtol=1e-5)


def test_saved_with_the_model_and_loaded_back(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=Adam(0.01, clipnorm=5.0), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is Adam and loaded.optimizer.clipnorm == pytest.approx(5.0)


TINY = r'''
import sys
import numpy as np, keras
from keras_seq.models.base import BookModel
from keras_seq.models.optimizers import SliceAdam


class Tiny(BookModel):  # an embedding table, a GRU, an output layer
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(8, 4, mask_zero=True)
        self.rnn = keras.layers.GRU(6, return_sequences=True)
        self.out = keras.layers.Dense(8)

    def call(self, x):
        return self.out(self.rnn(self.embedding(x)))


def train(optimizer, init, out):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 6, size=(64, 7)).astype("int32")  # 5 ids: each row seen many times a batch
    x[:, 5:] = 0
    y = rng.integers(1, 6, size=(64, 7)).astype("int32")
    model = Tiny()
    model(x[:2])
    if init is not None:
        model.set_weights(init)
    start = model.get_weights()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.savez(out, *start, *model.get_weights())


if __name__ == "__main__":  # tiny.py START.npz KIND...: each kind's run from START into KIND.npz
    saved = np.load(sys.argv[1])
    init = [saved[f"arr_{i}"] for i in range(len(saved.files) // 2)]
    for kind in sys.argv[2:]:
        train({"slice": SliceAdam, "keras": keras.optimizers.Adam}[kind](0.05, clipnorm=0.02), init, kind + ".npz")
'''


def _tiny(tmp_path):
    """TINY written to `tmp_path` (for the JAX process) and imported here."""
    (tmp_path / "tiny.py").write_text(TINY)
    spec = importlib.util.spec_from_file_location(f"tiny_{tmp_path.name}", tmp_path / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slice_adam_on_jax_takes_the_step_keras_adam_takes_on_tensorflow(tmp_path):
    """TensorFlow's own tf.IndexedSlices path (Keras's Adam, here in-process) is the reference:
    from the same weights and batches, `SliceAdam` in a JAX process ends at its weights, with
    ``clipnorm`` small enough to clip every step; Keras's Adam on JAX (dense) does not."""
    _tiny(tmp_path).train(keras.optimizers.Adam(0.05, clipnorm=0.02), None, tmp_path / "tf.npz")
    reference = np.load(tmp_path / "tf.npz")
    half = len(reference.files) // 2
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "tiny.py", "tf.npz", "slice", "keras"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    on_jax = {kind: np.load(tmp_path / f"{kind}.npz") for kind in ("slice", "keras")}
    for i in range(half):
        np.testing.assert_array_equal(on_jax["slice"][f"arr_{i}"], reference[f"arr_{i}"])  # the same start
    for i in range(half, 2 * half):
        moved = np.abs(reference[f"arr_{i}"] - reference[f"arr_{i - half}"]).max()
        assert moved > 0.05, moved
        np.testing.assert_allclose(on_jax["slice"][f"arr_{i}"], reference[f"arr_{i}"], atol=1e-5, err_msg=f"weight {i}")
    dense = np.abs(on_jax["keras"][f"arr_{half}"] - reference[f"arr_{half}"]).max()  # the embedding table
    assert dense > 100 * 1e-5, dense


def test_slice_adam_is_keras_adam_on_tensorflow(tmp_path):
    tiny = _tiny(tmp_path)
    tiny.train(keras.optimizers.Adam(0.05, clipnorm=0.02), None, tmp_path / "keras.npz")
    keras_own = np.load(tmp_path / "keras.npz")
    half = len(keras_own.files) // 2
    tiny.train(SliceAdam(0.05, clipnorm=0.02), [keras_own[f"arr_{i}"] for i in range(half)], tmp_path / "slice.npz")
    ours = np.load(tmp_path / "slice.npz")
    for name in keras_own.files:
        np.testing.assert_array_equal(ours[name], keras_own[name])  # bit for bit: TensorFlow's results stay
