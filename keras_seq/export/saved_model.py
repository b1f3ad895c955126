"""`export_saved_model`: one version of a model, written beside the others and published atomically."""

import logging
import os
import secrets
import shutil

from keras_seq.export import repository, warmup
from keras_seq.export.audit import audit_saved_model, read_saved_model
from keras_seq.export.errors import ExportError, ServabilityError
from keras_seq.repository_format import ASSETS_EXTRA_DIR

log = logging.getLogger("keras_seq.export")


def export_saved_model(
    module_or_model,
    base_path,
    version=None,
    signatures=None,
    warmup_requests=None,
    assets=None,
    *,
    model_name=None,
    audit=True,
    verify_warmup=True,
    warmup_inputs=None,
):
    """Write `module_or_model` as version `version` of the TF Serving model at `base_path`.

    Args:
        module_or_model: a `tf.Module` (or any trackable) whose signatures are `tf.function`s with
            input signatures, or a Keras model. A functional Keras model given no `signatures`
            gets a `serving_default` forward pass: inputs named after its `keras.Input`s, outputs
            after its output layers (or its output dict's keys).
        base_path: the model's directory in the repository (`export/<name>`); created if missing.
        version: a non-negative integer. None: one more than the highest version present (1 if
            none). An existing version is never overwritten (`VersionExistsError`).
        signatures: as for `tf.saved_model.save`: a `tf.function` with an input signature, a
            concrete function, or a dict from signature name to either. For a Keras model, a dict
            of `tf.function`s with input signatures (added as `ExportArchive` endpoints).
        warmup_requests: up to 1000 requests written to `assets.extra/tf_serving_warmup_requests`
            (see `write_warmup_requests` for the accepted forms).
        assets: {file name: bytes, or the path of a file or directory to copy} written under
            `assets.extra/`, beside the SavedModel (files the graph reads belong in `assets/`
            through `tf.saved_model.Asset`).
        model_name: the model name inside warmup requests; default: `base_path`'s last component.
        audit: refuse (`ServabilityError`) an export holding ops CPU TF Serving cannot run.
        verify_warmup: load the written SavedModel and run every warmup request on it before
            publishing, since TF Serving refuses to load a version whose warmup fails.
        warmup_inputs: `{signature name: {input alias: array}}`: one more warmup request per
            signature, after `warmup_requests`.

    Returns:
        The path of the published version directory.

    Raises:
        VersionExistsError, InsufficientDiskSpaceError, ServabilityError, ExportError.
    """
    base_path = os.path.abspath(os.fspath(base_path))
    model_name = model_name or os.path.basename(base_path.rstrip(os.sep))
    asked = None if version is None else repository.check_version(version)
    os.makedirs(base_path, exist_ok=True)
    repository.clean_stale_temporaries(base_path)
    _check_assets(assets)
    requests = [] if warmup_requests is None else warmup.to_predict_logs(warmup_requests, model_name)
    if warmup_inputs:
        requests += warmup.to_predict_logs(dict(warmup_inputs), model_name)
    if len(requests) > warmup.MAX_WARMUP_RECORDS:
        raise ExportError(f"{len(requests)} warmup requests: TF Serving refuses more than {warmup.MAX_WARMUP_RECORDS}")

    variables_bytes = repository.estimate_size_bytes(module_or_model)
    repository.check_disk_space(base_path, 2 * variables_bytes + _assets_size(assets) + repository.DISK_MARGIN_BYTES)

    chosen = asked if asked is not None else repository.next_version(base_path)
    repository.refuse_existing(base_path, chosen)
    temporary = os.path.join(base_path, f".tmp-{chosen}-{secrets.token_hex(4)}")
    os.mkdir(temporary)
    try:
        _save(module_or_model, temporary, signatures)
        os.makedirs(os.path.join(temporary, "assets"), exist_ok=True)
        os.makedirs(os.path.join(temporary, ASSETS_EXTRA_DIR), exist_ok=True)
        _copy_assets(assets, os.path.join(temporary, ASSETS_EXTRA_DIR))
        if requests:
            warmup.write_warmup_requests(temporary, requests, model_name=model_name)
        offenders = audit_saved_model(temporary, strict=False) if audit else []
        if offenders:
            raise ServabilityError(f"the export of {model_name} version {chosen}", offenders)
        if requests and verify_warmup:
            warmup.run_warmup_requests(temporary)
        repository.fsync_tree(temporary)
        chosen = repository.publish(temporary, base_path, chosen, retry=asked is None)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    final = os.path.join(base_path, str(chosen))
    log.info("exported %s version %d to %s", model_name, chosen, final)
    return final


def _save(module_or_model, path, signatures):
    import tensorflow as tf

    if _is_keras_model(module_or_model):
        _save_keras(module_or_model, path, signatures)
        return
    _track_keras_variables(module_or_model)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=True)
    try:
        tf.saved_model.save(module_or_model, path, signatures=signatures, options=options)
    except (TypeError, ValueError) as e:
        raise ExportError(f"could not save {type(module_or_model).__name__} as a SavedModel: {e}") from e
    if not _signature_names(path):
        raise ExportError(
            f"{type(module_or_model).__name__} was saved without any signature; TF Serving needs at "
            "least one: pass signatures= (tf.functions with input_signature)"
        )


