"""Server-side batching: concurrent `Session::Run` calls merged into one, as `--enable_batching`.

TF Serving wraps each servable's session in a batching session fed by a shared batch scheduler.
`BatchScheduler.run` has the signature of a runner (see `inference.direct_runner`): a request's
feeds join a queue, a worker thread takes the oldest task together with every queued task that
has the same servable, feeds, fetches, dtypes and inner shapes (up to `max_batch_size` rows, waiting
at most `batch_timeout_micros` for more), concatenates them along dimension 0, pads the batch to
the next `allowed_batch_sizes` entry, runs it once and hands each request its rows back.

Where TF Serving would reject a batch whose tasks have different inner shapes (with padding off),
this scheduler puts such tasks in different batches instead. With `pad_variable_length_inputs`
on, tasks whose inputs differ only in their inner sizes merge, as in TF Serving
(batching/batching_util.cc): each task's input is padded at the end of every dimension but the
first to the batch's largest size, with the input's own first element as the padding value
(ranks 1 to 6; a task's empty tensor that needs padding fails the batch with "Got empty tensor in
batch of non-empty tensors."). A model fed such batches must not read the padding: keras-seq's
``tokens`` signatures take per-row ``input_lengths`` for this.

Deadlines: a task whose deadline passes while it waits in the queue leaves it with
DEADLINE_EXCEEDED (it is never run), and a batch runs with the latest deadline of its tasks as its
`Session::Run` timeout (no timeout when one of them has none), as TF Serving's batching session
does, so a batch whose clients have all gone is cancelled.
"""

import collections
import math
import os
import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from keras_seq.serving import errors

_NO_DEADLINE = math.inf


@dataclass
class BatchingOptions:
    """The fields of TF Serving's BatchingParameters that apply here, with its defaults."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, params):
        """Reads a (dynamically declared) BatchingParameters message; unset fields keep defaults."""
        options = cls()
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
            if params.HasField(name):
                setattr(options, name, int(getattr(params, name).value))
        options.allowed_batch_sizes = tuple(int(s) for s in params.allowed_batch_sizes)
        options.pad_variable_length_inputs = bool(params.pad_variable_length_inputs)
        options.validate()
        return options

    def validate(self):
        """Raises ServingError(INVALID_ARGUMENT) for settings TF Serving refuses."""
        if self.max_batch_size <= 0:
            raise errors.invalid_argument(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.num_batch_threads <= 0:
            raise errors.invalid_argument(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] <= 0:
                raise errors.invalid_argument("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise errors.invalid_argument(
                    "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                    f"{sizes[-1]}; expected {self.max_batch_size}"
                )


class _Task:
    """One request's Session::Run, waiting in the queue for its rows of a batch."""

    def __init__(self, servable, feeds, fetches, size, deadline=None, pad=False):
        self.servable = servable
        self.deadline = _NO_DEADLINE if deadline is None else deadline
        self.feeds = feeds
        self.fetches = fetches
        self.size = size
        # With padding, inner sizes may differ (ranks may not: they cannot be padded together).
        self.key = (
            id(servable),
            tuple(fetches),
            tuple((name, value.dtype.str, value.ndim if pad else value.shape[1:]) for name, value in feeds),
        )
        self.enqueued = time.monotonic()
        self.taken = False
        self.done = threading.Event()
        self.outputs = None
        self.error = None


def _check_batchable(feeds):
    """Each request's inputs need a batch dimension of one size (batching_util.h)."""
    sizes = set()
    for _, value in feeds:
        if value.ndim < 1:
            raise errors.invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise errors.invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop() if sizes else 0


def pad_variable_length(parts):
    """TF Serving's padding of one input's tensors (one per task) to a common shape.

    Every dimension but the first is padded at its end to the largest size among `parts`, with
    each tensor's own first element as the value (batching_util.cc `PadTensor`). The parts
    have one rank: tasks of different ranks never share a batch.
    """
    largest = np.max([part.shape for part in parts], axis=0)
    padded = []
    for part in parts:
        widths = [(0, 0)] + [(0, int(m) - n) for m, n in zip(largest[1:], part.shape[1:])]
        if not any(after for _, after in widths):
            padded.append(part)
            continue
        if part.ndim > 6:
            raise errors.invalid_argument("Only tensors with rank from 1 to 6 can be padded.")
        if part.size < 1:
            raise errors.invalid_argument("Got empty tensor in batch of non-empty tensors.")
        padded.append(np.pad(part, widths, mode="constant", constant_values=part.flat[0]))
    return padded


