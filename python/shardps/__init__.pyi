"""Type stubs of shardps (the extension shardps._shardps). See docs/python.md."""

import builtins
from typing import Iterator, Optional

import numpy as np
import numpy.typing as npt

class Error(Exception):
    """Base of every shardps error. `code` names the shardps::Code
    (e.g. "kTimeout"); str(e) is the message (the server's, when a server
    reported it)."""
    code: str

class InvalidArgumentError(Error, ValueError):
    """A bad argument, option, dtype or request field."""
class NotFoundError(Error, LookupError):
    """Unknown tensor, table, queue, file or shard."""
class SizeMismatchError(Error, ValueError):
    """An array's size or shape does not match the model spec."""
class SpecMismatchError(Error):
    """Servers or segments of a different model spec."""
class TimeoutError(Error, builtins.TimeoutError):
    """A deadline passed; the operation may still happen."""
class UnavailableError(Error, ConnectionError):
    """A server is gone or not connected, or the client is closed."""
class CorruptError(Error):
    """A segment or file failed its integrity checks."""
class BusyError(Error):
    """A resource is held by someone else (worker index, segment, file)."""
class IoError(Error, OSError):
    """An operating-system call failed."""
class UnimplementedError(Error, NotImplementedError):
    """Known to the protocol but not served."""
class BadMessageError(Error):
    """A malformed wire message."""
class InternalError(Error):
    """A shardps bug; please report it."""
class ClosedError(Error):
    """The queue was closed; nothing more will come."""
class ResourceExhaustedError(Error):
    """A bounded resource is full (table rows)."""
class PermissionDeniedError(Error, PermissionError):
    """Unsafe file owner or mode, or a revoked CURVE key."""

