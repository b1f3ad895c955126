"""The encoder-decoder of *Deep Learning*, Fig. 10.12, with teacher forcing and compiled decoding.

An encoder RNN reads the input sequence X = (x(1), ..., x(n_x)) and emits a context C (its final
states); a decoder RNN, conditioned on C, generates Y = (y(1), ..., y(n_y)), of another length. C
starts the decoder (its initial states) and, as an option, is also an input of every decoder step,
as the figure draws it (the vector-to-sequence conditioning of Fig. 10.9; Cho et al., 2014).
Training maximizes log P(y(1..n_y) | X) by teacher forcing (§10.2.1, Fig. 10.6): the decoder reads
the true previous outputs, `decoder_inputs = [<s>, y(1), ..., y(n_y)]`, and predicts
`labels = [y(1), ..., y(n_y), </s>]`, all steps at once through the fast layers. Inference feeds
the decoder its own outputs inside one compiled loop (`keras_seq.decoding`): greedy search, beam
search or sampling.
"""

import keras
from keras import ops

from keras_seq import decoding
from keras_seq.layers import cell_class_of
from keras_seq.models.base import BookModel, recurrent_layer


def _sequence_layer(cell, units, candidate_activation, name, dtype):
    """The fast layer of cell type `cell`; `candidate_activation` goes to cells that take one."""
    takes_it = candidate_activation is not None and cell_class_of(cell).takes_candidate_activation
    options = {"candidate_activation": candidate_activation} if takes_it else {}
    return recurrent_layer(cell, units, options, return_sequences=True, return_state=True, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_seq")
class AdditiveAttention(keras.layers.Layer):
    """Additive (Bahdanau et al., 2015) attention over the encoder's outputs e(1..n_x):

        score(t, j) = vᵀ tanh(W_q h(t) + W_k e(j)),   α(t) = softmax_j(score(t, ·)) over valid j
        a(t) = Σ_j α(t, j) e(j),                       h̃(t) = tanh(W_c [h(t); a(t)])

    An option beyond the book's Fig. 10.12. The scores are Bahdanau's; the attention reads the
    decoder's output h(t) and its result h̃(t) feeds the output layer (Luong et al., 2015's
    placement), so teacher-forced training keeps every step parallel.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True  # the query's time mask passes through unchanged

    def build(self, query_shape, memory_shape=None):
        memory_dim = memory_shape[-1] if memory_shape is not None else query_shape[-1]
        self.W_q = self.add_weight(shape=(query_shape[-1], self.units), name="W_q")
        self.W_k = self.add_weight(shape=(memory_dim, self.units), name="W_k")
        self.v = self.add_weight(shape=(self.units,), name="v")
        self.W_c = self.add_weight(shape=(query_shape[-1] + memory_dim, query_shape[-1]), name="W_c")

    def keys(self, memory):
        """W_k e(j) for every encoder output: computed once per input, reused at every step."""
        return ops.matmul(memory, self.W_k)  # (B, n, units)

    def call(self, query, memory, memory_mask=None, return_weights=False, keys=None):
        """query: (B, T, d) or (B, d); memory: (B, n, m); memory_mask: (B, n) bool; `keys`:
        `self.keys(memory)` when the caller has it already (the decoding loop does)."""
        single_step = len(query.shape) == 2
        if single_step:
            query = query[:, None, :]
        if keys is None:
            keys = self.keys(memory)
        queries = ops.matmul(query, self.W_q)  # (B, T, units)
        scores = ops.sum(ops.tanh(queries[:, :, None, :] + keys[:, None, :, :]) * self.v, axis=-1)
        if memory_mask is not None:
            scores = ops.where(memory_mask[:, None, :], scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)  # (B, T, n)
        context = ops.matmul(weights, memory)
        attended = ops.tanh(ops.matmul(ops.concatenate([query, context], axis=-1), self.W_c))
        if single_step:
            attended, weights = attended[:, 0], weights[:, 0]
        return (attended, weights) if return_weights else attended

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Decoding:
    """Scoring and decoding for a sequence-to-sequence model that defines `call` (teacher-forced
    logits), `initial_decoder_state(encoder_inputs)` (a dict whose `"rnn"` entry changes at every
    step, the other entries constant) and `decoder_step(tokens, state)`, and has `start_token`,
    `end_token`, `pad_token` and `max_output_length`: `EncoderDecoder` and
    `EncoderDecoderEnsemble`."""

    def sequence_log_probs(self, encoder_inputs, decoder_inputs, labels):
        """log P(labels | X) per sequence from one teacher-forced pass (pads in labels skipped)."""
        logits = self({"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs})
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        labels = ops.cast(labels, "int32")
        picked = ops.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        return ops.sum(ops.where(ops.not_equal(labels, self.pad_token), picked, 0.0), axis=-1)

    def generate(
        self,
        encoder_inputs,
        method="greedy",
        max_length=None,
        beam_width=4,
        length_penalty=0.0,
        num_results=None,
        temperature=1.0,
        top_k=None,
        seed=None,
        beam_widths=None,
        max_lengths=None,
    ):
        """Decodes output sequences for a batch of input token ids, in one compiled loop.

        Args:
            encoder_inputs: int (B, n_x), padded with `pad_token`.
            method: "greedy", "beam" or "sample".
            max_length: Largest number of generated tokens (default `max_output_length`).
            beam_width, length_penalty, num_results: Beam search settings (see
                `keras_seq.decoding.beam_search`).
            temperature, top_k, seed: Sampling settings (see `keras_seq.decoding.sample`).
            beam_widths, max_lengths: None, or int (B,) tensors: per-row settings under the
                static maxima `beam_width` and `max_length`, in the same loop (see
                `keras_seq.decoding.beam_search`); `length_penalty`, `temperature`, `top_k`
                and `seed` may be (B,) tensors too.

        Returns:
            The decoder's dict: `tokens`, `lengths`, `scores` (and `log_probs` for beams); the
            tokens include the end token and are followed by pads.
        """
        max_length = max_length or self.max_output_length
        encoder_inputs = ops.cast(ops.convert_to_tensor(encoder_inputs), "int32")
        state = self.initial_decoder_state(encoder_inputs)
        # Only the recurrent states travel through the loop (and, for beams, are reordered at
        # every step); the attention's memory and the step context are constant, so the step
        # function closes over them, tiled once per beam.
        constants = {k: v for k, v in state.items() if k != "rnn"}
        if method == "beam" and constants:
            constants = decoding.tile_beams(constants, beam_width)

        def step(tokens, loop_state):
            logits, new_state = self.decoder_step(tokens, {**loop_state, **constants})
            return logits, {"rnn": new_state["rnn"]}

        state = {"rnn": state["rnn"]}
        start = ops.full((ops.shape(encoder_inputs)[0],), self.start_token, "int32")
        common = dict(max_length=max_length, end_token=self.end_token, pad_token=self.pad_token,
                      max_lengths=max_lengths)
        if method == "greedy":
            return decoding.greedy_search(step, state, start, **common)
        if method == "beam":
            return decoding.beam_search(
                step, state, start, beam_width=beam_width,
                length_penalty=length_penalty, num_results=num_results, beam_widths=beam_widths, **common,
            )
        if method == "sample":
            return decoding.sample(
                step, state, start, temperature=temperature, top_k=top_k, seed=seed, **common
            )
        raise ValueError(f"Unknown decoding method {method!r}: use 'greedy', 'beam' or 'sample'.")


@keras.saving.register_keras_serializable(package="keras_seq")
class EncoderDecoder(Decoding, BookModel):
    """Encoder-decoder (sequence-to-sequence) RNN, Fig. 10.12 of *Deep Learning*.

    Encoder: embeddings of the input tokens, then `encoder_layers` recurrent layers (optionally
    bidirectional, Fig. 10.11). Context C: the final states of every encoder layer. Bridge: when
    the encoder's states do not fit the decoder's (a bidirectional encoder, or depths that
    differ), C passes through learned dense layers, one per decoder state (OpenNMT's dense
    bridge); otherwise C is copied into the decoder's initial states. Decoder: embeddings of the
    previous outputs (with `context_every_step`, each concatenated with tanh(W_C C + b_C), the
    same vector at every step), `decoder_layers` recurrent layers started from C, optional
    additive attention, and an output layer o = c + V h giving logits over the output vocabulary.

    Inputs are integer token ids padded with `pad_token` (0): `{"encoder_inputs": (B, n_x),
    "decoder_inputs": (B, n_y)}`; the output is logits (B, n_y, vocabulary). Train with
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=pad_token)`.

    Args:
        input_vocabulary_size, output_vocabulary_size: Sizes of the token vocabularies.
        start_token, end_token: Output-vocabulary ids of <s> and </s>.
        units: Size of every recurrent layer. Default 256.
        embedding_dim: Size of the token embeddings. Default 64.
        cell: "lstm", "gru" or "elman" (or a name registered with
            `keras_seq.layers.register_sequence_layer`): the book cell of every recurrent layer.
        encoder_layers, decoder_layers: Depths. Default 1 each.
        bidirectional_encoder: Read X in both directions (Fig. 10.11). Default True.
        attention: Add additive attention (see `AdditiveAttention`). Default False.
        context_every_step: Also feed the context C to the first decoder layer at every step,
            through a learned projection to `units` (Fig. 10.12 draws C into every decoder
            state; Fig. 10.9 shows this way of conditioning on a vector), so that the decoder
            need not carry all of C in its state. Default False: C only starts the decoder.
        dropout: Dropout on embeddings and between layers. Default 0.
        candidate_activation: The LSTM/GRU candidate nonlinearity (None: the book's sigmoid);
            ignored for a cell without one (`takes_candidate_activation` False, as the Elman's).
        scheduled_sampling: Probability of replacing each teacher-forced decoder input by the
            model's own prediction in training (Bengio et al., 2015). Default 0 (pure teacher
            forcing). Implemented as *parallel* scheduled sampling (Duckworth et al., 2019): one
            teacher-forced pass predicts every position, the mixed inputs feed a second pass;
            the gradient flows through the second pass only.
        max_output_length: Default length limit of generated sequences.
        pad_token: The padding id of both vocabularies. Default 0.

    Example:

    >>> model = EncoderDecoder(30, 20, start_token=2, end_token=3, units=32)
    >>> logits = model({"encoder_inputs": np.ones((2, 5), "int32"),
    ...                 "decoder_inputs": np.full((2, 4), 2, "int32")})
    >>> out = model.generate(np.ones((2, 5), "int32"), method="beam", beam_width=4)
    """

    def __init__(
        self,
        input_vocabulary_size,
        output_vocabulary_size,
        start_token,
        end_token,
        units=256,
        embedding_dim=64,
        cell="lstm",
        encoder_layers=1,
        decoder_layers=1,
        bidirectional_encoder=True,
        attention=False,
        context_every_step=False,
        dropout=0.0,
        candidate_activation=None,
        scheduled_sampling=0.0,
        max_output_length=32,
        pad_token=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers),
                            ("units", units), ("embedding_dim", embedding_dim),
                            ("max_output_length", max_output_length)]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"`scheduled_sampling` must be in [0, 1], got {scheduled_sampling!r}.")
        self.input_vocabulary_size = input_vocabulary_size
        self.output_vocabulary_size = output_vocabulary_size
        self.start_token, self.end_token, self.pad_token = start_token, end_token, pad_token
        self.units, self.embedding_dim, self.cell = units, embedding_dim, cell
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.bidirectional_encoder, self.use_attention = bidirectional_encoder, attention
        self.context_every_step = bool(context_every_step)
        self.dropout, self.candidate_activation = dropout, candidate_activation
        self.scheduled_sampling, self.max_output_length = scheduled_sampling, max_output_length

        # Every sublayer takes the model's dtype policy, so that a model saved under a mixed policy
        # reloads with it (its config keeps the model's policy, not the global one at load time).
        dtype = self.dtype_policy
        self.source_embedding = keras.layers.Embedding(
            input_vocabulary_size, embedding_dim, name="source_embedding", dtype=dtype)
        self.target_embedding = keras.layers.Embedding(
            output_vocabulary_size, embedding_dim, name="target_embedding", dtype=dtype)
        self.encoder = []
        for i in range(encoder_layers):
            layer = _sequence_layer(cell, units, candidate_activation, f"encoder_{i}", dtype)
            if bidirectional_encoder:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_encoder_{i}", dtype=dtype)
            self.encoder.append(layer)
        self.decoder = [
            _sequence_layer(cell, units, candidate_activation, f"decoder_{i}", dtype) for i in range(decoder_layers)
        ]
        self.states_per_layer = len(self.decoder[0].cell.state_names)  # h, and s for the LSTM
        self.copy_bridge = not bidirectional_encoder and encoder_layers == decoder_layers
        self.bridge = []
        if not self.copy_bridge:
            self.bridge = [
                keras.layers.Dense(units, activation="tanh", name=f"bridge_{i}", dtype=dtype)
                for i in range(decoder_layers * self.states_per_layer)
            ]
        self.attention = AdditiveAttention(units, name="attention", dtype=dtype) if attention else None
        self.context_projection = (
            keras.layers.Dense(units, activation="tanh", name="context_projection", dtype=dtype)
            if self.context_every_step else None
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=dtype)
        self.output_layer = keras.layers.Dense(output_vocabulary_size, name="output", dtype=dtype)  # o = c + V h
        self.seed_generator = keras.random.SeedGenerator(0)  # scheduled sampling's draws

    # -- encoder ---------------------------------------------------------------------------------
    def encode(self, encoder_inputs, training=False):
        """Runs the encoder; returns `(memory, memory_mask, decoder_initial_states, step_context)`.

        `memory` (B, n_x, d) holds the top encoder layer's outputs (for attention), `memory_mask`
        (B, n_x) is True at real tokens, `decoder_initial_states` is one list of states per
        decoder layer: the context C after the bridge, and `step_context` (B, units) is C's
        projection fed to every decoder step (None without `context_every_step`).
        """
        tokens = ops.cast(encoder_inputs, "int32")
        mask = ops.not_equal(tokens, self.pad_token)
        x = self.dropout_layer(self.source_embedding(tokens), training=training)
        final_states = []
        for layer in self.encoder:
            x, *states = layer(x, mask=mask, training=training)
            final_states.append(states)
            x = self.dropout_layer(x, training=training)
        context = None
        if not self.copy_bridge or self.context_projection is not None:
            context = ops.concatenate([s for states in final_states for s in states], axis=-1)
        if self.copy_bridge:
            initial = final_states
        else:
            flat = [dense(context) for dense in self.bridge]
            k = self.states_per_layer
            initial = [flat[i * k : (i + 1) * k] for i in range(self.decoder_layers)]
        step_context = None
        if self.context_projection is not None:
            step_context = self.dropout_layer(self.context_projection(context), training=training)
        return x, mask, initial, step_context

    def decoder_inputs_of(self, tokens, step_context=None, training=False):
        """The first decoder layer's inputs for previous-output ids `tokens` ((B, T) or (B,)):
        their embeddings, with `context_every_step` followed by the step context."""
        x = self.dropout_layer(self.target_embedding(tokens), training=training)
        if step_context is None:
            return x
        if len(x.shape) == 3:  # every step of a teacher-forced pass reads the same vector
            step_context = ops.broadcast_to(
                step_context[:, None, :], (ops.shape(x)[0], ops.shape(x)[1], ops.shape(step_context)[-1]))
        return ops.concatenate([x, ops.cast(step_context, x.dtype)], axis=-1)

    # -- teacher-forced decoder ------------------------------------------------------------------
    def decode(self, decoder_inputs, initial_states, memory, memory_mask, step_context=None, training=False):
        """Teacher-forced decoder pass: logits (B, n_y, V) for all steps at once."""
        tokens = ops.cast(decoder_inputs, "int32")
        mask = ops.not_equal(tokens, self.pad_token)
        x = self.decoder_inputs_of(tokens, step_context, training=training)
        for layer, states in zip(self.decoder, initial_states):
            x, *_ = layer(x, initial_state=states, mask=mask, training=training)
            x = self.dropout_layer(x, training=training)
        if self.attention is not None:
            x = self.attention(x, memory, memory_mask)
        return self.output_layer(x)

    def call(self, inputs, training=False):
        encoder_inputs, decoder_inputs = self._unpack(inputs)
        memory, memory_mask, initial, step_context = self.encode(encoder_inputs, training=training)
        logits = self.decode(decoder_inputs, initial, memory, memory_mask, step_context, training=training)
        if training and self.scheduled_sampling > 0:
            predicted = ops.stop_gradient(ops.cast(ops.argmax(logits, axis=-1), "int32"))
            tokens = ops.cast(decoder_inputs, "int32")
            # The prediction at step t is the candidate input of step t + 1; step 0 keeps <s>.
            shifted = ops.concatenate([tokens[:, :1], predicted[:, :-1]], axis=1)
            draw = keras.random.uniform(ops.shape(tokens), seed=self.seed_generator)
            replace = ops.logical_and(draw < self.scheduled_sampling, ops.not_equal(tokens, self.pad_token))
            mixed = ops.where(replace, shifted, tokens)
            logits = self.decode(mixed, initial, memory, memory_mask, step_context, training=training)
        return logits

    @staticmethod
    def _unpack(inputs):
        if isinstance(inputs, dict):
            return inputs["encoder_inputs"], inputs["decoder_inputs"]
        return inputs

    def build(self, input_shape=None):
        """Creates every weight by running the model once on a dummy batch."""
        if self.built:
            return
        ones = ops.ones((1, 2), "int32")
        self.call({"encoder_inputs": ones, "decoder_inputs": ones})
        self.built = True

    # -- decoding (`Decoding` has sequence_log_probs and generate) -------------------------------
    def decoder_step(self, tokens, state):
        """One decoder step for `keras_seq.decoding`: `(logits (N, V), new_state)`.

        `state` is `{"rnn": [states of each decoder layer]}`, with attention also `"memory"`,
        `"memory_mask"` and `"keys"` (the attention's projected memory, computed once), with
        `context_every_step` also `"context"` (the step context).
        """
        x = self.decoder_inputs_of(tokens, state.get("context"))
        new_rnn = []
        for layer, states in zip(self.decoder, state["rnn"]):
            x, new_states = layer.cell(x, list(states))
            new_rnn.append(list(new_states))
        if self.attention is not None:
            x = self.attention(x, state["memory"], state["memory_mask"], keys=state["keys"])
        logits = ops.cast(self.output_layer(x), "float32")
        return logits, {**state, "rnn": new_rnn}

    def initial_decoder_state(self, encoder_inputs):
        memory, memory_mask, initial, step_context = self.encode(encoder_inputs)
        state = {"rnn": [list(s) for s in initial]}
        if self.attention is not None:
            state.update(memory=memory, memory_mask=memory_mask, keys=self.attention.keys(memory))
        if step_context is not None:
            state["context"] = step_context
        return state

    def get_config(self):
        return {
            **super().get_config(),
            "input_vocabulary_size": self.input_vocabulary_size,
            "output_vocabulary_size": self.output_vocabulary_size,
            "start_token": self.start_token,
            "end_token": self.end_token,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "bidirectional_encoder": self.bidirectional_encoder,
            "attention": self.use_attention,
            "context_every_step": self.context_every_step,
            "dropout": self.dropout,
            "candidate_activation": self.candidate_activation,
            "scheduled_sampling": self.scheduled_sampling,
            "max_output_length": self.max_output_length,
            "pad_token": self.pad_token,
        }
