"""keras_seq.repository_format: TF Serving's disk format, one home for the exporter and the server."""

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_seq import repository_format as fmt

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_seq"


# ------------------------------------------------------------------------------- parse_version


@pytest.mark.parametrize(
    "name, version",
    [
        ("1", 1),
        ("0001", 1),  # leading zeros: still version 1
        ("0", 0),
        (" 7 ", 7),  # absl::SimpleAtoi strips ASCII whitespace on both sides
        ("\t7\n", 7),
        ("+7", 7),
        ("-3", -3),  # an int64; what a negative version means is the caller's to decide
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
    ],
)
def test_parse_version_reads_names_as_simple_atoi(name, version):
    assert fmt.parse_version(name) == version


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "1.5",
        "abc",
        "1e3",
        "0x10",
        "1_000",  # Python's int() takes it, SimpleAtoi does not
        "1 2",
        "+",
        "--1",
        ".tmp-3-0a1b2c3d",  # an export's temporary
        "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it, SimpleAtoi reads ASCII digits only
        "7\u00a0",  # a non-ASCII space
        str(2**63),  # past int64
        str(-(2**63) - 1),
        "9" * 40,
    ],
)
def test_parse_version_refuses_what_simple_atoi_refuses(name):
    assert fmt.parse_version(name) is None


# ------------------------------------------------------------------------------- list_versions


def test_list_versions_lists_version_directories_only(tmp_path):
    for name in ("1", "0003", "10", ".tmp-11-deadbeef", "abc", "1.5"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file named like a version is not one")
    assert fmt.list_versions(tmp_path) == {
        1: os.path.join(tmp_path, "1"),
        3: os.path.join(tmp_path, "0003"),
        10: os.path.join(tmp_path, "10"),
    }


def test_list_versions_of_an_empty_folder_is_empty(tmp_path):
    assert fmt.list_versions(tmp_path) == {}


def test_list_versions_of_a_missing_folder_raises(tmp_path):
    # TF Serving's poll fails ("Could not find base path") and changes nothing: a server must tell
    # "no versions" from "cannot read the base path", or a glitch would look like an empty model.
    with pytest.raises(FileNotFoundError):
        fmt.list_versions(tmp_path / "missing")


def test_list_versions_follows_a_symbolic_link_to_a_directory(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "4").symlink_to(tmp_path / "real")
    assert fmt.list_versions(tmp_path) == {4: os.path.join(tmp_path, "4")}


def test_duplicate_versions_keep_the_first_name_and_warn(tmp_path, caplog):
    for name in ("1", "01", "001", "2"):
        (tmp_path / name).mkdir()
    with caplog.at_level(logging.WARNING, logger=fmt.__name__):
        versions = fmt.list_versions(tmp_path)
    assert versions == {1: os.path.join(tmp_path, "001"), 2: os.path.join(tmp_path, "2")}
    warnings = [r.getMessage() for r in caplog.records if "Duplicate version directories" in r.getMessage()]
    assert len(warnings) == 2
    assert all(os.path.join(tmp_path, "001") in w for w in warnings)


def test_a_file_beside_a_version_directory_is_no_duplicate(tmp_path, caplog):
    (tmp_path / "01").write_text("")
    (tmp_path / "1").mkdir()
    with caplog.at_level(logging.WARNING, logger=fmt.__name__):
        assert fmt.list_versions(tmp_path) == {1: os.path.join(tmp_path, "1")}
    assert not caplog.records


# ------------------------------------------------------------------------------------ warmup


def test_warmup_file_location(tmp_path):
    assert fmt.warmup_path(tmp_path / "3") == os.path.join(tmp_path, "3", "assets.extra", "tf_serving_warmup_requests")
    assert fmt.ASSETS_EXTRA_DIR == "assets.extra"
    assert fmt.WARMUP_FILE == "tf_serving_warmup_requests"
    assert fmt.MAX_WARMUP_RECORDS == 1000


# ------------------------------------------------------------------------- one home, two users


def test_export_and_serving_use_the_shared_definitions():
    import keras_seq.export as ex
    from keras_seq.export import repository, warmup
    from keras_seq.serving import inference
    from keras_seq.serving import repository as serving_repository

    assert ex.parse_version is repository.parse_version is serving_repository.parse_version is fmt.parse_version
    assert ex.list_versions is repository.list_versions is serving_repository.list_versions is fmt.list_versions
    assert ex.WARMUP_FILE == warmup.WARMUP_FILE == fmt.WARMUP_FILE
    assert ex.MAX_WARMUP_RECORDS == inference.MAX_WARMUP_RECORDS == fmt.MAX_WARMUP_RECORDS


def test_next_version_of_a_base_path_not_yet_created_is_1(tmp_path):
    from keras_seq.export import next_version

    assert next_version(tmp_path / "not-yet") == 1
    (tmp_path / "m" / "0041").mkdir(parents=True)
    assert next_version(tmp_path / "m") == 42


def _imported_modules(path):
    """Absolute module names `path` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            yield module
            # `from keras_seq import serving` imports keras_seq.serving.
            yield from (f"{module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize(
    "package, forbidden", [("export", "keras_seq.serving"), ("serving", "keras_seq.export")]
)
def test_export_and_serving_never_import_each_other(package, forbidden):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in _imported_modules(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert not offenders


def test_repository_format_imports_only_the_standard_library():
    path = PACKAGE / "repository_format.py"
    outside = [m for m in _imported_modules(path) if m.split(".")[0] not in sys.stdlib_module_names]
    assert not outside


def test_export_loads_without_the_server_grpc_or_tensorflow():
    code = (
        "import sys, keras_seq.export; "
        "print(sorted(m for m in ('grpc', 'tensorflow', 'tensorflow_serving', 'keras_seq.serving') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
