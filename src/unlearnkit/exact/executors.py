"""Where shard jobs run: an executor interface over existing engines, never a home-made scheduler.

* ``serial``: in the calling process, one after the other.
* ``process`` (default): a local :class:`concurrent.futures.ProcessPoolExecutor` (``spawn`` start method,
  one torch thread per worker). A single job runs in the calling process, since starting a pool would cost
  more than it saves.
* ``ray``: Ray tasks (optional extra ``ray``). Connects to ``address`` (or ``$RAY_ADDRESS``) when given —
  an existing cluster, whose resources are its own, so no ``num_cpus`` is passed — else starts a local
  single-node Ray instance with ``num_cpus`` CPUs. A cluster that refuses the connection because it requires
  Ray's token authentication (the default from Ray 2.60) is reported as a :class:`ConfigError` naming
  ``RAY_AUTH_MODE`` and ``RAY_AUTH_TOKEN`` (:func:`ray_auth_problem`), instead of Ray's generic
  ``ConnectionError``; :func:`warn_if_store_is_local` warns when a cluster of several nodes would write
  checkpoints to a folder only this machine sees.
"""

from __future__ import annotations

import multiprocessing
import socket
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

from ..errors import ConfigError, require

EXECUTORS = ("process", "serial", "ray")


class Executor(ABC):
    """Runs ``fn`` on every item and returns the results in order."""

    name = ""

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "") -> list[Any]:
        """``[fn(item) for item in items]``, possibly in parallel; a progress bar when ``desc`` is given."""

    def close(self) -> None:
        """Release workers (nothing to release by default)."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bar(items: Any, desc: str, total: int | None = None) -> tqdm:
    return tqdm(items, desc=desc or "jobs", total=total, disable=not desc, leave=False, unit="job")


class SerialExecutor(Executor):
    name = "serial"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "") -> list[Any]:
        return [fn(item) for item in _bar(list(items), desc)]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class ProcessExecutor(Executor):
    """A local process pool (``concurrent.futures``); ``max_workers`` defaults to the CPU count."""

    name = "process"

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        if max_workers is not None and max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.start_method = start_method

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "") -> list[Any]:
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]
        workers = min(len(items), self.max_workers or multiprocessing.cpu_count())
        ctx = multiprocessing.get_context(self.start_method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_one_thread) as pool:
            futures = [pool.submit(fn, item) for item in items]
            for _ in _bar(as_completed(futures), desc, total=len(futures)):
                pass
            return [f.result() for f in futures]


class RayExecutor(Executor):
    """Ray tasks, one CPU each. Starts a local Ray instance unless one is running or ``address`` is given;
    :meth:`close` shuts down only an instance this executor started."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import os

        self.ray = require("ray", "ray")
        self._started = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.address = address
        if not self.ray.is_initialized():
            if address is not None:  # an existing cluster: its resources are fixed, passing num_cpus is an error
                check_ray_address(address)
                try:
                    self.ray.init(address=address, log_to_driver=False)
                except Exception as exc:
                    why = ray_auth_problem(exc, address)
                    if why:
                        raise ConfigError(why) from exc
                    raise
            else:  # "local": a new instance, never a stale one recorded in Ray's temp folder by an earlier run
                self.ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            self._started = True

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "") -> list[Any]:
        def in_one_thread(item: Any) -> Any:
            # Ray sets OMP_NUM_THREADS=1 in its workers only when the driver's environment leaves it unset;
            # one torch thread everywhere keeps every backend's shards bit-identical
            _one_thread()
            return fn(item)

        remote = self.ray.remote(num_cpus=1)(in_one_thread)
        refs = [remote.remote(item) for item in items]
        pending = list(refs)
        with _bar(None, desc, total=len(refs)) as bar:
            while pending:
                ready, pending = self.ray.wait(pending, num_returns=1)
                bar.update(len(ready))
        return list(self.ray.get(refs))

    def nodes(self) -> int:
        """How many live nodes the cluster has."""
        return sum(1 for n in self.ray.nodes() if n.get("Alive", n.get("alive", False)))

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


_AUTH_MARKS = ("unauthenticated", "invalidauthtoken", "authentication token", "auth_token", "ray_auth")


def _accepts_connections(address: str, timeout: float = 3.0) -> bool:
    host, _, port = address.rpartition("://")[2].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


