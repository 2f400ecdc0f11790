"""Ordered parallel map over worker processes, shared by the two tfrecord writers."""
import concurrent.futures
import multiprocessing


def ordered_map(function, tasks, workers, initializer=None, initargs=(), chunksize=1):
    """Yields function(task) for each task, in the order of `tasks`.

    workers <= 1 runs everything in this process (after initializer(*initargs)). Otherwise the
    tasks go to `workers` processes started with spawn, not fork: the parent has TensorFlow's
    threads running, which fork would copy broken. An executor rather than multiprocessing.Pool:
    a worker that dies (a crash inside a native library) ends the run with BrokenProcessPool
    instead of a wait forever. On an error downstream the remaining tasks are cancelled.
    """
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(function, tasks)
        return
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer, initargs=initargs)
    try:
        yield from pool.map(function, tasks, chunksize=chunksize)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
