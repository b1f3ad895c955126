"""The model repository: versions on disk, version policies, labels, polling and swaps.

This mirrors TF Serving's ServerCore with a file-system storage path source and the
availability-preserving version policy:

- a version is a child directory of `base_path` whose name parses as an integer (`0001` is 1;
  `keras_seq.repository_format.list_versions`, shared with the exporter);
- the version policy picks the aspired versions (`latest{num_versions}`, `all{}`,
  `specific{versions}`); a new aspired version is loaded (and warmed up) before versions that are
  no longer aspired are unloaded, and those stay loaded while no aspired version is available, so
  a version that fails to load never replaces a working one;
- every version the manager has tried is tracked with its state (LOADING, AVAILABLE, END, ...)
  and status, for GetModelStatus; a failed version stays in END and is not retried;
- `version_labels` map labels to versions that must be AVAILABLE.
"""

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field

import grpc
from tensorflow_serving.apis import get_model_status_pb2

from keras_seq.repository_format import list_versions, parse_version  # noqa: F401 (re-exported)
from keras_seq.serving import errors, inference
from keras_seq.serving.servable import Servable

log = logging.getLogger("keras_seq.serving")

State = get_model_status_pb2.ModelVersionStatus.State
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass
class ModelSettings:
    """One entry of a `model_config_list`, reduced to what the repository needs."""

    name: str
    base_path: str
    policy: str = "latest"  # "latest", "all" or "specific"
    num_versions: int = 1
    specific: frozenset = frozenset()
    labels: dict = field(default_factory=dict)

    @classmethod
    def from_proto(cls, config):
        policy = config.model_version_policy
        which = policy.WhichOneof("policy_choice")
        settings = cls(name=config.name, base_path=config.base_path, labels=dict(config.version_labels))
        if which == "all":
            settings.policy = "all"
        elif which == "specific":
            settings.policy = "specific"
            settings.specific = frozenset(policy.specific.versions)
        elif which == "latest":
            settings.num_versions = policy.latest.num_versions or 1
        return settings

    def aspired(self, on_disk):
        """The versions of `on_disk` that the policy wants loaded."""
        if self.policy == "all":
            return set(on_disk)
        if self.policy == "specific":
            return set(on_disk) & self.specific
        return set(sorted(on_disk, reverse=True)[: self.num_versions])


def check_model_config_list(config, allowed_roots=None):
    """The checks ServerCore makes on a config before applying it, plus the root confinement.

    Args:
        config: a ModelServerConfig.
        allowed_roots: directories that base paths must lie inside (None: anywhere).

    Returns:
        A list of ModelSettings.
    """
    if config.WhichOneof("config") != "model_config_list":
        raise errors.invalid_argument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported"
        )
    settings, names = [], set()
    for model in config.model_config_list.config:
        if model.name in names:
            raise errors.invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
        if not _MODEL_NAME.match(model.name):
            raise errors.invalid_argument(
                f"Illegal model name {model.name!r}: use letters, digits, '_', '.' and '-' only"
            )
        if not model.model_platform and not model.model_type:
            raise errors.invalid_argument(
                "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                f"ModelServerConfig::model_platform, model name is {model.name}"
            )
        if model.model_platform and model.model_platform != "tensorflow":
            raise errors.invalid_argument(f"Model {model.name} requested unsupported platform {model.model_platform}")
        if not os.path.isabs(model.base_path):
            raise errors.invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; got base_path()={model.base_path}"
            )
        check_inside_roots(model.name, model.base_path, allowed_roots)
        settings.append(ModelSettings.from_proto(model))
    return settings


def check_inside_roots(name, base_path, allowed_roots):
    """Refuses base paths with `..` or outside `allowed_roots` (symbolic links resolved)."""
    if ".." in base_path.replace("\\", "/").split("/"):
        raise errors.invalid_argument(f"Model {name} base_path {base_path} must not contain '..'")
    if allowed_roots is None:
        return
    real = os.path.realpath(base_path)
    for root in allowed_roots:
        root = os.path.realpath(root)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return
    raise errors.invalid_argument(
        f"Model {name} base_path {base_path} is outside the allowed model roots: {', '.join(allowed_roots)}"
    )


class _Version:
    """A version the manager has seen: its state, status and (when loaded) servable."""

    def __init__(self, version, path):
        self.version = version
        self.path = path
        self.state = State.START
        self.error = None  # a ServingError once the load failed
        self.servable = None


@dataclass
class LoadOptions:
    """How versions are loaded (the `--max_num_load_retries` family of flags)."""

    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    enable_model_warmup: bool = True
    warmup_iterations: int = 1
    session_config: object = None
    runner: object = None  # the runner warmup requests go through (batching included)
    metrics: object = None  # a metrics.Metrics that counts load attempts, or None