#: what an HTTP/2 client sends first (RFC 9113 §3.4): the preface and an empty SETTINGS frame
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_http2(address: str, timeout: float = 3.0) -> bool | None:
    """Whether the server at ``[scheme://]host:port`` answers an HTTP/2 preface with a frame (a gRPC server such
    as Ray's GCS or Ray Client sends its SETTINGS frame); ``None`` when nothing accepts connections there."""
    host, _, port = address.rpartition("://")[2].rpartition(":")
    try:
        conn = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
    except (OSError, ValueError):  # refused, unreachable, unknown host, no answer to connect, bad port
        return None
    head = b""
    with conn:
        try:
            conn.settimeout(timeout)
            conn.sendall(_HTTP2_PREFACE)
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except OSError:  # silent (timeout) or reset: not a gRPC server
            return False
    # a frame header: 3 bytes length, 1 byte type (4 = SETTINGS), 1 byte flags, 4 bytes stream id 0
    return len(head) == 9 and head[3] == 4 and head[5:9] == bytes(4)


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Refuse, within ``timeout`` seconds, a ``--ray-address`` where no Ray cluster answers — ``ray.init`` would
    wait for a GCS there for minutes. ``auto`` (Ray finds its own cluster) is left to Ray."""
    if address == "auto":
        return
    scheme, _, hostport = address.rpartition("://")
    if ":" not in hostport:  # Ray's default ports: Ray Client 10001, the GCS 6379
        hostport += ":10001" if scheme == "ray" else ":6379"
    answer = _speaks_http2(hostport, timeout)
    if answer is None:
        raise ConfigError(
            f"nothing accepts connections at --ray-address {address}; start the cluster (`ray start --head`) or "
            "correct the host and port"
        )
    if not answer:
        raise ConfigError(
            f"the server at --ray-address {address} does not speak gRPC, so it is not a Ray cluster's GCS or Ray "
            "Client port; give the address `ray start --head` printed (HOST:6379 by default)"
        )


def ray_auth_problem(exc: BaseException, address: str) -> str:
    """The project's message when ``exc`` (raised by ``ray.init(address=...)``) means the cluster requires
    token authentication, else ``""``. Read from Ray's ``AuthenticationError`` or an authentication mark in
    any exception of the chain; a bare ``ConnectionError`` from a cluster whose port accepts connections
    (Ray 2.60 logs the refused token only to the console) counts too."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    said = any(type(x).__name__ == "AuthenticationError" for x in chain) or any(
        m in str(x).lower() for x in chain for m in _AUTH_MARKS
    )
    if said:
        why = "it requires token authentication"
    elif isinstance(exc, ConnectionError) and _accepts_connections(address):
        why = "its port accepts connections, so it most likely requires token authentication"
    else:
        return ""
    return (
        f"the Ray cluster at {address} refused this client ({why}: RAY_AUTH_MODE=token, the default from "
        "Ray 2.60); give this machine the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), "
        "or start a trusted private cluster with RAY_AUTH_MODE=disabled"
    )


def warn_if_store_is_local(executor: Executor, store_url: str) -> bool:
    """Warn (and return ``True``) when ``executor`` is a Ray cluster reached by address with more than one
    node while checkpoints go to a local folder (no ``--store``): workers on the other nodes cannot see it."""
    if not isinstance(executor, RayExecutor) or executor.address is None or "://" in store_url:
        return False
    n = executor.nodes()
    if n <= 1:
        return False
    warnings.warn(
        f"the Ray cluster at {executor.address} has {n} nodes but the checkpoints go to {store_url}, a folder on "
        "this machine that workers on other nodes cannot read or write; train with `exact-train --store URL` "
        "(s3://…, gs://…, or file:// on a filesystem every node mounts)",
        stacklevel=2,
    )
    return True


def make_executor(executor: str | Executor | None = "process", workers: int | None = None) -> Executor:
    """An :class:`Executor` from its name (``process``, ``serial``, ``ray``) or the instance itself."""
    if isinstance(executor, Executor):
        return executor
    if executor is None or executor == "process":
        return ProcessExecutor(workers)
    if executor == "serial":
        return SerialExecutor()
    if executor == "ray":
        return RayExecutor(num_cpus=workers)
    if isinstance(executor, str) and executor.startswith("ray:"):
        return RayExecutor(address=executor[4:])
    raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
