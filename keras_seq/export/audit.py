"""The servability audit: is every op of a SavedModel runnable by a CPU TensorFlow Serving?

Walks the main graph and every function of the function library. Refused: cuDNN ops, Python
callbacks (`PyFunc`, `PyFuncStateless`, `EagerPyFunc`), XLA ops and functions marked
`_XlaMustCompile` (TF Serving runs with XLA off), ops unknown to this TensorFlow (custom ops), ops
without a CPU kernel for their dtypes, and variables that the checkpoint restore op never assigns
(which TF Serving's C++ loader leaves uninitialized).
"""

import functools
import os
from dataclasses import dataclass

from keras_seq.export.errors import ExportError, ServabilityError


@dataclass(frozen=True)
class Offender:
    """One op that CPU TF Serving cannot run: its type, node, the function holding it, and why."""

    op: str
    node: str
    function: str  # "<main graph>" for nodes outside the function library
    reason: str

    def __str__(self):
        return f"{self.op} (node {self.node!r} in {self.function}): {self.reason}"


_PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
_MAIN_GRAPH = "<main graph>"


def audit_saved_model(path, strict=True):
    """Check every op of the SavedModel at `path` against a CPU TensorFlow Serving.

    Walks the main graph and every function of the function library of each `serve` MetaGraphDef.
    An op is refused when it is a cuDNN op, a Python callback (`PyFunc`, `PyFuncStateless`,
    `EagerPyFunc`), an XLA op (`Xla*`, `_Xla*`), unknown to this TensorFlow (a custom op), or has no
    CPU kernel matching its dtypes; a function marked `_XlaMustCompile` (`jit_compile=True`) is
    refused too, since TF Serving runs with XLA off. Calls of library functions, `Placeholder`,
    `Const`, `NoOp`, `Identity`, `While`, `If` and other ops with CPU (or any-device) kernels pass.

    Returns the list of `Offender`s; with `strict` (the default), raises ServabilityError if any.
    """
    saved_model = read_saved_model(path)
    offenders = []
    serve_graphs = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    if not serve_graphs:
        offenders.append(Offender("-", "-", _MAIN_GRAPH, "no MetaGraphDef tagged 'serve', which TF Serving loads"))
    for meta_graph in serve_graphs:
        offenders += _unrestored_variables(meta_graph)
        graph = meta_graph.graph_def
        library = {f.signature.name: f for f in graph.library.function}
        called = _called_from_main_graph(meta_graph, library)
        for node in graph.node:
            offenders += _check_node(node, _MAIN_GRAPH, library)
        for name, function in sorted(library.items()):
            where = f"function {name}" + ("" if name in called else " (called by no signature: a gradient?)")
            if _attr_true(function.attr.get("_XlaMustCompile")):
                offenders.append(
                    Offender("-", "-", where, "marked _XlaMustCompile (jit_compile=True): needs XLA at serving time")
                )
            for node in function.node_def:
                offenders += _check_node(node, where, library)
    offenders = list(dict.fromkeys(offenders))
    if strict and offenders:
        raise ServabilityError(path, offenders)
    return offenders


def _called_from_main_graph(meta_graph, library):
    """The library functions the main graph's nodes call, directly or through other functions,
    leaving out the checkpoint save and restore functions. Functions outside this set (the
    gradients of `tf.custom_gradient`, say) never run when TF Serving answers a request; they are
    still audited, and their offences say so."""
    saver = meta_graph.saver_def
    skip = {_node_name(saver.save_tensor_name), _node_name(saver.restore_op_name)}
    pending = []
    for node in meta_graph.graph_def.node:
        if node.name not in skip:
            pending += _callees(node, library)
    called = set()
    while pending:
        name = pending.pop()
        if name in called or name not in library:
            continue
        called.add(name)
        for node in library[name].node_def:
            pending += _callees(node, library)
    return called


def _callees(node, library):
    return ([node.op] if node.op in library else []) + _called_functions(node)


