"""The engine: model-frame jets -> latents, and latents -> jets, on CPU cores or a GPU.

One chunk flows through :meth:`Encoder.encode` as numpy in, numpy out; inside, it is
normalized, split into batches and pushed through the layers. Each layer is one matrix multiply
into a preallocated buffer with its bias and an in-place ``tanh`` (none after the last layer;
the decoder starts with the ``tanh`` of the latents).

Three backends, chosen by a fixed rule, never by timing (so that which code runs, and hence the
output bits, does not depend on the load of the machine):

- ``numpy`` (CPU): weights as float32 numpy arrays, ``np.matmul(..., out=)`` into preallocated
  per-thread buffers. The network is cheap enough (26k multiply-adds per jet) that the matrix
  multiply library decides the speed, and numpy's BLAS (OpenBLAS in the numpy wheels) beats
  torch's MKL on AMD CPUs by about 3x per core (143 against 41 GFLOP/s on this project's EPYC
  machines; about equal on Intel). Used on CPU when numpy links an optimized BLAS (OpenBLAS,
  MKL, BLIS, Accelerate, ArmPL, NVPL) and ``threadpoolctl`` is there to hold that BLAS to one
  thread. Once the multiplies are fast, the 350 tanh per jet cost as much as they do
  (``np.tanh`` and ``torch.tanh`` ~3 ns per value on these machines, against ~1 ns for
  torch's vectorized sigmoid), so this backend computes tanh(y) = 2 (sigmoid(2y) - 1/2) with
  the factors of 2 folded exactly into the weights, and adds the bias inside the multiply (a
  column of ones); see :class:`_NumpyEngine`. Results agree with the torch module within
  1e-6 (latents) and 5e-6 (decoded, normalized units), as closely as the torch backend does.
- ``torch`` (CPU): ``torch.addmm(..., out=)`` and ``tanh_`` under ``inference_mode``: the rule's
  fallback (a numpy with a reference BLAS, no threadpoolctl).
- ``cuda``: the GPU engine (:class:`_StreamEngine`): batches of at least ``GPU_BATCH_SIZE``
  (1M) jets, pinned host buffers, and three CUDA streams so that the copy of the next batch to
  the device, the network on this one and the copy of the previous one back overlap. TF32 is
  off unless ``allow_tf32=True`` (it moves results by up to 4.5e-3); in float32 the results
  agree with the CPU's within 1e-5 in normalized units.

``backend="numpy"|"torch"`` (or ``$JETZIP_BACKEND``) overrides the rule on CPU; ``"numpy"``
with ``device="auto"`` means the CPU. Torch stays the library for training and for the GPU.

Why worker threads on CPU, each running whole batches with one BLAS thread: a BLAS's (or
OpenMP's) own threads meet at a barrier after every layer, so when the reader or writer thread
takes a core, every layer of every batch waits for it. Instead, ``workers`` (default:
``torch.get_num_threads()``, i.e. the cores or ``OMP_NUM_THREADS``) threads each run slices of
``BATCHES_PER_TASK`` batches; numpy and torch release the GIL inside their kernels, and the
operating system shares the cores between the workers and the I/O threads.

Why the output is the same bits for any thread count: every batch is computed by one thread, on
the same batch boundaries (multiples of ``batch_size`` from the start of the call) whatever the
number of workers, from inputs first copied into a C-ordered per-thread buffer (so the memory
layout of the caller's array does not matter either). numpy's BLAS thread count is process
global: while any numpy-backend run is under way it is held at 1 (reference counted, restored
after the last run ends). torch's thread count is per thread, but a thread that has not yet run
an operator takes, at its first operator, the count last set by *any* thread; a worker that had
been started but had not yet run anything could therefore run its first batches with the
caller's 2 threads, and MKL's 2-thread product of a 9-row batch differs from the 1-thread one
by one ulp (the flake of ``test_thread_count_does_not_change_a_bit[5001]``). Workers now run an
operator-free ``torch.get_num_threads()`` (which does that lazy initialization) before they set
one thread, and each slice checks it again.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .device import resolve_device
from .model import Model

DEFAULT_BATCH_SIZE = 2048
GPU_BATCH_SIZE = 1 << 20  # jets per GPU batch (at least): the network runs at full speed from ~1M
GPU_MIN_BATCH_SIZE = 1 << 16  # the GPU batch is halved down to this when memory is short
BATCHES_PER_TASK = 4  # small tasks balance the workers when an I/O thread takes a core
BACKENDS = ("numpy", "torch")
BACKEND_ENV = "JETZIP_BACKEND"
# Substrings of the names numpy gives the optimized BLAS libraries it can link
FAST_BLAS = ("openblas", "mkl", "blis", "accelerate", "armpl", "nvpl", "aocl")

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


# --- the backend rule ---------------------------------------------------------------------

def numpy_blas() -> str:
    """The name of the BLAS numpy was built with (lower case), or "unknown"."""
    try:
        cfg = np.__config__.CONFIG  # numpy >= 1.26
        return str(cfg["Build Dependencies"]["blas"]["name"]).lower()
    except Exception:  # noqa: BLE001 - older numpy: ask the loaded libraries instead
        pass
    try:
        from threadpoolctl import threadpool_info

        apis = [d.get("internal_api", "") for d in threadpool_info() if d.get("user_api") == "blas"]
        return str(apis[0]).lower() if apis else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def _have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def default_cpu_backend() -> str:
    """The fixed rule: numpy when it links an optimized BLAS we can hold to one thread."""
    name = numpy_blas()
    if any(s in name for s in FAST_BLAS) and _have_threadpoolctl():
        return "numpy"
    return "torch"


def choose_backend(device_type: str, requested: str | None = None) -> str:
    """`requested` (keyword), else ``$JETZIP_BACKEND``, else the rule; "cuda" on a GPU."""
    from .errors import JetzipError

    choice = requested if requested is not None else (os.environ.get(BACKEND_ENV) or None)
    if choice is not None:
        choice = str(choice).lower()
        if choice not in BACKENDS + ("auto",):
            source = "backend" if requested is not None else f"${BACKEND_ENV}"
            raise JetzipError(f"{source}: unknown backend {choice!r}; use numpy, torch or auto")
        if choice == "auto":
            choice = None
    if device_type == "cuda":
        if choice == "numpy":
            raise JetzipError("the numpy backend runs on the CPU; use --device cpu (or the torch backend)")
        return "cuda"
    if choice == "numpy" and not _have_threadpoolctl():
        raise JetzipError("the numpy backend needs threadpoolctl (pip install threadpoolctl)")
    return choice or default_cpu_backend()


# --- CPU worker threads ---------------------------------------------------------------------

def _forget_pools_in_child() -> None:
    """A forked child inherits the pools but not their threads: start afresh there."""
    global _pools_lock, _blas_lock, _blas_users, _blas_limiter
    _pools.clear()
    _pools_lock = threading.Lock()
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_limiter = None


def _single_thread_torch() -> None:
    """Pool initializer: one torch thread in this worker, whatever the caller's count.

    ``get_num_threads`` first: it runs torch's lazy per-thread initialization now, which would
    otherwise run at this thread's first operator and take the thread count last set by any
    thread (see the module docstring).
    """
    import torch

    torch.get_num_threads()
    torch.set_num_threads(1)


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool per worker count, created on first use (its threads idle in between)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix="jetzip-engine", initializer=_single_thread_torch)
        return pool


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None
_controller: Any = None

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


@contextlib.contextmanager
def single_thread_blas():
    """Hold numpy's BLAS to one thread while any numpy-backend run is under way.

    The BLAS thread count is process global, so the first run sets it and the last one to end
    restores what was there (threadpoolctl finds the library numpy loaded, whatever its symbol
    prefix).
    """
    global _blas_users, _blas_limiter, _controller
    with _blas_lock:
        if _blas_users == 0:
            from threadpoolctl import ThreadpoolController

            if _controller is None:
                _controller = ThreadpoolController()
            _blas_limiter = _controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _check_positive(name: str, value, what: str) -> None:
    from .errors import JetzipError

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise JetzipError(f"{what} must be a positive integer, not {value!r}")


class _CpuEngine:
    """Slices of batches on single-threaded workers; subclasses define one batch."""

    def __init__(self, runner: "_Runner") -> None:
        self.runner = runner
        self.batch_size = runner.batch_size
        self.workers = runner.workers
        self.decoder = runner.part == "decoder"
        self._local = threading.local()  # activation buffers, one set per worker thread

    def run(self, x: np.ndarray, out: np.ndarray) -> None:
        n = len(x)
        task = self.batch_size * BATCHES_PER_TASK
        # Disjoint slices of the same output: no copies, no locks; exceptions re-raise here.
        # Every batch runs on a one-thread worker, even with one worker, so the latents do not
        # depend on the thread count.
        src, dst = self._prepare(x, out)
        with self._context():
            futures = [worker_pool(self.workers).submit(self._run_slice, src, dst, i, min(i + task, n))
                       for i in range(0, n, task)]
            try:
                for f in futures:
                    f.result()
            except BaseException:  # an error or Ctrl-C: drop the queued slices, they are not wanted
                for f in futures:
                    f.cancel()
                for f in futures:  # and let the running ones end before the caller reuses `out`
                    with contextlib.suppress(BaseException):
                        if not f.cancelled():
                            f.exception()
                raise

    def _context(self):
        return contextlib.nullcontext()

    def _prepare(self, x: np.ndarray, out: np.ndarray):
        return x, out

    def _run_slice(self, x, out, start: int, stop: int) -> None:
        raise NotImplementedError


class _NumpyEngine(_CpuEngine):
    """numpy's BLAS for the matrix multiplies, torch's vectorized sigmoid for the activations.

    Two rewrites of the same network make each hidden layer one matrix multiply and two cheap
    in-place passes (see the module docstring):
    - tanh(y) = 2 (sigmoid(2y) - 1/2). The factors of 2 are folded into this layer's weights
      and bias and into the next layer's weights (exact: powers of two); the activation
      buffers hold u = sigmoid(2y) - 1/2 = tanh(y) / 2. (Folding the -1/2 into the next
      bias too would save a pass but makes the products cancel against a large bias: 1.4e-5
      off in the decoder's outputs instead of 3e-6.)
    - the bias rides in the matrix multiply: every input and activation buffer has a last
      column of ones, and each weight matrix a last row holding the bias.
    """

    def __init__(self, runner: "_Runner") -> None:
        super().__init__(runner)
        import torch

        self.torch = torch
        model, part = runner.model, runner.part
        n_layers = len(model.arch.tensor_shapes(part)) // 2
        self.weights: list[np.ndarray] = []  # (K + 1, N): folded W^T over the folded bias
        for k in range(n_layers):
            w = np.asarray(model.weights[f"{part}.{2 * k}.weight"], dtype=np.float64).T
            b = np.asarray(model.weights[f"{part}.{2 * k}.bias"], dtype=np.float64)
            if k > 0 or self.decoder:  # the input is u = tanh / 2
                w = 2 * w
            if k < n_layers - 1:  # the activation after this layer takes sigmoid(2y)
                b = 2 * b
                w = 2 * w
            self.weights.append(np.ascontiguousarray(np.vstack([w, b[None, :]]), dtype=np.float32))
        self.in_width = self.weights[0].shape[0] - 1
        self.widths = [w.shape[1] for w in self.weights]

    def _context(self):
        return single_thread_blas()

    def _buffers(self):
        """Per thread: input and activation buffers with a last column of ones, torch views."""
        bufs = getattr(self._local, "buffers", None)
        if bufs is None:
            bs = self.batch_size
            arrays = [np.empty((bs, w + 1), dtype=np.float32) for w in [self.in_width, *self.widths[:-1]]]
            for a in arrays:
                a[:, -1] = 1.0
            bufs = self._local.buffers = (arrays, [self.torch.from_numpy(a) for a in arrays])
        return bufs

    def _run_slice(self, x, out, start: int, stop: int) -> None:
        torch = self.torch
        if torch.get_num_threads() != 1:  # the sigmoid runs on one thread too (see _single_thread_torch)
            torch.set_num_threads(1)
        arrays, views = self._buffers()
        weights = self.weights
        last = len(weights) - 1
        two = np.float32(2)
        for i in range(start, stop, self.batch_size):
            j = min(i + self.batch_size, stop)
            n = j - i
            h = arrays[0][:n]
            if self.decoder:  # u = sigmoid(2 z) - 1/2: the decoder starts with tanh(z) = 2u
                np.multiply(x[i:j], two, out=h[:, :-1])
                views[0][:n, :-1].sigmoid_().sub_(0.5)
            else:
                np.copyto(h[:, :-1], x[i:j])  # C order whatever the caller's layout: the same bits
            for k, w in enumerate(weights):
                if k == last:
                    np.matmul(h, w, out=out[i:j])
                else:
                    o = arrays[k + 1][:n]
                    np.matmul(h, w, out=o[:, :-1])
                    views[k + 1][:n, :-1].sigmoid_().sub_(0.5)
                    h = o


class _TorchEngine(_CpuEngine):
    """torch on CPU, one intra-op thread per worker."""

    def __init__(self, runner: "_Runner") -> None:
        super().__init__(runner)
        import torch

        self.torch = torch
        self.layers = _torch_layers(runner, torch.device("cpu"))
        self.in_width = self.layers[0][0].shape[0]
        self.widths = [w.shape[1] for w, _ in self.layers]

    def _buffers(self):
        bufs = getattr(self._local, "buffers", None)
        if bufs is None:
            torch, bs = self.torch, self.batch_size
            bufs = self._local.buffers = (
                [torch.empty((bs, self.in_width))] + [torch.empty((bs, w)) for w in self.widths[:-1]])
        return bufs

    def _prepare(self, x: np.ndarray, out: np.ndarray):
        torch = self.torch
        return torch.from_numpy(x if x.flags.writeable else x.copy()), torch.from_numpy(out)

    def _run_slice(self, src, dst, start: int, stop: int) -> None:
        torch = self.torch
        if torch.get_num_threads() != 1:  # see _single_thread_torch
            torch.set_num_threads(1)
        bufs = self._buffers()
        last = len(self.layers) - 1
        with torch.inference_mode():
            for i in range(start, stop, self.batch_size):
                j = min(i + self.batch_size, stop)
                n = j - i
                h = bufs[0][:n]
                if self.decoder:
                    torch.tanh(src[i:j], out=h)
                else:
                    h.copy_(src[i:j])
                for k, (w, b) in enumerate(self.layers):
                    o = dst[i:j] if k == last else bufs[k + 1][:n]
                    torch.addmm(b, h, w, out=o)
                    if k < last:
                        o.tanh_()
                    h = o


def _torch_layers(runner: "_Runner", device) -> list:
    """(W^T, b) per layer as contiguous float32 tensors on `device`."""
    import torch

    model, part = runner.model, runner.part
    n_layers = len(model.arch.tensor_shapes(part)) // 2
    return [
        (torch.from_numpy(np.ascontiguousarray(np.asarray(model.weights[f"{part}.{2 * i}.weight"],
                                                          dtype=np.float32).T)).to(device),
         torch.from_numpy(np.array(model.weights[f"{part}.{2 * i}.bias"], dtype=np.float32)).to(device))
        for i in range(n_layers)]


# --- the GPU engine -------------------------------------------------------------------------

class _NoEvent:
    """Stands in for a CUDA event where there is no CUDA (the CPU test of the stream logic)."""

    def record(self, stream=None) -> None:
        pass

    def synchronize(self) -> None:
        pass


def tf32_matmul(torch, allow: bool):
    """Set cuBLAS TF32 for float32 matmul; returns a function that restores the old setting.

    Uses the API the process already uses (the legacy ``allow_tf32`` flag, or
    ``fp32_precision`` of torch >= 2.9), as torch refuses a mix of the two.
    """
    m = torch.backends.cuda.matmul
    try:
        old = m.allow_tf32
        m.allow_tf32 = bool(allow)
        return lambda: setattr(m, "allow_tf32", old)
    except RuntimeError:
        old = m.fp32_precision
        m.fp32_precision = "tf32" if allow else "ieee"
        return lambda: setattr(m, "fp32_precision", old)


class _StreamEngine:
    """Large batches through a device with copies and compute overlapped (two slots, three streams).

    For batch k in slot s = k % 2: the host copies the inputs into pinned buffer s; the copy
    stream moves them to device buffer s; the compute stream waits for that copy, runs the layers
    into device output s; the copy-back stream waits for the compute and moves the result to
    pinned output s. Before slot s is reused (batch k + 2) the host waits for its copy-back,
    which transitively covers its compute and copy in, and copies the result out. So batch k+1
    goes to the device while batch k computes and batch k-1 comes back. Activation buffers are
    shared by the slots: only the compute stream touches them, in order. Every buffer is
    allocated before the first launch and lives as long as the engine, so the caching allocator
    never recycles memory a stream still uses.

    On a CPU device (tests) the same code runs with no streams and no pinning.
    """

    def __init__(self, runner: "_Runner", gpu_batch_size: int | None, allow_tf32: bool) -> None:
        import torch

        self.torch = torch
        self.device = runner.device
        self.cuda = self.device.type == "cuda"
        self.decoder = runner.part == "decoder"
        self.allow_tf32 = bool(allow_tf32)
        self.batch_size = gpu_batch_size or max(runner.batch_size, GPU_BATCH_SIZE)
        self.layers = _torch_layers(runner, self.device)
        self.in_width = self.layers[0][0].shape[0]
        self.widths = [w.shape[1] for w, _ in self.layers]
        self._state: dict | None = None
        self._lock = threading.Lock()  # one run at a time per engine (shared buffers)
        self.copy_in: Any = None  # CUDA streams (None on the CPU, where the same logic runs in order)
        self.compute: Any = None
        self.copy_out: Any = None
        if self.cuda:
            self.copy_in = torch.cuda.Stream(self.device)
            self.compute = torch.cuda.Stream(self.device)
            self.copy_out = torch.cuda.Stream(self.device)

    def _stream(self, s):
        return self.torch.cuda.stream(s) if s is not None else contextlib.nullcontext()

    def _event(self):
        return self.torch.cuda.Event() if self.cuda else _NoEvent()

    def _allocate(self, rows: int) -> dict:
        torch, dev = self.torch, self.device
        f32 = torch.float32
        out_w = self.widths[-1]
        st = {
            "rows": rows,
            "h_in": [torch.empty((rows, self.in_width), dtype=f32, pin_memory=self.cuda) for _ in range(2)],
            "h_out": [torch.empty((rows, out_w), dtype=f32, pin_memory=self.cuda) for _ in range(2)],
            "d_in": [torch.empty((rows, self.in_width), dtype=f32, device=dev) for _ in range(2)],
            "d_out": [torch.empty((rows, out_w), dtype=f32, device=dev) for _ in range(2)],
            "act": ([torch.empty((rows, self.in_width), dtype=f32, device=dev)] if self.decoder else [])
            + [torch.empty((rows, w), dtype=f32, device=dev) for w in self.widths[:-1]],
            "ev_in": [self._event() for _ in range(2)],
            "ev_done": [self._event() for _ in range(2)],
            "ev_out": [self._event() for _ in range(2)],
        }
        st["h_in_np"] = [t.numpy() for t in st["h_in"]]  # type: ignore[attr-defined]  # a list of tensors
        st["h_out_np"] = [t.numpy() for t in st["h_out"]]  # type: ignore[attr-defined]
        if self.cuda:
            torch.cuda.synchronize(dev)  # allocations done before any side stream uses them
        return st

    def _state_for(self, n: int) -> dict:
        """Buffers for batches of min(n, batch_size) rows; the batch is halved when memory is short."""
        torch = self.torch
        while True:
            rows = min(n, self.batch_size)
            if self._state is not None and self._state["rows"] >= rows:
                return self._state
            self._state = None
            try:
                self._state = self._allocate(rows)
                return self._state
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if not self.cuda or "out of memory" not in str(exc).lower() or rows <= GPU_MIN_BATCH_SIZE:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(GPU_MIN_BATCH_SIZE, rows // 2)

    def _forward(self, st: dict, xb, ob) -> None:
        torch = self.torch
        n = xb.shape[0]
        acts = st["act"]
        h = xb
        if self.decoder:
            h = torch.tanh(xb, out=acts[0][:n])
            acts = acts[1:]
        last = len(self.layers) - 1
        for k, (w, b) in enumerate(self.layers):
            o = ob if k == last else acts[k][:n]
            torch.addmm(b, h, w, out=o)
            if k < last:
                o.tanh_()
            h = o

    def run(self, x: np.ndarray, out: np.ndarray) -> None:
        n = len(x)
        if n == 0:
            return
        torch = self.torch
        with self._lock:
            restore = tf32_matmul(torch, self.allow_tf32) if self.cuda else None
            device_ctx = torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext()
            try:
                with torch.inference_mode(), device_ctx:
                    self._pipeline(x, out, n)
            except BaseException:
                if self.cuda:  # nothing may still write into buffers we hand back or reuse
                    with contextlib.suppress(BaseException):
                        torch.cuda.synchronize(self.device)
                raise
            finally:
                if restore is not None:
                    restore()

    def _pipeline(self, x: np.ndarray, out: np.ndarray, n: int) -> None:
        st = self._state_for(n)
        rows = st["rows"]
        pending: list[tuple[int, int] | None] = [None, None]

        def finish(s: int) -> None:
            done = pending[s]
            if done is not None:
                i, j = done
                st["ev_out"][s].synchronize()
                out[i:j] = st["h_out_np"][s][:j - i]
                pending[s] = None

        for k, i in enumerate(range(0, n, rows)):
            j = min(i + rows, n)
            m = j - i
            s = k % 2
            finish(s)  # slot s free again: its batch k-2 is back on the host
            st["h_in_np"][s][:m] = x[i:j]
            d_in, d_out = st["d_in"][s][:m], st["d_out"][s][:m]
            with self._stream(self.copy_in):
                d_in.copy_(st["h_in"][s][:m], non_blocking=True)
                st["ev_in"][s].record(self.copy_in)
            with self._stream(self.compute):
                if self.compute is not None:
                    self.compute.wait_event(st["ev_in"][s])
                self._forward(st, d_in, d_out)
                st["ev_done"][s].record(self.compute)
            with self._stream(self.copy_out):
                if self.copy_out is not None:
                    self.copy_out.wait_event(st["ev_done"][s])
                st["h_out"][s][:m].copy_(d_out, non_blocking=True)
                st["ev_out"][s].record(self.copy_out)
            pending[s] = (i, j)
        finish(0)
        finish(1)


# --- the public runners ---------------------------------------------------------------------

class _Runner:
    def __init__(self, model: Model, part: str, device: str = "auto",
                 batch_size: int = DEFAULT_BATCH_SIZE, workers: int | None = None, *,
                 backend: str | None = None, allow_tf32: bool = False,
                 gpu_batch_size: int | None = None) -> None:
        import torch

        _check_positive("batch_size", batch_size, "batch size")
        if workers is not None:
            _check_positive("workers", workers, "threads")
        if gpu_batch_size is not None:
            _check_positive("gpu_batch_size", gpu_batch_size, "GPU batch size")
        requested = backend if backend is not None else (os.environ.get(BACKEND_ENV) or None)
        if (requested or "").lower() == "numpy" and (device is None or str(device).lower() == "auto"):
            device = "cpu"  # the numpy backend means the CPU
        self.device = resolve_device(device)
        self.model = model
        self.norm = model.normalization
        self.batch_size = int(batch_size)
        self.part = part
        self.cuda = self.device.type == "cuda"
        self.backend = choose_backend(self.device.type, backend)
        # CPU: as many single-threaded workers as the caller's torch threads (see module doc).
        self.workers = 1 if self.cuda else max(1, int(workers or torch.get_num_threads()))
        if self.backend == "cuda":
            self.engine: Any = _StreamEngine(self, gpu_batch_size, allow_tf32)
        elif self.backend == "numpy":
            self.engine = _NumpyEngine(self)
        else:
            self.engine = _TorchEngine(self)
        self.widths = self.engine.widths
        self.in_width = self.engine.in_width

    def _run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_width:
            raise ValueError(f"expected an array of shape (n, {self.in_width}), got {x.shape}")
        out = np.empty((len(x), self.widths[-1]), dtype=np.float32)
        if len(x):
            self.engine.run(x, out)
        return out


class Encoder(_Runner):
    """Model frame (E, pt, eta, phi in GeV) -> float32 latents (pre-tanh).

    Keywords: ``backend`` ("numpy", "torch" or None for the rule, see the module docstring),
    ``allow_tf32`` (GPU only), ``gpu_batch_size`` (GPU only; default max(batch_size, 1M)).
    """

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None, **options) -> None:
        super().__init__(model, "encoder", device, batch_size, workers, **options)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self._run(self.norm.apply(frame))

    def run(self, normalized: np.ndarray) -> np.ndarray:
        """Latents of already normalized inputs (see Normalization.apply)."""
        return self._run(normalized)


class Decoder(_Runner):
    """Latents -> model frame (E, pt, eta, phi in GeV, float64, phi wrapped). Keywords as Encoder."""

    def __init__(self, model: Model, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None, **options) -> None:
        super().__init__(model, "decoder", device, batch_size, workers, **options)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.norm.invert(self._run(latents))

    def run(self, latents: np.ndarray) -> np.ndarray:
        """Normalized network outputs (invert with Normalization.invert)."""
        return self._run(latents)
