"""What the web server holds to against a hostile client: request bodies are limited
(413 before the rest is read), forwarded headers are trusted only from configured
proxies, and the CLI's web options reach the server.

The real-server tests start ``cronkit web`` (a process of its own, so that its memory
can be measured through /proc) or a uvicorn server in a thread, on 127.0.0.1 and a
free port, and stop it at the end."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cronkit
from cronkit import cli
from cronkit.web import create_app, make_server, security
from tests.children import child_env
from tests.children import command as script_command
from tests.servers import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

MiB = 1024 * 1024
START_TIMEOUT = 60.0
API = "/api/v1/sites/plone"


class Free(cronkit.Runner):
    """Takes any payload."""

    def run(self):
        return None


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    site.register_runner(Free, name="free")
    site.crontab.save()
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit))


def csrf(client: TestClient | httpx.Client, url: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text).group(1)


# -- request bodies through the TestClient ------------------------------------------------


def test_the_default_limit_is_a_few_mib():
    assert security.MAX_BODY == 4 * MiB


def test_a_login_post_over_the_limit_is_413(client):
    token = csrf(client)
    response = client.post("/login", content=b"password=" + b"a" * (5 * MiB)
                           + b"&csrf_token=" + token.encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert "request body too large" in response.text and "4 MiB" in response.text
    assert response.headers["connection"] == "close"
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_an_api_body_over_the_limit_is_a_json_413(client, site):
    body = b'{"type": "free", "payload": {"x": "' + b"a" * (5 * MiB) + b'"}}'
    response = client.post(f"{API}/jobs", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "request body too large: the limit is 4 MiB "
                                        "(4194304 bytes)", "field": "body"}
    assert site.jobs.count() == 0


def test_a_chunked_body_over_the_limit_is_413(client, site):
    def chunks():
        yield b'{"type": "free", "payload": {"x": "'
        for _ in range(5):
            yield b"a" * MiB
        yield b'"}}'

    response = client.post(f"{API}/jobs", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body"
    assert site.jobs.count() == 0


def test_a_page_form_over_the_limit_is_413_even_before_login(kit, site):
    guarded = TestClient(create_app(kit, password="pw"))
    response = guarded.post("/sites/plone/crons/new", content=b"x" * (5 * MiB),
                            headers={"Content-Type": "application/x-www-form-urlencoded"},
                            follow_redirects=False)
    assert response.status_code == 413


def test_the_limit_is_configured_and_a_body_at_the_limit_passes(kit, site):
    body = b'{"type": "free", "payload": {"x": "abc"}}'
    at_limit = TestClient(create_app(kit, max_body=len(body)))
    assert at_limit.post(f"{API}/jobs", content=body,
                         headers={"Content-Type": "application/json"}).status_code == 201
    below = TestClient(create_app(kit, max_body=len(body) - 1))
    response = below.post(f"{API}/jobs", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == (f"request body too large: the limit is {len(body) - 1}"
                                        " bytes")


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "4M", None])
def test_the_limit_must_be_a_positive_number_of_bytes(kit, value):
    with pytest.raises(cronkit.CronkitError, match="max_body"):
        create_app(kit, max_body=value)


# -- request bodies on a real server ------------------------------------------------------


@contextlib.contextmanager
def cronkit_web(tmp_path: Path, *options: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """``cronkit web`` in a process of its own on 127.0.0.1, stopped at the end."""
    port = free_port()
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen([*script_command("cronkit"), "--store",
                             f"sqlite:///{tmp_path / 'web.db'}", "web", "--port", str(port),
                             *options], cwd=tmp_path, env=child_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, (tmp_path / "web.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not answer"
            time.sleep(0.1)   # a real process starting: real time
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def peak_rss(pid: int) -> int:
    """The highest resident set size the process has had, in bytes (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def read_response(sock: socket.socket) -> bytes:
    """What the server answered, up to the end of its headers and a little more (the
    server may reset the connection once it has answered)."""
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    return data


def send_chunked(port: int, path: str, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes to ``path`` in 1 MiB chunks, reading the answer meanwhile:
    (the answer, how many bytes the server let in before it stopped the upload)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent = 0
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(read_response(sock)))
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        reader.start()
        chunk = b"%x\r\n" % MiB + b"a" * MiB + b"\r\n"
        with contextlib.suppress(OSError):   # the server closed the connection
            while sent < total and reader.is_alive():
                sock.sendall(chunk)
                sent += MiB
            sock.sendall(b"0\r\n\r\n")
        reader.join(60)
    finally:
        sock.close()
    return (answer[0] if answer else b""), sent


def test_a_300_mb_chunked_login_post_is_413_and_the_server_memory_stays_low(tmp_path):
    with cronkit_web(tmp_path) as (port, proc):
        before = peak_rss(proc.pid)
        answer, sent = send_chunked(port, "/login", 300 * MiB)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"connection: close" in answer.lower()
        assert sent < 150 * MiB      # it stopped the upload: it did not take the rest
        grown = peak_rss(proc.pid) - before
        assert grown < 100 * MiB, f"the server grew by {grown // MiB} MiB"
        # and it goes on answering
        assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200


def test_a_too_large_content_length_is_413_before_any_body_is_sent(tmp_path):
    with cronkit_web(tmp_path, "--max-body", "1M") as (port, proc):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"POST /api/v1/sites/default/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}"
                         "\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n"
                         "Expect: 100-continue\r\n\r\n".encode())
            answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]   # not "100 Continue"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            body = b'{"type": "nope"}'
            sock.sendall(f"POST /api/v1/sites/default/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}"
                         "\r\nContent-Type: application/json\r\nContent-Length: "
                         f"{len(body)}\r\n\r\n".encode() + body)
            assert not read_response(sock).startswith(b"HTTP/1.1 413 ")


