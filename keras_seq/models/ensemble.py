"""Several encoder-decoders (Fig. 10.12) decoded as one model: an ensemble.

With members m = 1..M that share their vocabularies, the ensemble's distribution of the next
output is the normalized geometric mean of theirs:

    log P(y(t) | y(1..t-1), X) = (1/M) Σ_m log P_m(y(t) | y(1..t-1), X) - log Z(t)

where Z(t) normalizes over the output vocabulary. Each member runs its own encoder and decoder;
the beam search (or greedy search, or sampling) is shared, in the same compiled loop as one model's.
"""

import keras
from keras import ops

from keras_seq.models.base import BookModel
from keras_seq.models.seq2seq import Decoding, EncoderDecoder

# What the members must agree on to predict over the same vocabulary.
_SHARED = ("input_vocabulary_size", "output_vocabulary_size", "start_token", "end_token", "pad_token")


@keras.saving.register_keras_serializable(package="keras_seq")
class EncoderDecoderEnsemble(Decoding, BookModel):
    """An ensemble of `EncoderDecoder`s, with the `EncoderDecoder` interface for inference.

    `call` returns the ensemble's log-probabilities (B, n_y, V) (the mean of the members'
    log-softmax outputs, which `log_softmax` normalizes), so `sequence_log_probs` and `generate`
    (greedy, beam, sample) work as for one model, and so does the G2P export. The members may
    differ in everything but their vocabularies and special tokens (cells, sizes, attention).
    Ensembles are for inference: train the members on their own.

    Args:
        members: A list of at least two `EncoderDecoder`s (or their serialized configs).

    Example:

    >>> a = EncoderDecoder(30, 20, start_token=2, end_token=3, units=32)
    >>> b = EncoderDecoder(30, 20, start_token=2, end_token=3, units=16, attention=True)
    >>> ensemble = EncoderDecoderEnsemble([a, b])
    >>> out = ensemble.generate(np.ones((2, 5), "int32"), method="beam", beam_width=4)
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = [keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in members]
        if len(members) < 2:
            raise ValueError(f"An ensemble needs at least two members, got {len(members)}.")
        for i, member in enumerate(members):
            if not isinstance(member, EncoderDecoder):
                raise TypeError(f"Member {i} is a {type(member).__name__}, not an EncoderDecoder.")
            for name in _SHARED:
                if getattr(member, name) != getattr(members[0], name):
                    raise ValueError(
                        f"Member {i} has {name}={getattr(member, name)!r} but member 0 has "
                        f"{getattr(members[0], name)!r}: the members of an ensemble must share their vocabularies."
                    )
        self.members = members
        for name in _SHARED:
            setattr(self, name, getattr(members[0], name))
        self.max_output_length = max(m.max_output_length for m in members)
        self.built = all(m.built for m in members)  # members loaded from a config build in `build`

    def build(self, input_shape=None):
        for member in self.members:
            member.build()
        self.built = True

    def call(self, inputs, training=False):
        log_probs = [ops.log_softmax(ops.cast(m(inputs, training=training), "float32"), axis=-1) for m in self.members]
        return ops.mean(ops.stack(log_probs), axis=0)

    def initial_decoder_state(self, encoder_inputs):
        """`{"rnn": [each member's recurrent states], "members": [each member's constants]}`."""
        states = [m.initial_decoder_state(encoder_inputs) for m in self.members]
        return {
            "rnn": [state["rnn"] for state in states],
            "members": [{k: v for k, v in state.items() if k != "rnn"} for state in states],
        }

    def decoder_step(self, tokens, state):
        """Every member's step from the same previous tokens; the mean of their log-softmax."""
        log_probs, new_rnn = [], []
        for member, rnn, constants in zip(self.members, state["rnn"], state["members"]):
            logits, new_state = member.decoder_step(tokens, {**constants, "rnn": rnn})
            log_probs.append(ops.log_softmax(logits, axis=-1))
            new_rnn.append(new_state["rnn"])
        return ops.mean(ops.stack(log_probs), axis=0), {**state, "rnn": new_rnn}

    def get_config(self):
        return {**super().get_config(), "members": [keras.saving.serialize_keras_object(m) for m in self.members]}
