"""`python -m keras_seq.cli COMMAND ...`, the same as `keras-seq COMMAND ...`."""

import sys

from keras_seq.cli import main

sys.exit(main())
