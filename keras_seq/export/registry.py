"""What `keras-seq export --model PATH` writes for a path, without importing any application.

An application registers its model directories: `register_model_directory(settings_file, load)`
where `load(directory, shards=...)` returns ``{"module", "signatures", "warmup_requests"}`` for
`export_saved_model`. `load_for_export(path)` finds the application whose settings file the
directory holds; a `.keras` file is loaded here (an encoder-decoder is exported with decoding
signatures over token ids, any other Keras model with its forward pass).
"""

from __future__ import annotations

import importlib
import os

from keras_seq.export.errors import ExportError

__all__ = ["register_model_directory", "load_for_export"]

_MODEL_DIRECTORIES = {}  # settings file name -> load function


def register_model_directory(settings_file, load):
    """Model directories holding `settings_file` are exported with `load(directory, shards=...)`."""
    _MODEL_DIRECTORIES[settings_file] = load


def load_for_export(path, shards=None, **options):
    """``{"module": ..., and optionally "signatures", "warmup_requests"}`` for `path`; `options`
    (e.g. G2P's ``dictionary``, ``lexicon``) go to the application's `load`, which must take them."""
    path = os.fspath(path)
    options = {k: v for k, v in options.items() if v not in (None, False)}
    if os.path.isfile(path) and path.endswith(".keras"):
        if options:
            raise ExportError(f"{', '.join(sorted(options))}: not an option of a .keras file's export")
        return _load_keras_file(path, shards)
    if not os.path.isdir(path):
        raise ExportError(f"--model {path!r} is neither a model directory nor a .keras file")
    for settings_file, load in _MODEL_DIRECTORIES.items():
        if os.path.isfile(os.path.join(path, settings_file)):
            try:
                return load(path, **({} if shards is None else {"shards": shards}), **options)
            except TypeError as e:
                if options and "unexpected keyword" in str(e):
                    raise ExportError(f"{', '.join(sorted(options))}: not an option of this model's export "
                                      f"({settings_file})") from None
                raise
    known = ", ".join(sorted(_MODEL_DIRECTORIES)) or "none registered"
    raise ExportError(f"{path} is not a model directory of a registered application (settings files: {known})")


def _load_keras_file(path, shards):
    import keras

    for name in ("keras_seq.cells", "keras_seq.layers", "keras_seq.models"):  # register their classes
        importlib.import_module(name)
    model = keras.saving.load_model(path, safe_mode=True)
    if hasattr(model, "generate"):  # an encoder-decoder: decoding signatures over token ids
        from keras_seq.export.seq2seq import TokenServingModule

        module = TokenServingModule(model, shards=2 if shards is None else shards)
        return {"module": module, "signatures": module.signatures(), "warmup_requests": module.warmup_inputs()}
    if shards is not None:
        raise ExportError("--shards applies to encoder-decoders, not to this .keras model")
    return {"module": model}