class ModelManager:
    """The versions of one model: polls its base path and loads/unloads per its policy."""

    def __init__(self, settings, load_options, stop_event):
        self.settings = settings
        self.load_options = load_options
        self._stop = stop_event
        self._lock = threading.RLock()
        self._versions = {}  # version -> _Version
        self._poll_lock = threading.Lock()
        self.removed = False
        self._warned_empty = False

    @property
    def name(self):
        return self.settings.name

    # -- serving
    def acquire(self, version=None):
        """The servable of `version` (the latest available one when None), acquired, or None."""
        with self._lock:
            if version is None:
                available = [v for v in self._versions.values() if v.state == State.AVAILABLE]
                candidate = max(available, key=lambda v: v.version, default=None)
            else:
                candidate = self._versions.get(version)
                if candidate is not None and candidate.state != State.AVAILABLE:
                    candidate = None
            if candidate is not None and candidate.servable.acquire():
                return candidate.servable
        return None

    def available_versions(self):
        with self._lock:
            return sorted(v.version for v in self._versions.values() if v.state == State.AVAILABLE)

    def version_statuses(self):
        """[(version, state, ServingError or None)] newest first, END versions included."""
        with self._lock:
            return [(v.version, v.state, v.error) for v in sorted(self._versions.values(), key=lambda v: -v.version)]

    # -- polling
    def poll(self):
        """One pass: load new aspired versions, then unload what is no longer aspired."""
        with self._poll_lock:
            if self.removed:
                return
            try:
                on_disk = list_versions(self.settings.base_path)
            except OSError as e:
                # As TF Serving: a failed listing changes nothing (a glitch must not unload a model).
                log.warning(
                    "Could not list versions of servable %s under %s: %s", self.name, self.settings.base_path, e
                )
                return
            if not on_disk and not self._warned_empty:
                log.warning(
                    "No versions of servable %s found under base path %s. Did you forget to name your "
                    "leaf directory as a number (eg. '/1/')?",
                    self.name,
                    self.settings.base_path,
                )
                self._warned_empty = True
            aspired = self.settings.aspired(on_disk)
            for version in sorted(aspired, reverse=True):
                with self._lock:
                    known = self._versions.get(version)
                if known is None or (known.state == State.END and known.error is None):
                    self._load(version, on_disk[version])
            self._unload_unaspired(aspired)

    def _load(self, version, path):
        record = _Version(version, path)
        record.state = State.LOADING
        with self._lock:
            self._versions[version] = record
        attempts = 1 + max(0, self.load_options.max_num_load_retries)
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                servable = Servable.load(self.name, version, path, session_config=self.load_options.session_config)
                try:
                    if self.load_options.enable_model_warmup:
                        runner = self.load_options.runner or inference.direct_runner
                        inference.run_warmup(servable, runner, self.load_options.warmup_iterations)
                except Exception:
                    servable.retire()
                    raise
            except Exception as e:
                self._record_load(path, False, started)
                error = errors.from_tensorflow_error(e)
                log.error("Loading servable: {name: %s version: %d} failed: %s", self.name, version, error.message)
                if attempt + 1 < attempts and not self._stop.wait(self.load_options.load_retry_interval_s):
                    if os.path.isdir(path):
                        log.info("Retrying load of servable: {name: %s version: %d}", self.name, version)
                        continue
                with self._lock:
                    record.state, record.error = State.END, error
                return
            self._record_load(path, True, started)
            with self._lock:
                record.servable, record.state = servable, State.AVAILABLE
            log.info("Successfully loaded servable version {name: %s version: %d}", self.name, version)
            return

    def _record_load(self, path, ok, started):
        if self.load_options.metrics is not None:
            self.load_options.metrics.record_load(path, ok, time.perf_counter() - started)

    def _unload_unaspired(self, aspired):
        with self._lock:
            loaded = [v for v in self._versions.values() if v.state == State.AVAILABLE]
            aspired_ready = any(v.version in aspired for v in loaded)
            if aspired and not aspired_ready:
                return  # availability preserving: keep what serves until an aspired version does
            doomed = [v for v in loaded if v.version not in aspired]
            for record in doomed:
                record.state = State.UNLOADING
        for record in doomed:
            self._unload(record)

    def _unload(self, record):
        servable = record.servable
        with self._lock:
            record.servable = None
            record.state = State.END
        servable.retire()
        log.info("Done unloading servable version {name: %s version: %d}", self.name, record.version)

    def unload_all(self):
        """Unloads every loaded version (the model left the config, or the server stops)."""
        with self._poll_lock:
            self.removed = True
            with self._lock:
                loaded = [v for v in self._versions.values() if v.state == State.AVAILABLE]
                for record in loaded:
                    record.state = State.UNLOADING
            for record in loaded:
                self._unload(record)