def _unrestored_variables(meta_graph):
    """Variables the graph reads that its checkpoint restore op never assigns.

    TF Serving's loader restores variables only through `saver_def.restore_op_name`; a variable
    handle read elsewhere but not passed to that op stays uninitialized ("Could not find variable").
    Checked for TF2 SavedModels, whose restore op is one function call taking every handle.
    """
    graph, saver = meta_graph.graph_def, meta_graph.saver_def
    nodes = {n.name: n for n in graph.node}
    restore = nodes.get(_node_name(saver.restore_op_name))
    if restore is None or restore.op not in ("StatefulPartitionedCall", "PartitionedCall"):
        return []
    save = _node_name(saver.save_tensor_name)

    def handle(name):
        node = nodes.get(_node_name(name))
        while node is not None and node.op == "Identity" and node.input:
            node = nodes.get(_node_name(node.input[0]))
        return node if node is not None and node.op in ("VarHandleOp", "_VarHandlesOp") else None

    restored = {h.name for h in map(handle, restore.input) if h is not None}
    offenders = []
    for node in graph.node:
        # Signatures and the init op run graph nodes only through function calls; other readers
        # (the `<name>/Read/ReadVariableOp` nodes every save writes) are never run.
        if node.name in (restore.name, save) or node.op not in ("StatefulPartitionedCall", "PartitionedCall"):
            continue
        for name in node.input:
            h = None if name.startswith("^") else handle(name)
            if h is not None and h.name not in restored:
                reader = f"{node.name} ({node.attr['f'].func.name})"
                offenders.append(Offender(
                    h.op, h.name, _MAIN_GRAPH,
                    f"variable {h.attr['shared_name'].s.decode() or h.name!r} is read by {reader} but never "
                    "restored from variables/: TensorFlow's C++ loader (TF Serving) fails with 'Could not find "
                    "variable' (a Keras 3 model tracked by a tf.Module? track [v.value for v in model.variables] too)",
                ))
    return offenders


def _node_name(tensor_name):
    return tensor_name.lstrip("^").split(":")[0]


def read_saved_model(path):
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.fspath(path)
    saved_model = saved_model_pb2.SavedModel()
    binary, text = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(binary):
        with open(binary, "rb") as f:
            saved_model.ParseFromString(f.read())
    elif os.path.exists(text):
        with open(text) as f:
            text_format.Parse(f.read(), saved_model)
    else:
        raise ExportError(f"no saved_model.pb in {path}")
    return saved_model


def _check_node(node, where, library):
    op = node.op
    reason = None
    if _attr_true(node.attr.get("_XlaMustCompile")):
        reason = "called with _XlaMustCompile (jit_compile=True): needs XLA at serving time"
    elif op in library:
        return []  # a direct call of a library function; its body is checked on its own
    elif op.startswith("Cudnn"):
        reason = "cuDNN op: runs only on NVIDIA GPUs"
    elif op in _PYTHON_OPS:
        reason = "calls back into Python, which TF Serving does not have"
    elif op.startswith(("Xla", "_Xla")):
        reason = "XLA op: TF Serving runs with XLA compilation off"
    else:
        reason = _kernel_problem(node)
    missing = [f for f in _called_functions(node) if f not in library]
    offenders = [Offender(op, node.name, where, reason)] if reason else []
    offenders += [Offender(op, node.name, where, f"calls function {f!r}, missing from the library") for f in missing]
    return offenders


def _kernel_problem(node):
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return "op not registered in this TensorFlow (a custom op needs a custom model server build)"
    cpu = _cpu_kernels(node.op)
    if not cpu:
        return "no CPU kernel registered"
    defaults = {a.name: a.default_value for a in op_def.attr if a.HasField("default_value")}
    if any(_constraints_hold(k, node.attr, defaults) for k in cpu):
        return None
    dtypes = ", ".join(f"{c.name}={_attr_text(node.attr.get(c.name, defaults.get(c.name)))}" for c in cpu[0].constraint)
    return f"no CPU kernel for {dtypes}"


@functools.cache
def _cpu_kernels(op):
    """The KernelDefs registered for `op` on CPU or on any device (ms per call: cached)."""
    from tensorflow.python.framework import kernels

    return tuple(k for k in kernels.get_registered_kernels_for_op(op).kernel if k.device_type in ("CPU", "DEFAULT"))


def _constraints_hold(kernel, attrs, defaults):
    for constraint in kernel.constraint:
        value = attrs.get(constraint.name, defaults.get(constraint.name))
        if value is None:
            continue  # unknown here (e.g. a placeholder attr): give the benefit of the doubt
        allowed = set(constraint.allowed_values.list.type)
        kind = value.WhichOneof("value")
        if kind == "type" and value.type not in allowed:
            return False
        if kind == "list" and any(t not in allowed for t in value.list.type):
            return False
    return True


def _attr_text(value):
    import tensorflow as tf

    if value is None:
        return "?"
    if value.WhichOneof("value") == "type":
        return tf.dtypes.as_dtype(value.type).name
    if value.WhichOneof("value") == "list":
        return "[" + ", ".join(tf.dtypes.as_dtype(t).name for t in value.list.type) + "]"
    return "?"


def _attr_true(value):
    return value is not None and value.WhichOneof("value") == "b" and value.b


def _called_functions(node):
    names = []
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        if kind == "func" and value.func.name:
            names.append(value.func.name)
        elif kind == "list":
            names += [f.name for f in value.list.func if f.name]
    return names
