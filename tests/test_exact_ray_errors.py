"""Ray by address, without a cluster: token authentication becomes a project error, a local store warns."""

from __future__ import annotations

import socket
import warnings

import pytest

from unlearnkit.errors import ConfigError
from unlearnkit.exact import executors
from unlearnkit.exact.executors import RayExecutor, ray_auth_problem, warn_if_store_is_local


class AuthenticationError(Exception):
    """Stands in for ``ray.exceptions.AuthenticationError`` (matched by name)."""


class FakeRay:
    def __init__(self, exc: BaseException | None = None, nodes: int = 1) -> None:
        self.exc, self._nodes, self.inits = exc, nodes, []

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: object) -> None:
        self.inits.append(kwargs)
        if self.exc is not None:
            raise self.exc

    def nodes(self) -> list[dict]:
        return [{"Alive": True}] * self._nodes + [{"Alive": False}]


def _executor(monkeypatch, ray: FakeRay, address: str = "10.0.0.5:6379") -> RayExecutor:
    monkeypatch.setattr(executors, "require", lambda module, extra: ray)
    monkeypatch.setattr(executors, "check_ray_address", lambda address: None)  # the fake is the cluster
    return RayExecutor(address=address)


@pytest.fixture
def listening():
    """A port on the loopback interface that accepts connections (as a cluster's GCS port does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed when this returns: nothing listens


@pytest.fixture
def server():
    """Start a loopback server that answers each connection with ``reply`` (``None``: accept and stay silent)."""
    import threading

    socks: list[socket.socket] = []

    def start(reply: bytes | None) -> str:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        socks.append(s)

        def serve() -> None:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            socks.append(conn)
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return f"127.0.0.1:{s.getsockname()[1]}"

    yield start
    for s in socks:
        s.close()


#: what a gRPC server sends first: a SETTINGS frame (type 4) on stream 0, here with one setting
GRPC_SETTINGS = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes([0, 3, 0, 0, 0, 100])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.0 400 Bad request\r\n\r\n", "does not speak gRPC"),  # a web server
        (None, "does not speak gRPC"),  # accepts, never answers
        (b"", "does not speak gRPC"),  # accepts and hangs up
    ],
)
def test_an_address_where_no_ray_cluster_answers_is_refused_at_once(server, reply, message):
    import time

    address = server(reply)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as info:
        executors.check_ray_address(address, timeout=0.5)
    assert time.perf_counter() - start < 5 and address in str(info.value)


def test_a_closed_port_is_refused_and_a_grpc_server_is_let_through(server):
    with pytest.raises(ConfigError, match="nothing accepts connections"):
        executors.check_ray_address(_closed_port(), timeout=0.5)
    executors.check_ray_address(server(GRPC_SETTINGS), timeout=2.0)  # no error: Ray's GCS answers this way
    executors.check_ray_address("auto")  # left to Ray


def test_ray_authentication_error_becomes_a_project_error_naming_ray_auth_mode(monkeypatch):
    ray = FakeRay(AuthenticationError("Authentication token is missing or incorrect"))
    with pytest.raises(ConfigError, match="RAY_AUTH_MODE") as info:
        _executor(monkeypatch, ray)
    assert "10.0.0.5:6379" in str(info.value) and "RAY_AUTH_TOKEN" in str(info.value)
    assert "\n" not in str(info.value)


def test_unauthenticated_rpc_in_the_cause_is_recognised():
    try:
        try:
            raise RuntimeError("Unauthenticated: RPC error: InvalidAuthToken")
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from inner
    except ConnectionError as exc:
        assert "requires token authentication" in ray_auth_problem(exc, "10.0.0.5:6379")


def test_generic_connection_error_from_a_listening_cluster_is_read_as_authentication(monkeypatch, listening):
    # Ray 2.60 raises only this after its timeout; the refused token goes to the console log
    ray = FakeRay(ConnectionError(f"Failed to connect to Ray cluster at {listening}"))
    with pytest.raises(ConfigError, match="RAY_AUTH_MODE=token"):
        _executor(monkeypatch, ray, listening)


def test_other_failures_pass_through_unchanged(monkeypatch):
    address = _closed_port()
    with pytest.raises(ConnectionError, match="Failed to connect"):  # nothing listens: not an auth problem
        _executor(monkeypatch, FakeRay(ConnectionError(f"Failed to connect to Ray cluster at {address}")), address)
    with pytest.raises(RuntimeError, match="Version mismatch"):
        _executor(monkeypatch, FakeRay(RuntimeError("Version mismatch: the cluster runs 2.9")))


def test_the_executor_checks_the_address_before_ray_init(monkeypatch):
    ray = FakeRay()
    monkeypatch.setattr(executors, "require", lambda module, extra: ray)
    with pytest.raises(ConfigError, match="nothing accepts connections"):
        RayExecutor(address=_closed_port())
    assert ray.inits == []  # refused before Ray could wait for a GCS


def test_warns_when_a_multi_node_cluster_would_use_a_local_store(monkeypatch, tmp_path):
    ex = _executor(monkeypatch, FakeRay(nodes=3))
    with pytest.warns(UserWarning, match="has 3 nodes but the checkpoints go to"):
        assert warn_if_store_is_local(ex, str(tmp_path / "store"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_store_is_local(ex, "s3://bucket/ckpts")  # a store every node reaches
        assert not warn_if_store_is_local(_executor(monkeypatch, FakeRay(nodes=1)), str(tmp_path / "store"))
        assert not warn_if_store_is_local(executors.SerialExecutor(), str(tmp_path / "store"))


@pytest.mark.slow
def test_a_token_auth_cluster_gives_one_error_line_naming_ray_auth_mode(tmp_path):
    """A real head started with RAY_AUTH_MODE=token; a client without its token (Ray 2.60 raises only a
    generic ConnectionError after its timeout)."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    pytest.importorskip("ray")
    port = int(_closed_port().rpartition(":")[2])
    temp = tempfile.mkdtemp(prefix="ukra")  # short: Ray's socket paths must stay under 108 characters
    (tmp_path / "head").mkdir()
    (tmp_path / "client").mkdir()
    token = "0123456789abcdef0123456789abcdef"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "RAY_ADDRESS": "", "OMP_NUM_THREADS": "1"}
    head = {**env, "HOME": str(tmp_path / "head"), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    cmd += ["--port", str(port), "--num-cpus", "1", "--include-dashboard", "false", "--temp-dir", temp]
    proc = subprocess.Popen(
        [*cmd, "--disable-usage-stats"],
        env=head,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not executors._accepts_connections(f"127.0.0.1:{port}", 1.0):
            time.sleep(0.5)
        time.sleep(2)
        client = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
        client["HOME"] = str(tmp_path / "client")
        args = [sys.executable, "-m", "unlearnkit.cli", "exact-train", "--dataset", "digits", "--train-subset", "60"]
        args += ["--shards", "2", "--slices", "1", "--epochs", "1", "--out", str(tmp_path / "m"), "--no-progress"]
        run = subprocess.run(
            [*args, "--ray-address", f"127.0.0.1:{port}"], env=client, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 2, run.stderr[-2000:]
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "RAY_AUTH_MODE" in errors[0] and f"127.0.0.1:{port}" in errors[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # only the `ray start --block` session this test started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
