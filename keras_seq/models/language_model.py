"""The RNN as a generative model of sequences, Fig. 10.7-10.8 of *Deep Learning* (Goodfellow,
Bengio & Courville): P(y(1), ..., y(τ)) = Π_t P(y(t) | y(1), ..., y(t-1)), no input x at all.

The model reads y(t-1) and predicts y(t) at every step. Training maximizes the log-likelihood by
next-step prediction with teacher forcing (§10.2.1): the inputs are `[<s>, y(1), ..., y(τ)]`, the
labels `[y(1), ..., y(τ), </s>]`, all steps at once through a fast `keras_seq.layers` layer.
The end-of-sequence symbol </s> (§10.2.3) lets the model decide the length τ: sampling stops when
it draws </s>. Generation feeds the model its own outputs in the compiled loops of
`keras_seq.decoding`, the same code that decodes the encoder-decoder of Fig. 10.12.
"""

import keras
import numpy as np
from keras import ops

from keras_seq import decoding
from keras_seq.models.base import BookModel, recurrent_layer


def teacher_forcing_arrays(sequences, start_token, end_token, pad_token=0, max_length=None):
    """`{"inputs", "labels"}` int32 (N, L + 1) arrays for next-step prediction (Fig. 10.8).

    Each sequence y(1..τ) (a list of token ids, none of them `pad_token`) becomes inputs
    `[<s>, y(1), ..., y(τ)]` and labels `[y(1), ..., y(τ), </s>]`, padded with `pad_token` to
    `max_length + 1` steps (default: the longest sequence). Longer sequences are cut to
    `max_length` tokens (their labels then end without </s>).
    """
    sequences = [list(s) for s in sequences]
    if max_length is None:
        max_length = max((len(s) for s in sequences), default=0)
    inputs = np.full((len(sequences), max_length + 1), pad_token, np.int32)
    labels = np.full((len(sequences), max_length + 1), pad_token, np.int32)
    for row, seq in enumerate(sequences):
        framed = [start_token] + seq[:max_length] + ([end_token] if len(seq) <= max_length else [])
        inputs[row, : len(framed) - 1] = framed[:-1]
        labels[row, : len(framed) - 1] = framed[1:]
    return {"inputs": inputs, "labels": labels}


