"""PyTorch on a shardps cluster: a model spec from an ``nn.Module``, an
optimizer whose step runs on the shard servers, and a ``DataLoader`` source
over a shared-memory ``BatchQueue``.

    import shardps, shardps.torch
    spec = shardps.torch.spec_from_module(net, "net.toml", model_name="net",
                                          optimizer="adam", lr=1e-3)
    # shardps launch --spec net.toml --shards 2 --cluster-file cluster.toml
    client = shardps.Client("cluster.toml")
    opt = shardps.torch.DistributedOptimizer(net, client,
                                             view=shardps.ModelView(client))
    for x, y in loader:
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()          # push every gradient; the servers apply Adam

The servers own the weights: ``DistributedOptimizer`` never updates a
parameter locally. See docs/python.md ("PyTorch").
"""

import math
import warnings

import numpy as np
import torch

__all__ = ["spec_from_module", "DistributedOptimizer", "QueueDataset"]

_OPTIMIZER_KINDS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                    "adam", "adamw", "ftrl")
_OPTIMIZER_KEYS = ("kind", "lr", "momentum", "beta1", "beta2", "eps", "rho",
                   "initial_accumulator", "weight_decay", "clip_value",
                   "clip_norm", "l1", "l2", "ftrl_beta")


def _core():
    # The compiled module is the parent package; imported late so that
    # spec_from_module (pure Python) works without it.
    import shardps
    return shardps


# ---------------------------------------------------------------- the spec


def _toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_number(x):
    if isinstance(x, bool):
        raise TypeError("expected a number, got a bool")
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("expected a finite number, got %r" % x)
    return repr(x)


def _toml_inline(d):
    parts = []
    for k, v in d.items():
        parts.append("%s = %s" % (k, _toml_string(v) if isinstance(v, str)
                                  else _toml_number(v)))
    return "{ " + ", ".join(parts) + " }"


def _check_optimizer(where, d):
    for k in d:
        if k not in _OPTIMIZER_KEYS:
            raise ValueError("%s: unknown optimizer key %r (known: %s)" %
                             (where, k, ", ".join(_OPTIMIZER_KEYS)))
    if "kind" in d and d["kind"] not in _OPTIMIZER_KINDS:
        raise ValueError("%s: unknown optimizer kind %r (known: %s)" %
                         (where, d["kind"], ", ".join(_OPTIMIZER_KINDS)))


def _init_of_values(values):
    """The spec's named init with the distribution of `values` (float64).

    The spec has no init that loads values (common/initial_values.cc: zeros,
    constant, uniform, normal; each element a pure function of init, seed,
    name and index), so "current" means: the same distribution. All-equal
    values become constant (zeros). Otherwise the spread decides: a uniform
    sample has range/std = sqrt(12) ~ 3.5, a normal one of more than a few
    hundred elements has > 5; PyTorch's default Linear/Conv init is
    uniform(+-1/sqrt(fan_in)), which comes out as exactly that uniform.
    """
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return "zeros" if lo == 0.0 else "constant:%r" % lo
    std = float(values.std())
    if values.size < 8 or (hi - lo) / std < 4.5:
        return "uniform:%r,%r" % (lo, hi)
    return "normal:%r" % std


