"""`keras_seq.layers.base.use_jax_cpu_flags`: the XLA flags for JAX's CPU client, set on import.

JAX reads XLA_FLAGS once per process, so the JAX cases run in fresh processes."""

import os
import subprocess
import sys
from pathlib import Path

import keras

from keras_seq.layers import base

ROOT = Path(__file__).resolve().parents[2]

PROBE = r'''
import os
import keras_seq.layers  # sets the flags, before JAX's first computation
import jax
from jax._src import xla_bridge
print("FLAGS", os.environ.get("XLA_FLAGS"))
print("DEVICES", len(jax.devices()))
import keras_seq.layers.base as base
print("IN EFFECT", base.use_jax_cpu_flags(), xla_bridge.backends_are_initialized())
'''


def probe(xla_flags):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), XLA_FLAGS=xla_flags)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(line.split(" ", 1) if not line.startswith("IN EFFECT") else ("IN EFFECT", line[10:])
                for line in proc.stdout.splitlines() if line.split(" ", 1)[0] in ("FLAGS", "DEVICES", "IN"))


def test_jax_gets_the_flags_and_keeps_the_users():
    out = probe("--xla_force_host_platform_device_count=2")
    assert out["FLAGS"].split() == ["--xla_force_host_platform_device_count=2", *base.JAX_CPU_XLA_FLAGS]
    assert out["DEVICES"] == "2"  # XLA read the user's flag beside ours: it read them all
    assert out["IN EFFECT"] == "True True"  # JAX has started, with them


def test_a_flag_the_user_set_keeps_the_users_value():
    name = base.JAX_CPU_XLA_FLAGS[0].split("=", 1)[0]
    out = probe(f"{name}=true")
    assert out["FLAGS"] == f"{name}=true"
    assert out["IN EFFECT"] == "False True"  # the user's value rules


def test_other_backends_are_left_alone(monkeypatch):
    if keras.backend.backend() == "jax":  # the suite runs on TensorFlow; under JAX see the probes
        return
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
    assert base.use_jax_cpu_flags() is False
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/nowhere"
