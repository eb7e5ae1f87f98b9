"""shardps: a sharded parameter server, from Python.

Client pushes gradients and pulls weights (asynchronous calls returning a
Handle to wait on); ModelView reads a co-located model as read-only NumPy
arrays with no copy; BatchQueue streams mini-batches through shared memory.
Every failure raises a subclass of shardps.Error. See docs/python.md.
"""

from ._shardps import (  # noqa: F401
    BadMessageError,
    BatchQueue,
    BusyError,
    Client,
    ClosedError,
    CorruptError,
    Error,
    Handle,
    InternalError,
    InvalidArgumentError,
    IoError,
    ModelView,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SizeMismatchError,
    SpecMismatchError,
    TimeoutError,
    UnavailableError,
    UnimplementedError,
)

__all__ = [
    "BadMessageError", "BatchQueue", "BusyError", "Client", "ClosedError",
    "CorruptError", "Error", "Handle", "InternalError",
    "InvalidArgumentError", "IoError", "ModelView", "NotFoundError",
    "PermissionDeniedError", "ResourceExhaustedError", "SizeMismatchError",
    "SpecMismatchError", "TimeoutError", "UnavailableError",
    "UnimplementedError",
]