class BatchScheduler:
    """Merges concurrent runs into batches executed by `num_batch_threads` workers.

    Args:
        options: a `BatchingOptions`.

    Use `scheduler.run` wherever a runner is expected, and `close()` it at shutdown.
    """

    def __init__(self, options, metrics=None):
        options.validate()
        self.options = options
        self.metrics = metrics  # a metrics.Metrics (batch sizes), or None
        self._queue = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self.batches_run = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for worker in self._workers:
            worker.start()

    # -- the runner interface
    def run(self, servable, feeds, fetches, deadline=None):
        """Queues one run, waits for its batch, returns its own rows of every fetch.

        `deadline` (a `time.monotonic()` time) bounds the wait in the queue and the batch's run.
        """
        size = _check_batchable(feeds)
        if size > self.options.max_batch_size:
            raise errors.invalid_argument(
                f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}"
            )
        task = _Task(servable, feeds, fetches, size, deadline, self.options.pad_variable_length_inputs)
        if task.deadline <= time.monotonic():
            raise errors.deadline_exceeded("Deadline exceeded before the task was queued for batching")
        with self._cond:
            if self._closed:
                raise errors.ServingError(grpc.StatusCode.UNAVAILABLE, "The batch scheduler is shut down")
            capacity = self.options.max_enqueued_batches * self.options.max_batch_size
            if self._queued_rows + size > capacity:
                raise errors.ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    "The batch scheduling queue to which this task was submitted is full",
                )
            self._queue.append(task)
            self._queued_rows += size
            self._cond.notify()
        if self.metrics is not None:
            self.metrics.record_input(size)
        if task.deadline != _NO_DEADLINE and not task.done.wait(max(0.0, task.deadline - time.monotonic())):
            with self._cond:
                if not task.taken:  # still queued: leave the queue, never run
                    self._drop(task)
                    raise errors.deadline_exceeded("Deadline exceeded while waiting in the batch queue")
            # Taken into a batch: that batch's run ends by the latest deadline among its tasks.
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def close(self, timeout=30):
        """Stops the workers after the queued batches have run, waiting at most `timeout` seconds."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        end = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(timeout=max(0.0, end - time.monotonic()))

    # -- the workers
    def _drop(self, task):
        """Removes a queued task (the caller holds the lock)."""
        task.taken = True
        self._queue.remove(task)
        self._queued_rows -= task.size

    def _drop_expired(self):
        """Takes tasks whose deadline has passed out of the queue (the caller holds the lock)."""
        now = time.monotonic()
        for task in [t for t in self._queue if t.deadline <= now]:
            self._drop(task)
            task.error = errors.deadline_exceeded("Deadline exceeded while waiting in the batch queue")
            task.done.set()

    def _collect(self, key):
        """The queued tasks with `key` that fit in one batch, oldest first, and their row count."""
        batch, rows = [], 0
        for task in self._queue:
            if task.key == key and rows + task.size <= self.options.max_batch_size:
                batch.append(task)
                rows += task.size
        return batch, rows

    def _next_batch(self):
        timeout = self.options.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                self._drop_expired()
                if not self._queue:
                    if self._closed:
                        return None
                    continue
                first = self._queue[0]
                deadline = first.enqueued + timeout
                while True:
                    batch, rows = self._collect(first.key)
                    remaining = deadline - time.monotonic()
                    if rows >= self.options.max_batch_size or remaining <= 0 or self._closed:
                        break
                    self._cond.wait(remaining)
                    if first.taken:
                        break
                if first.taken:
                    continue
                for task in batch:
                    self._drop(task)
                return batch

    def _work(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _padded_size(self, rows):
        if rows == 0:
            return 0
        for allowed in self.options.allowed_batch_sizes:
            if allowed >= rows:
                return allowed
        return rows

    def _execute(self, batch):
        first = batch[0]
        rows = sum(task.size for task in batch)
        padded = self._padded_size(rows)
        try:
            feeds = []
            for i, (name, _) in enumerate(first.feeds):
                parts = [task.feeds[i][1] for task in batch]
                if self.options.pad_variable_length_inputs:
                    parts = pad_variable_length(parts)
                if padded > rows:
                    filler = parts[0][:1]
                    parts.append(np.repeat(filler, padded - rows, axis=0))
                feeds.append((name, np.concatenate(parts, axis=0)))
            deadline = max(task.deadline for task in batch)
            timeout_ms = None
            if deadline != _NO_DEADLINE:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.deadline_exceeded("Deadline exceeded before the batch ran")
                timeout_ms = max(1, math.ceil(left * 1000))
            outputs = first.servable.run(feeds, first.fetches, timeout_ms=timeout_ms)
            for output in outputs:
                if np.ndim(output) < 1 or output.shape[0] != padded:
                    raise errors.ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "Batched output tensor has 0th dimension "
                        f"{'none' if np.ndim(output) < 1 else output.shape[0]}, which does not equal the "
                        f"batch size {padded}",
                    )
            start = 0
            for task in batch:
                task.outputs = [output[start : start + task.size] for output in outputs]
                start += task.size
        except Exception as e:  # every task of a failed batch gets the batch's status
            error = errors.from_tensorflow_error(e)
            for task in batch:
                task.error = error
        self.batches_run += 1
        if self.metrics is not None:
            self.metrics.record_batch(rows, padded)
        for task in batch:
            task.done.set()