@keras.saving.register_keras_serializable(package="keras_seq")
class RNNLanguageModel(BookModel):
    """An RNN generative sequence model (language model), Fig. 10.7-10.8:

        h(t) = f(h(t-1), y(t-1))                       (the recurrence of `cell`; y(0) = <s>)
        o(t) = c + V h(t),   P(y(t) | y(1..t-1)) = softmax(o(t))   (over all tokens but <pad>, <s>)
        log P(y(1..τ)) = Σ_{t=1}^{τ+1} log P(y(t) | y(1..t-1)),   y(τ+1) = </s>

    y(t-1) enters as an embedding; f is the Elman (eq. 10.8-10.9), LSTM (10.40-10.44) or GRU
    (10.45-10.47) recurrence, `num_layers` deep, run by the fast `keras_seq.layers` layers
    (`self.rnn`). The end symbol </s> is an ordinary output token, so the model learns where
    sequences end (§10.2.3); generation stops at it or at `max_length` tokens.

    The call takes the teacher-forced inputs `[<s>, y(1), ..., y(τ)]` (int (B, T), padded with
    `pad_token`) and returns logits (B, T, vocabulary_size) predicting `[y(1), ..., y(τ), </s>]`;
    `teacher_forcing_arrays` makes both. Train with
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=pad_token)`.

    Args:
        vocabulary_size: Number of tokens, reserved ones included.
        start_token, end_token: Ids of <s> and </s>.
        units: Size of every recurrent layer. Default 128.
        embedding_dim: Size of the token embeddings. Default 32.
        cell: "lstm" (default), "gru" or "elman".
        num_layers: Number of stacked recurrent layers. Default 1.
        dropout: Dropout on the embeddings and between layers (training only). Default 0.
        cell_options: A dict of further cell arguments, e.g. `{"candidate_activation": "tanh"}`.
        max_length: Default length limit of `generate` (tokens, </s> included). Default 32.
        pad_token: The padding id. Default 0.

    Example:

    >>> import keras, numpy as np
    >>> from keras_seq.models.language_model import RNNLanguageModel, teacher_forcing_arrays
    >>> data = teacher_forcing_arrays([[4, 5, 6], [5, 6]], start_token=2, end_token=3)
    >>> model = RNNLanguageModel(7, start_token=2, end_token=3, units=16)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    >>> _ = model.fit(data["inputs"], data["labels"], epochs=1, verbose=0)
    >>> out = model.generate(4, temperature=0.8, top_k=5, seed=1)
    >>> tuple(out["tokens"].shape), tuple(model.sequence_log_probs(out["tokens"]).shape)
    ((4, 32), (4,))
    """

    figure = "10.8"

    def __init__(
        self,
        vocabulary_size,
        start_token,
        end_token,
        units=128,
        embedding_dim=32,
        cell="lstm",
        num_layers=1,
        dropout=0.0,
        cell_options=None,
        max_length=32,
        pad_token=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [("vocabulary_size", vocabulary_size), ("units", units),
                            ("embedding_dim", embedding_dim), ("num_layers", num_layers),
                            ("max_length", max_length)]:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name, value in [("start_token", start_token), ("end_token", end_token),
                            ("pad_token", pad_token)]:
            if not 0 <= value < vocabulary_size:
                raise ValueError(f"`{name}`={value!r} is not an id of a vocabulary of {vocabulary_size}.")
        if pad_token in (start_token, end_token):
            raise ValueError("`pad_token` must differ from `start_token` and `end_token`.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")
        self.vocabulary_size, self.units, self.embedding_dim = vocabulary_size, units, embedding_dim
        self.start_token, self.end_token, self.pad_token = start_token, end_token, pad_token
        self.cell, self.num_layers, self.dropout = cell, num_layers, dropout
        self.cell_options, self.max_length = dict(cell_options or {}), max_length

        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding", dtype=self.dtype_policy)
        self.rnn = [
            recurrent_layer(cell, units, self.cell_options, return_sequences=True, name=f"rnn_{i}",
                            dtype=self.dtype_policy)
            for i in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.output_layer = keras.layers.Dense(vocabulary_size, name="output", dtype=self.dtype_policy)  # o = c + V h

    def build(self, input_shape=None):
        """Creates every weight by running the model once on a dummy batch."""
        if self.built:
            return
        self.call(ops.full((1, 2), self.start_token, "int32"))
        self.built = True

    # -- teacher forcing ---------------------------------------------------------------------------
    def call(self, inputs, training=False):
        tokens = ops.cast(inputs, "int32")
        mask = ops.not_equal(tokens, self.pad_token)
        x = self.dropout_layer(self.embedding(tokens), training=training)
        for layer in self.rnn:
            x = self.dropout_layer(layer(x, mask=mask, training=training), training=training)
        return self.logits(x)

    def logits(self, h):
        """o = c + V h in float32, with <pad> and <s> ruled out (never a next token)."""
        o = ops.cast(self.output_layer(h), "float32")
        never = np.zeros((self.vocabulary_size,), "float32")
        never[[self.pad_token, self.start_token]] = decoding.NEG_INF
        return o + never

    def step_log_probs(self, tokens):
        """log P(y(t) | y(1..t-1)) of every token of `tokens` (B, L), from one teacher-forced pass.

        `tokens` are sequences as the decoders return them: y(1..τ), then </s>, then pads. The
        result is float32 (B, L), 0 at the pads.
        """
        tokens = ops.cast(ops.convert_to_tensor(tokens), "int32")
        start = ops.full((ops.shape(tokens)[0], 1), self.start_token, "int32")
        inputs = ops.concatenate([start, tokens[:, :-1]], axis=1)
        # Pads follow a sequence's </s>: the layers' mask skips them, and their labels count 0.
        log_probs = ops.log_softmax(ops.cast(self(inputs), "float32"), axis=-1)
        picked = ops.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
        return ops.where(ops.not_equal(tokens, self.pad_token), picked, 0.0)

    def sequence_log_probs(self, tokens):
        """log P(y(1..τ)) of each sequence of `tokens` (B, L): the sum of `step_log_probs`.

        Include </s> in each sequence (as the decoders' `tokens` do) to score a complete sequence;
        without it, the result is the probability of the prefix.
        """
        return ops.sum(self.step_log_probs(tokens), axis=-1)

    def perplexity(self, tokens):
        """exp(-Σ log P / number of predicted tokens) over all sequences of `tokens` (a float)."""
        tokens = ops.convert_to_tensor(tokens)
        count = ops.sum(ops.cast(ops.not_equal(ops.cast(tokens, "int32"), self.pad_token), "float32"))
        return float(ops.exp(-ops.sum(self.sequence_log_probs(tokens)) / ops.maximum(count, 1.0)))

    # -- generation --------------------------------------------------------------------------------
    def initial_state(self, batch_size):
        """The zero recurrent states, `{"rnn": [states of each layer]}`, for `decoder_step`."""
        return {"rnn": [list(layer.cell.get_initial_state(batch_size)) for layer in self.rnn]}

    def decoder_step(self, tokens, state):
        """One step for `keras_seq.decoding`: the logits (N, V) of y(t) given y(t-1) = `tokens`."""
        x = self.embedding(tokens)
        new_rnn = []
        for layer, states in zip(self.rnn, state["rnn"]):
            x, new_states = layer.cell(x, list(states))
            new_rnn.append(list(new_states))
        return self.logits(x), {"rnn": new_rnn}

    def generate(
        self,
        num,
        method="sample",
        temperature=1.0,
        top_k=None,
        max_length=None,
        seed=None,
        beam_width=4,
        prefix=None,
    ):
        """Generates `num` sequences in one compiled loop of `keras_seq.decoding`.

        Args:
            num: How many sequences (for "beam": how many of the best, at most `beam_width`).
            method: "sample" (ancestral sampling, Fig. 10.8), "greedy" (the most probable token at
                every step) or "beam" (beam search for the most probable sequences).
            temperature, top_k, seed: Sampling settings (see `keras_seq.decoding.sample`;
                temperature 0 is greedy).
            max_length: Most tokens per sequence, </s> included (default `self.max_length`).
            beam_width: Beams of "beam".
            prefix: Optional token ids y(1..k) that every sequence starts with (e.g. the letters
                "q", "u"): the model reads them first and generates the rest.

        Returns:
            dict with `tokens` int32 (num, max_length) — each sequence y(1..τ) followed by </s>,
            then `pad_token` — `lengths` int32 (num,) (</s> included; `max_length` if </s> never
            came) and `scores` float32 (num,), log P of each sequence. With a `prefix`, the
            tokens and scores are those of the continuation: log P(continuation | prefix).
        """
        max_length = max_length or self.max_length
        common = dict(max_length=max_length, end_token=self.end_token, pad_token=self.pad_token)
        if method == "beam":
            if not 1 <= num <= beam_width:
                raise ValueError(f"method='beam' returns 1 to beam_width={beam_width} sequences, got num={num}.")
            state, start = self._read_prefix(1, prefix)
            out = decoding.beam_search(
                self.decoder_step, state, start, beam_width=beam_width, num_results=num, **common
            )
            return {"tokens": out["tokens"][0], "lengths": out["lengths"][0], "scores": out["scores"][0]}
        state, start = self._read_prefix(num, prefix)
        if method == "greedy":
            return decoding.greedy_search(self.decoder_step, state, start, **common)
        if method == "sample":
            return decoding.sample(
                self.decoder_step, state, start, temperature=temperature, top_k=top_k, seed=seed, **common
            )
        raise ValueError(f"Unknown method {method!r}: use 'sample', 'greedy' or 'beam'.")

    def _read_prefix(self, num, prefix):
        """The state after reading <s> and all of `prefix` but its last token, and that token."""
        tokens = [self.start_token] + [int(t) for t in (prefix or [])]
        if self.pad_token in tokens[1:] or self.start_token in tokens[1:]:
            raise ValueError(f"`prefix` may not contain <pad> or <s>, got {list(prefix)}.")
        state = self.initial_state(num)
        for token in tokens[:-1]:
            _, state = self.decoder_step(ops.full((num,), token, "int32"), state)
        return state, ops.full((num,), tokens[-1], "int32")

    def score(self, tokens, lengths=None):
        """log P of each sequence step by step (`keras_seq.decoding.score_sequences`): the
        free-running counterpart of `sequence_log_probs`, equal to it up to rounding."""
        tokens = ops.cast(ops.convert_to_tensor(tokens), "int32")
        if lengths is None:
            lengths = ops.sum(ops.cast(ops.not_equal(tokens, self.pad_token), "int32"), axis=-1)
        batch = ops.shape(tokens)[0]
        return decoding.score_sequences(
            self.decoder_step, self.initial_state(batch), ops.full((batch,), self.start_token, "int32"),
            tokens, lengths,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "start_token": self.start_token,
            "end_token": self.end_token,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "cell_options": self.cell_options,
            "max_length": self.max_length,
            "pad_token": self.pad_token,
        }
