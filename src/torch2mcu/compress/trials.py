"""Independent trials in parallel: local worker processes by default, a Ray cluster on request.

The sensitivity analysis (one trial per layer: its curve) and the fit search (one trial per
sharing width of a level: the shared model) are embarrassingly parallel. A Trials runs a list
of tasks through a top-level function fn(shared, *task), where `shared` (the model, the data)
is sent once per worker rather than once per task, and gives the results in task order, so a
search makes the same choices wherever its trials ran:

- Trials() / workers=None: $TORCH2MCU_WORKERS, else 0;
- workers=0: one worker process per core (forked where the system has fork, else spawned;
  one torch thread each, as the in-process trials run: compress/finetune.one_thread), or the
  calling process itself when there is one core, one task, or `shared` cannot be pickled (a
  note says so);
- workers=1: the calling process;
- ray="ADDRESS": tasks on a Ray cluster (`ray.init(address=ADDRESS)`; "local" starts one on
  this machine), one CPU each, with this torch2mcu shipped to the workers (runtime_env
  py_modules). Ray is an optional extra: `pip install torch2mcu[ray]`.

Each task is seeded the same way wherever it runs (the function seeds torch itself), and a
worker runs with the progress bars off (the caller reports per finished task).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from torch2mcu.errors import Torch2MCUError

_SHARED = None  # a local worker's shared data (set by _init)


def _as_worker() -> None:
    """One torch thread (the trials share the cores), no progress bars."""
    import torch  # noqa: PLC0415

    from torch2mcu import ui  # noqa: PLC0415

    torch.set_num_threads(1)
    ui.set_quiet(True)


def _init(blob: bytes) -> None:
    global _SHARED
    _as_worker()
    _SHARED = pickle.loads(blob)


def _local_call(fn: Callable, task: tuple):
    return fn(_SHARED, *task)


def _ray_call(fn: Callable, shared, task: tuple):
    _as_worker()
    return fn(shared, *task)


def _reachable(address: str) -> None:
    """Fail fast on a host:port nothing listens on (ray.init would retry for minutes)."""
    import socket  # noqa: PLC0415

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "local", "auto" and the like: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise Torch2MCUError(f"no Ray cluster answers at {address!r} ({e})",
                             fix="start one with `ray start --head` and pass the address it "
                                 "prints, or pass 'local' to start one here") from None


@dataclass
class Trials:
    workers: int | None = None  # 0: one per core; 1: in this process; None: $TORCH2MCU_WORKERS
    ray: str | None = None      # a Ray cluster address ("local": start one here)

    def __post_init__(self):
        if self.workers is None:
            env = os.environ.get("TORCH2MCU_WORKERS", "0")
            if not env.isdigit():
                raise Torch2MCUError(f"TORCH2MCU_WORKERS={env!r} is not a number of workers",
                                     fix="set it to 0 (one per core), 1 (no worker processes) "
                                         "or more, or unset it")
            self.workers = int(env)
        if not isinstance(self.workers, int) or self.workers < 0:
            raise Torch2MCUError(f"{self.workers!r} workers",
                                 fix="pass 0 (one per core), 1 (no worker processes) or more")

    def slots(self, tasks: int) -> int:
        """How many of `tasks` tasks run at once (1: one after the other, in this process)."""
        return tasks if self.ray else max(min(self.workers or os.cpu_count() or 1, tasks), 1)

    def where(self, tasks: int) -> str:
        if self.ray:
            return f"on the Ray cluster {self.ray}"
        n = self.slots(tasks)
        return "in this process" if n == 1 else f"in {n} local worker processes"

    def run(self, fn: Callable, tasks: list[tuple], shared) -> Iterator[tuple[int, object]]:
        """(task index, result) as each task finishes; fn(shared, *task) must be a module-level
        function (workers import it by name)."""
        if self.ray:
            yield from self._on_ray(fn, tasks, shared)
            return
        n = self.slots(len(tasks))
        blob = None
        if n > 1:
            try:
                blob = pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # noqa: BLE001  (a model that does not pickle runs here)
                from torch2mcu.ui import note  # noqa: PLC0415

                note(f"trials run in this process: the model cannot be sent to worker "
                     f"processes ({type(e).__name__}: {e})")
        if blob is None:
            from torch2mcu.compress.finetune import one_thread  # noqa: PLC0415

            for i, task in enumerate(tasks):
                with one_thread():
                    r = fn(shared, *task)
                yield i, r
            return
        import multiprocessing  # noqa: PLC0415

        # fork where there is one (as torch's DataLoader workers): a spawned worker would run
        # the caller's script again, which a script without a __main__ guard does not survive
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method),
                                 initializer=_init, initargs=(blob,)) as pool:
            futures = {pool.submit(_local_call, fn, task): i for i, task in enumerate(tasks)}
            for f in as_completed(futures):
                yield futures[f], f.result()

    def _on_ray(self, fn: Callable, tasks: list[tuple], shared):
        try:
            import ray  # noqa: PLC0415
        except ImportError:
            raise Torch2MCUError("--ray needs Ray, which is not installed",
                                 fix="pip install 'torch2mcu[ray]' (or run without --ray: "
                                     "local worker processes)") from None
        import torch2mcu  # noqa: PLC0415

        if not ray.is_initialized():
            _reachable(self.ray)
            package = os.path.dirname(torch2mcu.__file__)
            try:
                ray.init(address=None if self.ray == "local" else self.ray,
                         runtime_env={"py_modules": [package]}, log_to_driver=False,
                         include_dashboard=False, ignore_reinit_error=True)
            except Exception as e:  # noqa: BLE001  (Ray raises ConnectionError and others)
                raise Torch2MCUError(f"cannot connect to the Ray cluster at {self.ray!r}: "
                                     f"{type(e).__name__}: {e}",
                                     fix="pass the head node's address (ray start --head "
                                         "prints it), or 'local' to start one here") from None
        remote = ray.remote(num_cpus=1)(_ray_call)
        ref = ray.put(shared)
        pending = {remote.remote(fn, ref, task): i for i, task in enumerate(tasks)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for d in done:
                yield pending.pop(d), ray.get(d)

    def map(self, fn: Callable, tasks: list[tuple], shared, done=None) -> list:
        """The results in task order; done(index, result) as each finishes."""
        out = [None] * len(tasks)
        for i, r in self.run(fn, tasks, shared):
            out[i] = r
            if done is not None:
                done(i, r)
        return out