class Handle:
    """The result of an asynchronous call. Holds the arrays the call reads
    or writes until it is done (dropping the handle early is safe: the
    client keeps them until then)."""
    def wait(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """Waits, with the GIL released, until the call is done. Returns the
        pulled array (spec shape) for pull, push_pull and pull_rows, else
        None; raises the call's typed error. With `timeout` (seconds),
        raises TimeoutError when it passes while the call goes on (wait
        again later); None waits up to the client's request_timeout."""
    def done(self) -> bool:
        """Whether the call has finished (successfully or not)."""

class Client:
    """A connection to every shard of a model. Methods may be called from
    any thread; each call is asynchronous and returns a Handle."""
    def __init__(self, cluster_file: str, *, worker: int = -1,
                 request_timeout: float = 30.0, connect_timeout: float = 10.0,
                 exactly_once: bool = True, push_dtype: str = "float32",
                 replica_storage: str = "", map_local_segments: bool = True,
                 blocks_per_message: int = 0, curve_key: Optional[str] = None,
                 server_key: Optional[str] = None,
                 metrics_listen: str = "") -> None:
        """Connects (GIL released) to the shards of `cluster_file`.
        worker: this trainer's index for bsp/ssp (-1: not a worker).
        push_dtype: wire precision of gradients, "float32", "float16" or
        "bfloat16". curve_key: PREFIX (reads PREFIX.key) or a .key file, as
        `shardps --curve-key`; server_key: the servers' .pub file.
        metrics_listen: serve this client's Prometheus metrics at
        http://ADDR/metrics ("PORT" for loopback, "HOST:PORT"; "0" picks a
        port, see metrics_url); docs/metrics.md.
        Raises UnavailableError, SpecMismatchError, BusyError (worker index
        held), NotFoundError (cluster file), InvalidArgumentError."""
    @property
    def model(self) -> str: ...
    @property
    def spec_hash(self) -> int: ...
    @property
    def metrics_url(self) -> str:
        """Where metrics_listen serves /metrics; "" when not set."""
    def metrics_text(self) -> str:
        """This client's shardps_client_* series in the Prometheus text
        format, e.g. for a trainer's own endpoint."""
    @property
    def consistency(self) -> str:
        """"async", "bsp" or "ssp:S"."""
    @property
    def clock_count(self) -> int:
        """clock() calls so far (resumed from the shards after a restart)."""
    @property
    def tensors(self) -> dict[str, tuple[int, ...]]:
        """Dense tensors of the spec and their shapes, in spec order."""
    @property
    def tables(self) -> dict[str, int]:
        """Sparse tables and their row dimension."""
    @property
    def local_segments(self) -> list[str]:
        """Per shard, its segment path when it is on this host, else ""."""
    def push(self, name: str, grad: npt.ArrayLike) -> Handle:
        """Sends a gradient of the spec's shape (or flat). float32
        C-contiguous goes zero-copy; other float dtypes are converted (a
        copy); ints, bool, complex raise InvalidArgumentError."""
    def pull(self, name: str, out: Optional[np.ndarray] = None) -> Handle:
        """Fetches the tensor; wait() returns it in the spec's shape (in
        `out` when given: float32, C-contiguous, writeable, right size)."""
    def push_pull(self, name: str, grad: npt.ArrayLike,
                  out: Optional[np.ndarray] = None) -> Handle:
        """push, then wait() returns the tensor right after this update."""
    def push_rows(self, table: str, ids: npt.ArrayLike,
                  grads: npt.ArrayLike) -> Handle:
        """Sparse rows: ids uint64 (or non-negative ints), grads [n, dim];
        an id given twice gets the summed gradient."""
    def pull_rows(self, table: str, ids: npt.ArrayLike,
                  out: Optional[np.ndarray] = None) -> Handle:
        """wait() returns the rows, [n, dim] float32."""
    def clock(self) -> Handle:
        """Ends this worker's clock (bsp/ssp: wait() blocks until the
        workers may go on)."""
    def stats(self) -> list[dict]:
        """Every shard's counters (blocking, GIL released)."""
    def checkpoint(self) -> list[str]:
        """Asks every shard to checkpoint now; the directories written."""
    def close(self) -> None:
        """Fails calls in flight with UnavailableError and disconnects
        (GIL released). Later calls raise UnavailableError("client is
        closed"). Idempotent."""
    def __enter__(self) -> "Client": ...
    def __exit__(self, *args: object) -> None: ...

class ModelView:
    """Read-only NumPy views of a co-located model, straight over the
    shards' segments (and this host's replica copies)."""
    def __init__(self, client: Client) -> None:
        """The view for `client`'s model (ModelView::Open(client)). Raises
        NotFoundError when a shard is neither local nor replicated here."""
    @staticmethod
    def from_segments(paths: list[str]) -> "ModelView":
        """Maps one segment per shard (SpecMismatchError when they belong
        to different models)."""
    def __getitem__(self, name: str) -> np.ndarray:
        """The live tensor: zero-copy, spec shape, writeable=False, its
        base keeps the view alive. Changes as servers apply updates."""
    def copy(self, name: str, timeout: float = 5.0) -> np.ndarray:
        """A snapshot in which no block is torn."""
    def freshness(self, name: str) -> dict:
        """blocks_behind, most_versions_behind, oldest_age (s),
        replicas_running, blocks (one dict per block)."""
    def updates(self, name: str) -> int:
        """Block updates applied to the tensor so far."""
    def keys(self) -> list[str]: ...
    def __contains__(self, name: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    @property
    def spec_hash(self) -> int: ...

class BatchQueue:
    """A bounded queue of mini-batches in shared memory (a file on tmpfs)."""
    @staticmethod
    def create(path: str, slots: int, slot_bytes: int,
               producers: int = 0) -> "BatchQueue":
        """Creates the queue file (BusyError if it exists). producers > 0:
        the stream ends after that many mark_end() calls."""
    @staticmethod
    def open(path: str) -> "BatchQueue": ...
    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Consumes (features [batch, window, features], labels [batch,
        horizon]): read-only zero-copy arrays over the slot, valid until
        the next batch is taken or the loop ends (copy what you keep).
        Stops at the end of the stream; waits up to 30 s per batch."""
    def batches(self, timeout: float = 30.0
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like iter(queue) with another per-batch timeout."""
    def next(self, timeout: float = 30.0
             ) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """The next batch (releasing the previous one), None at the end of
        the stream; TimeoutError when none comes within `timeout`."""
    def push(self, features: npt.ArrayLike, labels: npt.ArrayLike,
             timeout: float = 30.0) -> None:
        """Producer: copies one batch in, blocking while the queue is full.
        ClosedError once the consumer closed it."""
    def release(self) -> None:
        """Gives the batch last returned back to the producers."""
    def close(self) -> None:
        """Consumer: producers stop (blocked ones wake with ClosedError)."""
    def mark_end(self) -> None:
        """Producer: no more batches from this producer."""
    def stats(self) -> dict: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def slots(self) -> int: ...
    @property
    def slot_bytes(self) -> int: ...