def spec_from_module(module, path=None, *, model_name, optimizer="adam",
                     lr=0.001, optimizer_options=None, overrides=None,
                     init="current", block_floats=None, consistency=None,
                     workers=None, reduce="mean", storage=None):
    """Writes a model spec (TOML) for `module`'s named parameters.

    Returns the spec's text; also writes it to `path` when given.

    * One ``[[tensor]]`` per ``module.named_parameters()`` entry, named like
      the parameter (``fc1.weight``), with its shape (a 0-d parameter gets
      shape ``[1]``).
    * `optimizer`, `lr` and `optimizer_options` (e.g. ``{"beta1": 0.9}``)
      form the model's ``[optimizer]``; kinds: sgd momentum nesterov adagrad
      rmsprop adam adamw ftrl.
    * `overrides` maps a parameter name to a dict with any of ``init``,
      ``seed``, ``optimizer`` (a dict of optimizer keys) or optimizer keys
      directly (``{"fc3.bias": {"lr": 0.01}}``).
    * `init`: ``"current"`` (default) gives each tensor the spec init with
      the distribution of the parameter's current values (see
      ``_init_of_values``); the servers cannot start from the exact values
      (the spec has no init-from-file and a push is a gradient), so every
      worker adopts the servers' values instead: ``DistributedOptimizer``
      maps or pulls them at construction. Any spec init string
      (``"zeros"``, ``"normal:0.01"``, ...) applies to every tensor.
    * `consistency`: None (async), ``"async"``, ``"bsp"`` or ``"ssp:S"``;
      bsp and ssp need `workers` (and use `reduce`, "mean" or "sum").

    Raises ValueError (with the parameter's name) for what the spec would
    refuse, so a mistake shows here rather than at server start.
    """
    overrides = dict(overrides or {})
    names = [n for n, _ in module.named_parameters()]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError("overrides for parameters the module does not "
                         "have: %s (it has: %s)" %
                         (", ".join(unknown), ", ".join(names)))
    if not names:
        raise ValueError("the module has no parameters")
    if block_floats is not None and (block_floats <= 0 or
                                     block_floats % 1024):
        raise ValueError("block_floats must be a positive multiple of 1024 "
                         "(whole pages), got %r" % (block_floats,))
    model_opt = {"kind": optimizer, "lr": lr}
    model_opt.update(optimizer_options or {})
    _check_optimizer("optimizer", model_opt)

    out = ["# Written by shardps.torch.spec_from_module from %s." %
           type(module).__name__, "[model]",
           "name = %s" % _toml_string(model_name)]
    if storage is not None:
        out.append("storage = %s" % _toml_string(storage))
    if block_floats is not None:
        out.append("block_floats = %d" % block_floats)
    out += ["", "[optimizer]"]
    out += ["%s = %s" % (k, _toml_string(v) if isinstance(v, str)
                         else _toml_number(v)) for k, v in model_opt.items()]
    if consistency is not None and consistency != "async":
        if workers is None:
            raise ValueError("consistency %r needs workers= (the number of "
                             "trainer processes)" % (consistency,))
        out += ["", "[consistency]", "mode = %s" % _toml_string(consistency),
                "workers = %d" % workers,
                "reduce = %s" % _toml_string(reduce)]
    for index, (name, param) in enumerate(module.named_parameters()):
        o = dict(overrides.get(name, {}))
        tensor_init = o.pop("init", init)
        seed = o.pop("seed", index + 1)
        opt = dict(o.pop("optimizer", {}))
        opt.update(o)  # optimizer keys given directly
        _check_optimizer("overrides[%r]" % name, opt)
        if tensor_init == "current":
            tensor_init = _init_of_values(
                param.detach().cpu().double().numpy().reshape(-1))
        shape = list(param.shape) or [1]
        out += ["", "[[tensor]]", "name = %s" % _toml_string(name),
                "shape = [%s]" % ", ".join(str(d) for d in shape),
                "init = %s" % _toml_string(tensor_init),
                "seed = %d" % seed]
        if opt:
            out.append("optimizer = %s" % _toml_inline(opt))
    text = "\n".join(out) + "\n"
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


# ----------------------------------------------------- the trainer's step


