"""The errors of an export; after any of them, nothing was published."""


class ExportError(Exception):
    """An export that could not be written; nothing was published."""


class VersionExistsError(ExportError, FileExistsError):
    """The version asked for is already in the repository; it is never overwritten."""


class InsufficientDiskSpaceError(ExportError, OSError):
    """Less free disk space than the export needs."""


class ServabilityError(ExportError):
    """A SavedModel holds ops that a CPU TensorFlow Serving cannot run.

    `offenders` lists each as an `Offender`.
    """

    def __init__(self, path, offenders):
        self.path = path
        self.offenders = list(offenders)
        lines = [f"{path} is not servable on CPU TensorFlow Serving ({len(self.offenders)} offending ops):"]
        lines += [f"  - {o}" for o in self.offenders]
        super().__init__("\n".join(lines))
