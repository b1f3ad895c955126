"""A TF Serving model repository on disk: version directories, export temporaries, atomic
publishing (fsync, then a rename that never replaces), and the free-space check.

TF Serving reads a child of a model's base path as a version when absl::SimpleAtoi parses its name
(`0007` is version 7); everything else, such as an export's `.tmp-<version>-<hex>`, is ignored.
That reading (`parse_version`, `list_versions`) lives in `keras_seq.repository_format`, shared
with the server.
"""

import ctypes
import errno
import logging
import os
import re
import shutil
import sys
import time

from keras_seq.export.errors import (
    ExportError,
    InsufficientDiskSpaceError,
    VersionExistsError,
)
# TF Serving's reading of version directories, one for the exporter and the server.
from keras_seq.repository_format import list_versions, parse_version  # noqa: F401 (re-exported)

log = logging.getLogger("keras_seq.export")

# Room asked for beyond twice the variables' size: the graph, assets, filesystem overhead.
DISK_MARGIN_BYTES = 64 << 20
# Temporary directories older than this are leftovers of killed exports.
STALE_AFTER_SECONDS = 3600.0
_TEMPORARY_NAME = re.compile(r"^\.tmp-\d+-[0-9a-f]+$")


def next_version(base_path):
    """One more than the highest version in `base_path`, or 1 when there is none (or no
    `base_path` yet: the export creates it)."""
    try:
        versions = list_versions(base_path)
    except FileNotFoundError:
        return 1
    return max(max(versions) + 1, 1) if versions else 1


def clean_stale_temporaries(base_path, max_age_seconds=STALE_AFTER_SECONDS):
    """Remove the temporary directories that killed exports left in `base_path`.

    Only directories named like an export's temporary (`.tmp-<version>-<hex>`) in which nothing has
    changed for `max_age_seconds` are removed, so an export still running is left alone. Returns
    the removed paths.
    """
    removed = []
    try:
        entries = os.listdir(base_path)
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        path = os.path.join(base_path, entry)
        if not _TEMPORARY_NAME.match(entry) or not os.path.isdir(path) or os.path.islink(path):
            continue
        if now - _newest_mtime(path) < max_age_seconds:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            log.info("removed stale export temporary %s", path)
            removed.append(path)
    return removed


def _newest_mtime(path):
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


def check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise ExportError(f"version must be a non-negative integer, got {version!r}")
    parsed = parse_version(str(version)) if isinstance(version, str) else version
    if parsed is None or not 0 <= parsed <= 2**63 - 1:  # a non-negative int64
        raise ExportError(f"version must be a non-negative 64-bit integer, got {version!r}")
    return parsed


def refuse_existing(base_path, version):
    existing = list_versions(base_path).get(version)
    if existing is not None or os.path.lexists(os.path.join(base_path, str(version))):
        existing = existing or os.path.join(base_path, str(version))
        raise VersionExistsError(
            errno.EEXIST,
            f"version {version} already exists at {existing}; versions are never overwritten "
            f"(export a new version, or delete the old one yourself)",
        )


def publish(temporary, base_path, version, retry):
    """Rename `temporary` to the version directory; with `retry`, move on to the next free number
    if another exporter took `version` meanwhile. Returns the version published."""
    for _ in range(100):
        try:
            refuse_existing(base_path, version)
            _rename_no_replace(temporary, os.path.join(base_path, str(version)))
        except FileExistsError:
            if not retry:
                raise VersionExistsError(
                    errno.EEXIST, f"version {version} of {base_path} appeared while exporting; not overwritten"
                ) from None
            version = max(version + 1, next_version(base_path))
            continue
        _fsync_dir(base_path)
        return version
    raise ExportError(f"could not find a free version number in {base_path}")


def fsync_tree(path):
    """fsync every file and directory under `path`, children before their directory."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _rename_no_replace(src, dst):
    """rename(2) `src` to `dst`, failing with FileExistsError if `dst` exists.

    Uses renameat2(RENAME_NOREPLACE) where the kernel and filesystem have it, so two exporters
    racing for one version cannot replace each other's; elsewhere, a check then os.rename.
    """
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform.startswith("linux") else None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_noreplace = -100, 1
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
            return
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def estimate_size_bytes(module_or_model):
    """Bytes of the variables a module or Keras model will write (strings counted as empty)."""
    variables = getattr(module_or_model, "variables", None)
    if variables is None or callable(variables):
        variables = getattr(module_or_model, "weights", ())
    total, seen = 0, set()
    for v in variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        try:
            size = int(v.dtype.size) if hasattr(v.dtype, "size") else int(_np_itemsize(v.dtype))
            count = 1
            for d in v.shape:
                count *= int(d)
        except (TypeError, ValueError, AttributeError):
            continue
        total += size * count
    return total


def _np_itemsize(dtype):
    import numpy as np

    return np.dtype(str(dtype)).itemsize


def check_disk_space(base_path, needed_bytes):
    """Raise InsufficientDiskSpaceError unless `base_path`'s filesystem has `needed_bytes` free."""
    free = shutil.disk_usage(base_path).free
    if free < needed_bytes:
        raise InsufficientDiskSpaceError(
            errno.ENOSPC,
            f"not enough free disk space to export into {base_path}: {_mib(needed_bytes)} needed "
            f"(twice the variables plus {_mib(DISK_MARGIN_BYTES)}), {_mib(free)} free",
        )
    return free


def _mib(n):
    return f"{n / (1 << 20):.1f} MiB"