def _tensor_over(array):
    """A torch tensor sharing `array`'s memory, which may be read-only.

    torch.from_numpy warns on a non-writeable array (torch has no read-only
    tensors). Here that is the point: the memory is the servers' weights,
    mapped read-only; only autograd reads it, nothing in this module writes
    it, and a stray write faults rather than corrupting the model.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


class DistributedOptimizer(torch.optim.Optimizer):
    """The optimizer of a model whose weights live on shardps servers.

    ``step()`` (after ``loss.backward()``) pushes every parameter's gradient
    at once (one async handle each, all in flight together), waits for all,
    calls ``client.clock()`` when the model is bsp/ssp, and leaves the
    module's parameters holding the servers' weights. The servers apply the
    spec's optimizer (Adam, SGD, ...); nothing is updated locally, so there
    is no local optimizer state. ``zero_grad()`` is torch's.

    Weights, by `view` and `weights`:

    * `view` given (co-processor mode), ``weights="map"`` (default): every
      parameter's ``.data`` is a tensor over the read-only ``view[name]``
      mapping, set once here; ``step()`` then only pushes. The weights
      change under the model as the servers apply updates (also during a
      forward pass in async mode: the same staleness any async parameter
      server has). Do not write to the parameters (``nn.init``, ``.data[:]
      = ...``, a local ``torch.optim``): the memory is mapped read-only
      and the write faults.
    * `view` given, ``weights="copy"``: after each step every parameter is
      replaced by ``view.copy(name)`` (a consistent snapshot per block, one
      copy per step); what to use when a forward pass must see weights
      that do not move.
    * no `view` (classic mode): the weights are pulled into the parameters'
      own memory each step (``push_pull`` in async mode, one round trip per
      tensor; push, clock, then pull in bsp/ssp, whose pulls wait for the
      clock's update).

    At construction the parameters take the servers' current values (mapped
    or pulled), so every worker starts from the same model whatever the
    module was initialised with (see ``spec_from_module``'s init).

    `dtype` is the gradients' wire format ("float32", "float16",
    "bfloat16"): it is the client's ``push_dtype``, so it must match the
    client's option (a mismatch raises ValueError). Gradients are float32
    tensors in torch either way; the client converts while sending.

    Raises ValueError for a parameter the spec does not have, a shape that
    differs, or a non-float32/CPU parameter; the client's typed errors
    (shardps.TimeoutError, ...) from ``step()``.

    Thread-safety: one thread drives a DistributedOptimizer (as with any
    torch optimizer); the client may be shared.
    """

    def __init__(self, model, client, *, view=None, dtype="float32",
                 weights="map", timeout=None):
        params = list(model.named_parameters())
        super().__init__([p for _, p in params], {})
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError("dtype must be float32, float16 or bfloat16, "
                             "got %r" % (dtype,))
        client_dtype = getattr(client, "push_dtype", None)
        if client_dtype is not None and str(client_dtype) != dtype:
            raise ValueError(
                "dtype=%r but the client pushes %r: create the client with "
                "shardps.Client(..., push_dtype=%r)" %
                (dtype, str(client_dtype), dtype))
        if weights not in ("map", "copy"):
            raise ValueError("weights must be 'map' or 'copy', got %r" %
                             (weights,))
        self.client = client
        self.view = view
        self.dtype = dtype
        self.timeout = timeout
        self.mode = ("classic" if view is None else
                     "coprocessor" if weights == "map" else "copy")
        consistency = str(getattr(client, "consistency", "async"))
        self.clocked = consistency != "async"
        self._named = params
        tensors = dict(client.tensors)
        self._shapes = {name: tuple(tensors[name]) for name, _ in params
                        if name in tensors}
        for name, p in params:
            if name not in tensors:
                raise ValueError(
                    "parameter %r is not in the model spec (%s has: %s)" %
                    (name, client.model, ", ".join(sorted(tensors))))
            shape = tuple(tensors[name])
            if (tuple(p.shape) or (1,)) != shape:
                raise ValueError(
                    "parameter %r has shape %s, the spec says %s" %
                    (name, tuple(p.shape), shape))
            if p.dtype != torch.float32 or p.device.type != "cpu":
                raise ValueError(
                    "parameter %r is %s on %s: shardps holds float32 weights "
                    "in host memory (keep the module on the CPU in float32)"
                    % (name, p.dtype, p.device))
        # Arrays behind the parameters (kept here so their mapping outlives
        # any tensor torch derives from them).
        self._arrays = {}
        if self.mode == "coprocessor":
            for name, p in params:
                arr = view[name]
                self._arrays[name] = arr
                p.data = _tensor_over(arr).view(p.shape)
        else:
            # Fresh memory of the parameters' own: a parameter may still be
            # over a read-only mapping (an earlier co-processor optimizer
            # on the same module), and a pull into that would fault.
            for _, p in params:
                p.data = torch.empty_like(p.data,
                                          memory_format=torch.contiguous_format)
            self._refresh(pull=True)

    def _wait_all(self, handles):
        # Wait for every handle even after a failure, so that no gradient
        # buffer is reused while its push is still in flight; then raise the
        # first error.
        first = None
        for h in handles:
            try:
                h.wait(self.timeout)
            except Exception as e:  # the client's typed errors
                if first is None:
                    first = e
        if first is not None:
            raise first

    def _refresh(self, pull):
        if self.mode == "copy":
            for name, p in self._named:
                p.data = _tensor_over(self.view.copy(name)).view(p.shape)
        elif self.mode == "classic" and pull:
            shapes = self._shapes
            self._wait_all([
                self.client.pull(name, out=p.data.numpy().reshape(shapes[name]))
                for name, p in self._named])

    def _grad_array(self, p):
        g = p.grad
        if g.dtype != torch.float32:
            g = g.float()
        if not g.is_contiguous():
            g = g.contiguous()
        return g.numpy()

    @torch.no_grad()
    def step(self, closure=None):
        """Pushes the gradients, waits, clocks (bsp/ssp) and refreshes the
        weights as the mode says. Returns closure's loss when given.

        A parameter whose ``.grad`` is None (unused in this step) is not
        pushed. In classic async mode a parameter without a gradient is
        still pulled, so every parameter is current after a step.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [(name, p, self._grad_array(p)) for name, p in self._named
                 if p.grad is not None]
        shapes = self._shapes
        if self.mode == "classic" and not self.clocked:
            handles = []
            pushed = set()
            for name, p, g in grads:
                out = p.data.numpy().reshape(shapes[name])
                handles.append(self.client.push_pull(
                    name, g.reshape(shapes[name]), out=out))
                pushed.add(name)
            handles += [self.client.pull(name,
                                         out=p.data.numpy().reshape(
                                             shapes[name]))
                        for name, p in self._named if name not in pushed]
            self._wait_all(handles)
            return loss
        self._wait_all([self.client.push(name, g.reshape(shapes[name]))
                        for name, _, g in grads])
        if self.clocked:
            self._wait_all([self.client.clock()])
        self._refresh(pull=True)
        return loss


