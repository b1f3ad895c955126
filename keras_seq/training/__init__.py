"""One training configuration and one training loop for every encoder-decoder application.

- `TrainingConfig` (`keras_seq.training.config`): every setting of a run and its default; the CLI
  flags are generated from it, and it is written to the run directory as settings.json.
- `train(application_cls, config, train_examples, dev_examples)` (`keras_seq.training.loop`):
  datasets bucketed by length, callbacks (dev scores, metrics.csv, backup/resume, best-model
  saving), the learning-rate schedule, precision and strategy.
"""

from keras_seq.training.config import TrainingConfig, add_arguments, from_arguments
from keras_seq.training.loop import RunExistsError, train

__all__ = ["RunExistsError", "TrainingConfig", "add_arguments", "from_arguments", "train"]