class ServerCore:
    """All models of the server: the config, the managers, labels, polling and resolution.

    Args:
        load_options: a LoadOptions.
        poll_wait_seconds: like `--file_system_poll_wait_seconds` (0: poll once; < 0: never).
        allowed_roots: directories that base paths of reloaded configs must lie inside.
    """

    def __init__(self, load_options=None, poll_wait_seconds=1.0, allowed_roots=None):
        self.load_options = load_options or LoadOptions()
        self.poll_wait_seconds = poll_wait_seconds
        self.allowed_roots = allowed_roots
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._config_lock = threading.Lock()
        self._models = {}  # name -> ModelManager
        self._labels = {}  # name -> {label: version}
        self._poller = None

    # -- config
    def apply_config(self, config, initial=False):
        """Replaces the whole model config; blocks until added models have loaded (or failed).

        Raises ServingError: config errors (INVALID_ARGUMENT), labels on unavailable versions
        (FAILED_PRECONDITION), and at startup models that did not become available (UNKNOWN).
        """
        with self._config_lock:
            settings = check_model_config_list(config, None if initial else self.allowed_roots)
            wanted = {s.name: s for s in settings}
            with self._lock:
                current = dict(self._models)
            added = []
            for name, model_settings in wanted.items():
                manager = current.get(name)
                if manager is None or manager.settings.base_path != model_settings.base_path:
                    added.append(ModelManager(model_settings, self.load_options, self._stop))
                else:
                    manager.settings = model_settings
            for manager in added:
                manager.poll()
            with self._lock:
                replaced = []
                for manager in added:
                    if manager.name in self._models:
                        replaced.append(self._models[manager.name])
                    self._models[manager.name] = manager
                removed = [m for name, m in self._models.items() if name not in wanted]
                for manager in removed:
                    del self._models[manager.name]
            for manager in replaced + removed:
                manager.unload_all()
            for manager in list(self._models.values()):
                if manager not in added:
                    manager.poll()
            self._check_available(added)
            self._set_labels(wanted)

    @staticmethod
    def _check_available(added):
        """UNKNOWN when an added model's newest version failed to load (WaitUntilModelsAvailable)."""
        failed = [(m.name, v, e) for m in added for v, _, e in m.version_statuses()[:1] if e is not None]
        if failed:
            details = ", ".join(f"{{name: {name} version: {v}: {e.message}}}" for name, v, e in failed)
            raise errors.ServingError(
                grpc.StatusCode.UNKNOWN, f"{len(failed)} model(s) did not become available: {{{details}}}"
            )

    def _set_labels(self, wanted):
        labels = {}
        for name, model_settings in wanted.items():
            available = set(self._models[name].available_versions())
            for version in model_settings.labels.values():
                if version not in available:
                    raise errors.failed_precondition(
                        f"Request to assign label to version {version} of model {name}, which is not "
                        "currently available for inference"
                    )
            labels[name] = dict(model_settings.labels)
        with self._lock:
            self._labels = labels

    # -- polling
    def start_polling(self):
        """Starts the poll thread (unless `poll_wait_seconds` is 0 or negative)."""
        if self.poll_wait_seconds <= 0 or self._poller is not None:
            return
        self._poller = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
        self._poller.start()

    def _poll_loop(self):
        while not self._stop.wait(self.poll_wait_seconds):
            self.poll_once()

    def poll_once(self):
        with self._lock:
            managers = list(self._models.values())
        for manager in managers:
            if self._stop.is_set():
                return
            try:
                manager.poll()
            except Exception:  # a bad directory must never stop the poller
                log.exception("Polling model %s failed", manager.name)

    def stop(self, timeout=60):
        """Stops polling (waiting at most `timeout` s for a poll in progress) and unloads every model."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=timeout)
        with self._lock:
            managers = list(self._models.values())
            self._models = {}
        for manager in managers:
            manager.unload_all()

    # -- resolution
    def model_names(self):
        with self._lock:
            return sorted(self._models)

    def manager(self, name):
        with self._lock:
            return self._models.get(name)

    def acquire(self, model_spec):
        """Resolves a request's ModelSpec as ServerCore does; returns an acquired Servable.

        The caller must `release()` it. Raises ServingError for every resolution error.
        """
        if not model_spec.name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        version = None
        if choice == "version_label":
            with self._lock:
                labels = self._labels.get(model_spec.name, {})
            label = model_spec.version_label
            if label not in labels:
                raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
            version = labels[label]
        elif choice == "version":
            version = model_spec.version.value
        manager = self.manager(model_spec.name)
        servable = manager.acquire(version) if manager is not None else None
        if servable is None:
            request = f"Latest({model_spec.name})" if version is None else f"Specific({model_spec.name}, {version})"
            raise errors.not_found(f"Servable not found for request: {request}")
        return servable
