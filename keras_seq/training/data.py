"""The training data pipeline: teacher-forcing arrays as batches bucketed by length.

`make_dataset` gives a `tf.data.Dataset` where TensorFlow is installed (on either backend), and
on a machine without TensorFlow (a JAX-only GPU or TPU machine) a `keras.utils.PyDataset` that
batches the same way in NumPy (its shuffles draw from NumPy's generator, so the order of batches
differs from tf.data's; the batches' shapes and contents per bucket follow the same rules).
"""

from __future__ import annotations

import functools
import hashlib

import keras
import numpy as np

from keras_seq.text import PAD_ID

__all__ = ["make_dataset", "trim_to_common_length", "fixed_subset", "NumpyBatches", "tensorflow_available"]


@functools.lru_cache(maxsize=None)
def tensorflow_available():
    """Whether TensorFlow can be imported here (a JAX-only machine has none)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def make_dataset(arrays, batch_size, shuffle=False, seed=0, bucket_boundaries=(5, 7, 9, 11, 14),
                 static_shapes=False, drop_remainder=False, fixed_lengths=False):
    """A `tf.data.Dataset` of `({"encoder_inputs", "decoder_inputs"}, labels)` batches.

    `arrays` are `make_teacher_forcing_arrays` outputs. Pads are trimmed per example, examples
    are (optionally) shuffled every epoch, grouped by word length and padded per batch.
    With `static_shapes=True` every batch keeps the arrays' full padded shape and the last
    partial training batch is dropped (no bucketing): one traced training step, as TPUs need.
    With `drop_remainder=True` no batch is smaller than `batch_size` (several replicas need
    batches that split evenly). With `fixed_lengths=True` every batch of a length bucket is
    padded to that bucket's longest source and target in `arrays` (not the batch's): a few
    batch shapes in all, the same every epoch, so a backend that compiles one program per shape
    (JAX's `jax.jit`) compiles them all in the first epoch and never again; padding is masked,
    so the losses are those of per-batch padding.
    """
    if not tensorflow_available():
        return NumpyBatches(arrays, batch_size, shuffle=shuffle, seed=seed, bucket_boundaries=bucket_boundaries,
                            static_shapes=static_shapes, drop_remainder=drop_remainder, fixed_lengths=fixed_lengths)
    import tensorflow as tf

    enc, dec, lab = arrays["encoder_inputs"], arrays["decoder_inputs"], arrays["labels"]
    enc_len = np.maximum((enc != PAD_ID).sum(axis=1), 1)
    dec_len = np.maximum((lab != PAD_ID).sum(axis=1), 1)
    if static_shapes:
        ds = tf.data.Dataset.from_tensor_slices(({"encoder_inputs": enc, "decoder_inputs": dec}, lab))
        if shuffle:
            ds = ds.shuffle(len(enc), seed=seed, reshuffle_each_iteration=True)
        drop = drop_remainder or (shuffle and len(enc) >= batch_size)  # training: one shape
        return ds.batch(batch_size, drop_remainder=drop).prefetch(tf.data.AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((enc, dec, lab, enc_len.astype(np.int32), dec_len.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(enc), seed=seed, reshuffle_each_iteration=True)
    # Trim each example's pads, then group by word length and pad per batch.
    ds = ds.map(lambda e, d, l, ne, nd: (e[:ne], d[:nd], l[:nd]), num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = [b for b in bucket_boundaries]
    ds = ds.bucket_by_sequence_length(
        lambda e, d, l: tf.shape(e)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([None], [None], [None]),
        padding_values=(PAD_ID, PAD_ID, PAD_ID),
        drop_remainder=drop_remainder,
    )
    # Bucketing hides the number of batches from tf.data, but it does not depend on the order:
    # each bucket of n examples gives ceil(n / B) batches (floor(n / B) dropping remainders).
    # Stating it lets Keras show the first epoch's total and end that epoch without warning
    # that the input "ran out of data".
    bucket_sizes = np.bincount(np.searchsorted(boundaries, enc_len, side="right"), minlength=len(boundaries) + 1)
    batches = sum(n // batch_size if drop_remainder else -(-n // batch_size) for n in bucket_sizes.tolist())
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    if fixed_lengths:
        bucket = np.searchsorted(boundaries, enc_len, side="right")
        longest = lambda lengths: tf.constant([int(lengths[bucket == b].max(initial=1)) for b in range(len(boundaries) + 1)],
                                              tf.int32)
        enc_fixed, dec_fixed = longest(enc_len), longest(dec_len)

        def pad(e, d, l):  # the batch's bucket: where its longest source falls among the boundaries
            b = tf.searchsorted(tf.constant(boundaries, tf.int32), tf.shape(e)[1:2], side="right")[0]
            grow = lambda x, n: tf.pad(x, [[0, 0], [0, n - tf.shape(x)[1]]], constant_values=PAD_ID)
            return grow(e, enc_fixed[b]), grow(d, dec_fixed[b]), grow(l, dec_fixed[b])

        ds = ds.map(pad)
    ds = ds.map(lambda e, d, l: ({"encoder_inputs": e, "decoder_inputs": d}, l))
    return ds.prefetch(tf.data.AUTOTUNE)


class NumpyBatches(keras.utils.PyDataset):
    """`make_dataset`'s batches without TensorFlow: the same buckets, padding and remainders.

    Every epoch (`on_epoch_end`) each bucket's examples are shuffled, cut into batches, and the
    batches of all buckets shuffled together (`shuffle=True`); a batch is padded to its bucket's
    longest source and target in `arrays` (`fixed_lengths`) or to its own longest ones. With
    `static_shapes` every batch keeps the arrays' full width. Items are
    ``({"encoder_inputs", "decoder_inputs"}, labels)`` of int32 NumPy arrays.
    """

    def __init__(self, arrays, batch_size, shuffle=False, seed=0, bucket_boundaries=(5, 7, 9, 11, 14),
                 static_shapes=False, drop_remainder=False, fixed_lengths=False):
        super().__init__()
        self.enc, self.dec, self.lab = (np.asarray(arrays[k], np.int32)
                                        for k in ("encoder_inputs", "decoder_inputs", "labels"))
        self.enc_len = np.maximum((self.enc != PAD_ID).sum(axis=1), 1)
        self.dec_len = np.maximum((self.lab != PAD_ID).sum(axis=1), 1)
        self.batch_size, self.shuffle, self.static_shapes = batch_size, shuffle, static_shapes
        n = len(self.enc)
        if static_shapes:  # one bucket, the arrays' full width; training drops its partial batch
            self.buckets = [np.arange(n)]
            self.drop_remainder = drop_remainder or (shuffle and n >= batch_size)
        else:
            which = np.searchsorted(np.asarray(bucket_boundaries), self.enc_len, side="right")
            self.buckets = [np.nonzero(which == b)[0] for b in range(len(bucket_boundaries) + 1)]
            self.buckets = [b for b in self.buckets if len(b)]
            self.drop_remainder = drop_remainder
        self.fixed_lengths = fixed_lengths
        self.widths = [(int(self.enc_len[b].max()), int(self.dec_len[b].max())) for b in self.buckets]
        self.rng = np.random.default_rng(seed)
        self._batches = self._make_batches()

    def _make_batches(self):
        batches = []
        for bucket, rows in enumerate(self.buckets):
            rows = self.rng.permutation(rows) if self.shuffle else rows
            stop = len(rows) - len(rows) % self.batch_size if self.drop_remainder else len(rows)
            batches += [(bucket, rows[s:s + self.batch_size]) for s in range(0, stop, self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        return batches

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        bucket, rows = self._batches[index]
        if self.static_shapes:
            enc_t, dec_t = self.enc.shape[1], self.lab.shape[1]
        elif self.fixed_lengths:
            enc_t, dec_t = self.widths[bucket]
        else:
            enc_t, dec_t = int(self.enc_len[rows].max()), int(self.dec_len[rows].max())
        return {"encoder_inputs": self.enc[rows, :enc_t], "decoder_inputs": self.dec[rows, :dec_t]}, self.lab[rows, :dec_t]

    def on_epoch_end(self):
        self._batches = self._make_batches()


def trim_to_common_length(*arrays):
    """Cuts the padding of teacher-forcing arrays to the longest real sequence among them all."""
    present = [a for a in arrays if a is not None]
    enc_t = max(int((a["encoder_inputs"] != PAD_ID).sum(axis=1).max(initial=1)) for a in present)
    dec_t = max(int((a["labels"] != PAD_ID).sum(axis=1).max(initial=1)) for a in present)
    cut = lambda a: None if a is None else {
        "encoder_inputs": a["encoder_inputs"][:, :enc_t], "decoder_inputs": a["decoder_inputs"][:, :dec_t],
        "labels": a["labels"][:, :dec_t], "word_index": a["word_index"],
    }
    return tuple(cut(a) for a in arrays)


def fixed_subset(lexicon, n, salt="dev"):
    """At most n entries, chosen by a hash of the word (the same words every time)."""
    if n is None or n >= len(lexicon):
        return list(lexicon)
    key = lambda entry: hashlib.md5((salt + str(entry[0])).encode("utf-8")).hexdigest()
    return sorted(lexicon, key=key)[:n]