# -- forwarded headers on a real server ---------------------------------------------------


@contextlib.contextmanager
def server_thread(kit: cronkit.Cronkit, **options: object) -> Iterator[str]:
    """make_server(kit, ...) running in a thread on 127.0.0.1: its base URL."""
    port = free_port()
    server = make_server(kit, port=port, **options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)   # a real server starting: real time
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()


def login_from(base: str, password: str, forwarded_for: str | None = None) -> int:
    """A login attempt from a fresh browser: the status of the answer."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as browser:
        token = csrf(browser)
        return browser.post("/login", data={"password": password, "csrf_token": token,
                                            "next": "/"}).status_code


def test_x_forwarded_for_is_not_trusted_by_default(kit, site):
    assert make_server(kit, port=0, password="pw").config.proxy_headers is False
    with server_thread(kit, password="pw") as base:
        for n in range(5):
            assert login_from(base, "nope", f"198.51.100.{n}") == 401
        # a sixth address in the header is still the same client: locked out
        assert login_from(base, "nope", "198.51.100.99") == 429


def test_x_forwarded_for_from_a_configured_proxy_names_the_client(kit, site):
    with server_thread(kit, password="pw", forwarded_allow_ips="127.0.0.1") as base:
        for _ in range(5):
            assert login_from(base, "nope", "198.51.100.1") == 401
        assert login_from(base, "nope", "198.51.100.1") == 429
        assert login_from(base, "pw", "198.51.100.2") == 303   # another client, logged in


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.300", "10.0.0.0/33", "", " , "])
def test_forwarded_allow_ips_must_be_addresses_or_networks(kit, value):
    with pytest.raises(cronkit.CronkitError, match="forwarded_allow_ips"):
        make_server(kit, port=0, forwarded_allow_ips=value)


def test_forwarded_allow_ips_takes_addresses_networks_or_a_star(kit):
    config = make_server(kit, port=0, forwarded_allow_ips="10.0.0.1, 192.0.2.0/24,::1").config
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ["10.0.0.1", "192.0.2.0/24", "::1"]
    assert make_server(kit, port=0, forwarded_allow_ips=["*"]).config.forwarded_allow_ips == ["*"]


# -- auth off loopback ---------------------------------------------------------------------


@pytest.mark.parametrize("what", ["token", "password"])
@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_token_or_password_is_refused_and_never_opens_the_server(kit, what, blank):
    with pytest.raises(cronkit.CronkitError, match=f"the web {what} must not be blank"):
        make_server(kit, host="0.0.0.0", port=0, **{what: blank})
    with pytest.raises(cronkit.CronkitError, match=f"the web {what} must not be blank"):
        create_app(kit, **{"auth_token" if what == "token" else what: blank})


@pytest.mark.parametrize("token", [" tok", "tok\n", "t\u00f6k"])
def test_a_token_that_no_header_can_carry_is_refused(kit, token):
    with pytest.raises(cronkit.CronkitError, match="the web token"):
        create_app(kit, auth_token=token)


# -- the CLI's web options ----------------------------------------------------------------


@pytest.fixture
def served(monkeypatch):
    """A stand-in cronkit.web whose serve() records its options."""
    calls: list[dict] = []
    module = types.ModuleType("cronkit.web")
    module.serve = lambda kit, **options: calls.append(options)
    monkeypatch.setitem(sys.modules, "cronkit.web", module)
    return calls


@pytest.fixture
def run(db_url, capsys, monkeypatch):
    monkeypatch.delenv("CRONKIT_TOKEN", raising=False)
    monkeypatch.delenv("CRONKIT_PASSWORD", raising=False)

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(["--store", db_url, *argv])
        return code, capsys.readouterr().err

    return run


def test_the_web_options_reach_the_server(run, served):
    code, err = run("web", "--max-body", "8M", "--secure-cookies",
                    "--forwarded-allow-ips", "10.0.0.1,10.0.0.2")
    assert code == 0, err
    assert served == [{"host": "127.0.0.1", "port": 8080, "token": None, "password": None,
                       "max_body": 8 * MiB, "secure_cookies": True,
                       "forwarded_allow_ips": "10.0.0.1,10.0.0.2"}]


@pytest.mark.parametrize("text, size", [("4194304", 4 * MiB), ("512k", 512 * 1024),
                                        ("4M", 4 * MiB), ("4MiB", 4 * MiB), ("1G", 1024 * MiB)])
def test_max_body_reads_bytes_or_a_binary_suffix(run, served, text, size):
    code, err = run("web", "--max-body", text)
    assert code == 0, err
    assert served[-1]["max_body"] == size


@pytest.mark.parametrize("text", ["0", "-1", "4X", "M", "1.5M", ""])
def test_max_body_refuses_what_is_not_a_size(run, served, text):
    code, err = run("web", "--max-body", text)
    assert code == 2 and "--max-body" in err and served == []


@pytest.mark.parametrize("option, env", [("--token", "CRONKIT_TOKEN"),
                                         ("--password", "CRONKIT_PASSWORD")])
def test_a_blank_credential_is_one_line_from_the_cli(run, served, monkeypatch, option, env):
    code, err = run("web", "--host", "0.0.0.0", option, "  ")
    assert code == 2 and served == []
    assert err.strip().splitlines() == [f"cronkit: error: {option} is blank"]
    monkeypatch.setenv(env, " ")
    code, err = run("web")
    assert code == 2 and err.strip() == f"cronkit: error: ${env} is blank"
    monkeypatch.setenv(env, "")     # an empty variable is an unset one
    assert run("web")[0] == 0 and served[-1][option[2:]] is None