# The attribute through which `_track_keras_variables` tracks the tf.Variables of Keras layers.
KERAS_VARIABLES_ATTRIBUTE = "_export_keras_variables"


def _track_keras_variables(module):
    """Track the tf.Variables behind the Keras 3 variables reachable from `module`, on `module`.

    A `tf.Module` that holds a Keras 3 model as an attribute saves a SavedModel that Python loads
    fine but TensorFlow's C++ loader (TF Serving's) cannot run: the signatures read the Keras
    variables' handles while the checkpoint restore op assigns other handles, so serving fails with
    "Could not find variable dense/kernel". Tracking the underlying tf.Variables as well (as
    `ExportArchive.track` does for Keras models) makes the restore op assign the handles the
    signatures read. `audit.audit_saved_model` checks the outcome ("never restored").
    """
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return
    if keras.backend.backend() != "tensorflow":
        return
    values, seen = [], set()
    for trackable in tf.train.TrackableView(module).descendants():
        # A layer's `variables` also holds those of the layers it keeps in lists (an ensemble's
        # members), which are not checkpoint dependencies and so not among the descendants.
        if isinstance(trackable, keras.layers.Layer):
            candidates = trackable.variables
        elif isinstance(trackable, keras.Variable):
            candidates = [trackable]
        else:
            continue
        for variable in candidates:
            value = getattr(variable, "value", None)
            if isinstance(value, tf.Variable) and id(value) not in seen:
                seen.add(id(value))
                values.append(value)
    if values:
        setattr(module, KERAS_VARIABLES_ATTRIBUTE, values)


def _is_keras_model(obj):
    try:
        import keras
    except ImportError:
        return False
    return isinstance(obj, keras.Model)


def _save_keras(model, path, signatures):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    if signatures is None:
        fn, input_signature = keras_serving_function(model)
        archive.add_endpoint("serving_default", fn, input_signature=input_signature)
    else:
        if not isinstance(signatures, dict):
            signatures = {"serving_default": signatures}
        for name, fn in signatures.items():
            if getattr(fn, "input_signature", None) is None:
                raise ExportError(f"signature {name!r} of a Keras model must be a tf.function with an input_signature")
            archive.add_endpoint(name, fn)
    archive.write_out(path, verbose=False)


def keras_serving_function(model):
    """`(fn, input_signature)`: a forward pass of a functional Keras model with named inputs/outputs.

    The inputs are the model's `keras.Input`s, named as they are (give them names: Keras numbers
    unnamed inputs with a global counter); the batch dimension is left unknown. The outputs are a
    dict named after the output layers, or the keys of a dict output.
    """
    import keras
    import tensorflow as tf

    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ExportError(
            f"{type(model).__name__} has no symbolic inputs (a subclassed or unbuilt model): pass "
            "signatures= (tf.functions with input_signature) to export it"
        )
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise ExportError(f"the model's inputs need distinct names, got {names}")
    input_signature = [
        tf.TensorSpec((None,) + tuple(t.shape[1:]), tf.as_dtype(t.dtype), name=n) for t, n in zip(inputs, names)
    ]
    structure = model.input
    output_names = list(getattr(model, "output_names", None) or [])

    def serve(*args):
        x = keras.tree.pack_sequence_as(structure, list(args))
        y = model(x, training=False)
        if isinstance(y, dict):
            return dict(y)
        flat = keras.tree.flatten(y)
        keys = output_names if len(output_names) == len(flat) and len(set(output_names)) == len(flat) else [
            f"output_{i}" for i in range(len(flat))
        ]
        return dict(zip(keys, flat))

    return serve, input_signature


def _check_assets(assets):
    for name, source in (assets or {}).items():
        parts = os.path.normpath(name).split(os.sep)
        if os.path.isabs(name) or ".." in parts or name in ("", "."):
            raise ExportError(f"asset name {name!r} must be a relative path inside assets.extra/")
        if name == warmup.WARMUP_FILE:
            raise ExportError(f"{warmup.WARMUP_FILE!r} is written from warmup_requests=, not from assets=")
        if not isinstance(source, (bytes, bytearray)) and not os.path.exists(source):
            raise ExportError(f"asset {name!r}: no such file or directory {source!r}")


def _copy_assets(assets, directory):
    for name, source in (assets or {}).items():
        target = os.path.join(directory, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(source, (bytes, bytearray)):
            with open(target, "wb") as f:
                f.write(source)
        elif os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)


def _assets_size(assets):
    total = 0
    for source in (assets or {}).values():
        if isinstance(source, (bytes, bytearray)):
            total += len(source)
        elif os.path.isdir(source):
            for root, _, files in os.walk(source):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        elif os.path.exists(source):
            total += os.path.getsize(source)
    return total


def _signature_names(path):
    names = set()
    for meta_graph in read_saved_model(path).meta_graphs:
        names.update(meta_graph.signature_def.keys())
    names.discard("__saved_model_init_op")
    return names