# ------------------------------------------------------------- the stream


class QueueDataset(torch.utils.data.IterableDataset):
    """The batches of a shardps BatchQueue, as (features, labels) tensors.

    Use it as a DataLoader's dataset with ``batch_size=None`` (the queue's
    slots are already batches) and ``num_workers=0`` (a queue has one
    consumer; the batches are in shared memory already):

        ds = QueueDataset("/dev/shm/run/train.queue")
        for x, y in DataLoader(ds, batch_size=None):
            ...
        # the loop ended: the queue is closed and its producers stop

    By default the tensors are zero-copy views of the queue's slot,
    read-only, valid until the next batch is taken: use them in the step,
    ``.clone()`` what must be kept. ``copy=True`` yields owned tensors.

    The queue closes, stopping every producer (``push`` raises
    shardps.ClosedError for them), when the iteration ends for any reason:
    the stream ended, the consumer broke out of its loop (when the iterator
    is released) or raised, or ``close()`` was called. One pass only: a
    second iteration raises RuntimeError. `timeout` (seconds) bounds the
    wait for each batch: shardps.TimeoutError when the producers fall
    silent that long (the queue is closed then too).
    """

    def __init__(self, queue_path, *, timeout=30.0, copy=False):
        super().__init__()
        self.queue_path = queue_path
        self.timeout = timeout
        self.copy = copy
        self._queue = None
        self._used = False

    def _open(self):
        if self._queue is None:
            self._queue = _core().BatchQueue.open(self.queue_path)
        return self._queue

    def __iter__(self):
        if self._used:
            raise RuntimeError(
                "QueueDataset(%r) was iterated already and its queue is "
                "closed: a stream is consumed once" % (self.queue_path,))
        self._used = True
        queue = self._open()
        try:
            while True:
                batch = queue.next(self.timeout)
                if batch is None:
                    return
                features, labels = batch
                if self.copy:
                    yield (torch.from_numpy(np.array(features)),
                           torch.from_numpy(np.array(labels)))
                else:
                    yield _tensor_over(features), _tensor_over(labels)
        finally:
            self.close()

    def stats(self):
        """The queue's counters (shardps.BatchQueue.stats())."""
        return self._open().stats()

    def close(self):
        """Closes the queue (idempotent): its producers stop."""
        self._used = True
        if self._queue is not None:
            queue, self._queue = self._queue, None
            queue.close()
