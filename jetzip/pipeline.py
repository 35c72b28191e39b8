"""Threads that overlap reading, computing and writing, keeping chunks in order.

:func:`prefetch` runs a producer (the table reader) a few chunks ahead in a background thread;
:class:`InOrderWorker` runs a consumer (the writer) in another. Errors in either are re-raised
in the caller's thread; both stop and join cleanly on errors and Ctrl-C, so nothing touches a
source after it is closed.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Generator, Iterable, Iterator, TypeVar

T = TypeVar("T")


def prefetch(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Produce `items` in a background thread, `depth` ahead, so reading overlaps encoding."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(entry) -> bool:
        """Queue `entry` unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer, re-raised there
            put((False, exc))

    thread = threading.Thread(target=worker, daemon=True, name="jetzip-reader")
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        # The consumer stopped (done, error or Ctrl-C): let the reader finish its current
        # chunk and end, so nothing reads the source after the caller closes it.
        stop.set()
        thread.join()


class InOrderWorker:
    """Call `fn(*args)` for each submitted item, in order, in one background thread.

    At most `depth` items wait; an exception in `fn` is re-raised in the caller at the next
    submit or at exit, and stops the work.
    """

    def __init__(self, fn: Callable[..., None], depth: int = 2) -> None:
        self.fn = fn
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True, name="jetzip-writer")

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.fn(*item)
                except BaseException as exc:  # handed to the caller
                    self.error = exc

    def __enter__(self) -> "InOrderWorker":
        self.thread.start()
        return self

    def submit(self, *args: Any) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(args)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.q.put(None)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error


def ordered_map(fn: Callable[[Any], T], items: Iterable[Any], workers: int,
                depth: int | None = None) -> Iterator[T]:
    """``map(fn, items)`` on `workers` threads, results in input order.

    At most `depth` (default ``workers + 1``) items are in flight, so memory stays a few
    chunks deep. With one worker it is a plain loop in the caller's thread. An exception in
    `fn` is re-raised at its place in the order; the rest is cancelled.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    limit = depth or workers + 1
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="jetzip-codec") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


_process_pools: dict[int, Any] = {}


def _worker_init() -> None:
    """Worker processes leave Ctrl-C to the parent, which cancels the work and cleans up, and
    run one BLAS/OpenMP thread each: the pool already has a process per core (OpenBLAS would
    otherwise start one thread per core in every worker and oversubscribe the machine)."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # read when numpy or torch is first imported here
    if "numpy" in sys.modules:  # already imported (a preloaded __main__): ask the libraries
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        threadpool_limits(1)


def process_pool(workers: int) -> Any:
    """A pool of `workers` processes (forkserver: no threads or locks inherited), created on
    first use and kept for the life of the process."""
    pool = _process_pools.get(workers)
    if pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        if not _process_pools:
            import atexit

            atexit.register(_shutdown_process_pools)  # before the interpreter tears modules down
        pool = _process_pools[workers] = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=_worker_init)
    return pool


def _shutdown_process_pools() -> None:
    for pool in _process_pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _process_pools.clear()


def ordered_process_map(task: Callable[..., T], items: Iterable[Any], args: Callable[[Any], tuple],
                        workers: int, depth: int | None = None) -> Iterator[tuple[Any, T]]:
    """``(item, task(*args(item)))`` for each item, computed in `workers` processes, in order.

    For work that holds the GIL (many small numpy operations, Python loops): threads would
    take turns, processes run side by side. `task` and its arguments must pickle. With one
    worker it runs in the caller's process. At most `depth` (default ``workers + 1``) items are
    in flight; an exception in a task is re-raised at its place in the order.
    """
    if workers <= 1:
        for item in items:
            yield item, task(*args(item))
        return
    from collections import deque
    from concurrent.futures import Future

    pool = process_pool(workers)
    limit = depth or workers + 1
    pending: deque[tuple[Any, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(task, *args(item))))
            if len(pending) >= limit:
                item0, future = pending.popleft()
                yield item0, future.result()
        while pending:
            item0, future = pending.popleft()
            yield item0, future.result()
    finally:
        for _, future in pending:
            future.cancel()
