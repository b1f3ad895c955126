"""The architectures of *Deep Learning* (Goodfellow, Bengio & Courville), ch. 10, as Keras models.

- `SequenceTagger`: an output at every step, hidden-to-hidden recurrence (Fig. 10.3).
- `OutputRecurrentTagger`: output-to-hidden recurrence with teacher forcing (Fig. 10.4, 10.6).
- `SequenceClassifier`: one output for a whole sequence (Fig. 10.5).
- `VectorToSequence`: a sequence generated from a fixed context vector (Fig. 10.9).
- `ConditionalSequenceTagger`: output feedback conditioned on the input sequence (Fig. 10.10).
- `BidirectionalTagger`: forward and backward states at every step (Fig. 10.11).
- `RNNLanguageModel`: the RNN as a generative sequence model with an end symbol (Fig. 10.7-10.8).
- `EncoderDecoder`: sequence to sequence of another length, with teacher forcing, beam search,
  the context optionally fed to every decoder step, and optional attention (Fig. 10.12).
- `EncoderDecoderEnsemble`: several encoder-decoders decoded as one (mean log-probabilities).
- `SliceAdam` and `Adam` (`keras_seq.models.optimizers`): the training loop's two Adams, each with
  the same update on TensorFlow and JAX: `SliceAdam` (the default) is Keras's Adam as it steps an
  embedding table on TensorFlow, from the per-occurrence slices of its gradient (reproduced on
  JAX by the models' training step); `Adam` sums those slices first (Adam's step). The models'
  files name them, so they live beside the models that load them.
"""

from keras_seq.models.classifier import SequenceClassifier
from keras_seq.models.output_feedback import (
    ConditionalSequenceTagger, OutputRecurrentTagger, VectorToSequence,
)
from keras_seq.models.taggers import BidirectionalTagger, SequenceTagger
from keras_seq.models.seq2seq import AdditiveAttention, EncoderDecoder
from keras_seq.models.ensemble import EncoderDecoderEnsemble
from keras_seq.models.language_model import RNNLanguageModel, teacher_forcing_arrays
from keras_seq.models.optimizers import Adam, SliceAdam
