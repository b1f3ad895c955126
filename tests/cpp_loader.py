"""Build and run `tests/cpp/load_saved_model.cc`: a SavedModel run through TensorFlow's C++ loader.

`tensorflow::LoadSavedModel` (tensorflow/cc/saved_model/loader.h) is the loader TF Serving uses. The
program is compiled against the installed `tensorflow` wheel's own headers and libraries
(`tf.sysconfig`), so it runs the very kernels and loader of the TensorFlow the exports were made
with. Linking needs `-Wl,--no-as-needed` with `libtensorflow_framework.so.2` first: nothing in the
program refers to the session factories directly, and without the flag the linker drops the
library whose static initializers register them ("No session factory registered").
"""

import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpp", "load_saved_model.cc")


def find_compiler():
    """The C++ compiler to use ($CXX, then g++, c++, clang++), or None."""
    for candidate in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def compile_command(compiler, output):
    import tensorflow as tf

    lib = tf.sysconfig.get_lib()
    return [
        compiler,
        *tf.sysconfig.get_compile_flags(),  # -I<include>, -D_GLIBCXX_USE_CXX11_ABI=<0|1>, --std=c++17, ...
        "-O1",
        "-w",  # the TF headers are noisy with deprecation warnings
        SOURCE,
        "-o",
        output,
        f"-L{lib}",
        "-Wl,--no-as-needed",
        "-l:libtensorflow_framework.so.2",
        "-l:libtensorflow_cc.so.2",
        f"-Wl,-rpath,{lib}",
    ]


def build(directory):
    """Compile the loader into `directory`; return `(binary path, seconds taken)`.

    Raises RuntimeError with the compiler's output if the build fails, FileNotFoundError if there
    is no compiler.
    """
    compiler = find_compiler()
    if compiler is None:
        raise FileNotFoundError("no C++ compiler (set CXX, or install g++)")
    binary = os.path.join(directory, "load_saved_model")
    start = time.monotonic()
    result = subprocess.run(compile_command(compiler, binary), check=False, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE} failed:\n{result.stdout}\n{result.stderr[-8000:]}")
    return binary, seconds


def run_signature(binary, export_dir, signature, inputs, timeout=120):
    """Run `signature` of the SavedModel at `export_dir` with `inputs` ({alias: array}) in C++.

    Returns {output alias: NumPy array}. Raises RuntimeError with the program's stderr on failure.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    with tempfile.TemporaryDirectory(prefix="cpp-loader-") as work:
        args = []
        for i, (alias, value) in enumerate(sorted(inputs.items())):
            path = os.path.join(work, f"input{i}.pb")
            with open(path, "wb") as f:
                f.write(tf.make_tensor_proto(np.asarray(value)).SerializeToString())
            args.append(f"{alias}={path}")
        out = os.path.join(work, "out")
        os.mkdir(out)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [binary, os.fspath(export_dir), signature, out, *args], check=False,
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"load_saved_model exited {result.returncode}:\n{result.stderr[-4000:]}")
        outputs = {}
        with open(os.path.join(out, "outputs.txt")) as f:
            for line in f.read().splitlines():
                index, alias = line.split(" ", 1)
                proto = tensor_pb2.TensorProto()
                with open(os.path.join(out, f"{index}.pb"), "rb") as g:
                    proto.ParseFromString(g.read())
                outputs[alias] = tf.make_ndarray(proto)
        return outputs
