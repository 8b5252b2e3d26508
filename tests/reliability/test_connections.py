"""Connections that misbehave cost the runner nothing lasting: idle sockets and half-sent requests
are closed in bounded time (the stalled request answered 408), and an oversized body is refused with
the documented error without being held in memory, the connection staying usable."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests import support
from tests.reliability.helpers import closed_by_peer, raw_request, read_response, start_group, stop_group


@pytest.fixture
def strict_runner(tmp_path):
    """One worker that closes silent connections after 1 s and times requests out after 1 s."""
    srv = start_group(tmp_path / "data", workers=1, extra=("--timeout-keep-alive", "1", "--request-timeout", "1"))
    yield srv
    stop_group(srv)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def resident_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def test_idle_and_half_sent_connections_are_closed_and_block_nobody(strict_runner):
    srv = strict_runner
    assert support.call(srv, "DescribeRegions")[0] == 200  # the worker's files are open now
    baseline = open_descriptors(srv.proc.pid)
    silent = [connect(srv) for _ in range(300)]
    half_head = [connect(srv) for _ in range(20)]
    half_body = [connect(srv) for _ in range(20)]
    for sock in half_head:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: kms\r\nx-acs-action: Desc")
    for sock in half_body:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: kms\r\ncontent-type: application/x-www-form-urlencoded\r\n"
                     b"content-length: 10000000\r\n\r\nAction=DescribeKey&KeyId=")
    dripping, stop = connect(srv), threading.Event()

    def drip() -> None:  # a byte every 0.2 s: each read is recent, the request never completes
        request = raw_request(srv, "DescribeRegions")
        for byte in request[:-1]:
            if stop.wait(0.2):
                return
            try:
                dripping.send(bytes([byte]))
            except OSError:
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        # With 341 connections open and idle or stalled, a client is answered at once.
        status, body = support.call(srv, "DescribeRegions")
        assert (status, body["Regions"]["Region"]) == (200, [{"RegionId": "cn-hangzhou"}])
        deadline = time.monotonic() + 10
        assert [closed_by_peer(sock, deadline) for sock in silent] == [b""] * len(silent)
        for sock in half_head + half_body + [dripping]:
            answer = closed_by_peer(sock, deadline)
            assert answer is not None and answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"connection: close" in answer
    finally:
        stop.set()
        dripper.join(10)
        for sock in silent + half_head + half_body + [dripping]:
            sock.close()
    # Nothing of them stays in the worker.
    deadline = time.monotonic() + 5
    while open_descriptors(srv.proc.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_descriptors(srv.proc.pid) <= baseline
    assert support.call(srv, "DescribeRegions")[0] == 200


def test_a_connection_that_speaks_before_the_idle_timeout_is_served(strict_runner):
    srv = strict_runner
    with connect(srv) as sock, sock.makefile("rb") as f:
        time.sleep(0.3)  # under the idle timeout
        sock.sendall(raw_request(srv, "DescribeRegions"))
        assert read_response(f)[0] == 200
        time.sleep(0.3)  # the timer restarted when the answer left
        sock.sendall(raw_request(srv, "DescribeRegions"))
        assert read_response(f)[0] == 200


def _oversized(srv, chunked: bool) -> bytes:
    """A DescribeRegions request whose form body is 16 MB (the limit is 128 KB)."""
    request = raw_request(srv, "DescribeRegions")
    head = request[: request.index(b"content-length")]
    body = b"A=" + b"x" * (16 * 1024 * 1024)
    if not chunked:
        return head + f"content-length: {len(body)}\r\n\r\n".encode() + body
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536))
    return head + b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_refused_without_being_kept(server, chunked):
    assert support.call(server, "DescribeRegions")[0] == 200  # imports done: they cost memory too
    before = resident_kb(server.proc.pid)
    with connect(server) as sock, sock.makefile("rb") as f:
        sender = threading.Thread(target=sock.sendall, args=(_oversized(server, chunked),))
        sender.start()
        status, body = read_response(f)
        sender.join(30)
        assert (status, body["Code"], body["Message"]) == (400, "ParseRequestParameterException",
                                                           "The request body is too large.")
        sock.sendall(raw_request(server, "DescribeRegions"))  # the same connection goes on
        assert read_response(f)[0] == 200
    assert resident_kb(server.proc.pid) - before < 8 * 1024  # the 16 MB were read and dropped
