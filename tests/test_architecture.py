"""The floors of ../shared/ARCHITECTURE.md, checked from the source: each package imports only the
floors below it (imports inside functions count too)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_seq"
LOW = {"cells", "layers", "models", "decoding"}
# package -> the keras_seq packages (or modules) it may import
ALLOWED = {
    "cells": {"cells"},
    "layers": {"cells", "layers"},
    "models": LOW,
    "decoding": LOW,
    "text": {"text"},
    "training": LOW | {"text", "training", "distribute"},
    # The serving module and the registry of model directories sit below every application.
    "seq2seq": LOW | {"text", "training", "distribute", "seq2seq", "export.seq2seq", "export.registry"},
    "g2p": LOW | {"text", "training", "distribute", "seq2seq", "g2p", "export.seq2seq", "export.registry"},
    "export": LOW | {"text", "export", "repository_format"},
    "serving": {"serving", "repository_format"},
    "repository_format": set(),
}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _files(name):
    return [PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists() else sorted((PACKAGE / name).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_floor_imports_only_the_floors_below(package):
    bad = []
    for path in _files(package):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "keras_seq" or len(parts) < 2:
                continue
            target = parts[1]
            if target in ALLOWED[package] or ".".join(parts[1:3]) in ALLOWED[package]:
                continue
            if module.count(".") >= 2 and module.rsplit(".", 1)[0].split(".", 1)[1] in ALLOWED[package]:
                continue  # `from keras_seq.export.seq2seq import X` yields keras_seq.export.seq2seq.X too
            bad.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not bad, "\n".join(bad)


def test_no_private_keras_imports_but_in_one_module():
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "keras.src" in p.read_text())
    assert users == ["cells/_keras_private.py"]


def test_the_check_fails_on_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "keras_seq" / "text").mkdir(parents=True)
    (tmp_path / "keras_seq" / "text" / "bad.py").write_text("def f():\n    from keras_seq.g2p import G2P\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "keras_seq")
    with pytest.raises(AssertionError, match="text/bad.py imports keras_seq.g2p"):
        test_each_floor_imports_only_the_floors_below("text")
