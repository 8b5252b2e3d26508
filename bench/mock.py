"""`python -m bench.mock` (scripts/bench-mock): the test double's costs, as ratios in one run.

One Encrypt of a few bytes, in process, through a client configured for the real cloud:
* `noop`: the Tea SDK (`alibabacloud-kms20160120`) with its HTTP send answered by a canned Encrypt
  response, the floor: what the client itself costs per call;
* `mock`: the same client under `mock_kms`, answered by the service;
* `moto`: boto3's KMS client under moto's `mock_aws` (the `bench` extra installs moto).
Targets (issue 13): mock at least 3x moto's rate, at most 2x the no-op's cost, and entering plus
leaving `mock_kms` under 5 ms. The scenarios run interleaved, round after round, and each figure is
the median over the rounds, so load from other processes on the machine shifts all of them alike.
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

_CANNED = (b'{"CiphertextBlob":"AQAkZjNmNGE1YjYtYzdkOC00ZTlmLWEwYjEtYzJkM2U0ZjVhNmI3","KeyId":"k",'
           b'"KeyVersionId":"v","RequestId":"5a3b7c4d-1e2f-4a5b-8c6d-7e8f9a0b1c2d"}')


def _tea_client():
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(access_key_id="LTAI5tBenchAccessKey01", access_key_secret="bench-secret",
                         region_id="cn-hangzhou"))


@contextmanager
def _noop():
    """Every requests-based send answered with a canned Encrypt response, built as cheaply as a
    Response can be: the client's own work is all that is left."""
    from requests import Response
    from requests.adapters import HTTPAdapter

    def send(self, request, **kwargs):
        resp = Response()
        resp.status_code, resp._content, resp.url, resp.request = 200, _CANNED, request.url, request
        resp.headers["content-type"] = "application/json;charset=utf-8"
        return resp

    original = HTTPAdapter.send
    HTTPAdapter.send = send
    try:
        yield
    finally:
        HTTPAdapter.send = original


def _per_call(call, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def _round_noop(client, n: int) -> float:
    from alibabacloud_kms20160120 import models

    req = models.EncryptRequest(key_id="k", plaintext="aGVsbG8gd29ybGQ=")
    with _noop():
        return _per_call(lambda: client.encrypt(req), n)


def _round_mock(client, n: int) -> float:
    from alibabacloud_kms20160120 import models

    from alikms.testing import mock_kms

    with mock_kms():
        key_id = client.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        req = models.EncryptRequest(key_id=key_id, plaintext="aGVsbG8gd29ybGQ=")
        for _ in range(20):  # warm: the first call imports the action and caches the key version
            client.encrypt(req)
        return _per_call(lambda: client.encrypt(req), n)


def _round_moto(n: int) -> float:
    import boto3
    from moto import mock_aws

    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        for _ in range(20):
            kms.encrypt(KeyId=key_id, Plaintext=b"hello world")
        return _per_call(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"hello world"), n)


def _round_enter(n: int) -> float:
    from alikms.testing import mock_kms

    def once():
        with mock_kms():
            pass

    return _per_call(once, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000, help="Encrypt calls per scenario and round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 300 calls")
    args = parser.parse_args(argv)
    rounds, calls = (3, 300) if args.quick else (args.rounds, args.calls)

    client = _tea_client()
    _round_enter(5)  # first entry imports the transports and the service
    results: dict[str, list[float]] = {"noop": [], "mock": [], "moto": [], "enter": []}
    for _ in range(rounds):
        results["noop"].append(_round_noop(client, calls))
        results["mock"].append(_round_mock(client, calls))
        results["moto"].append(_round_moto(max(1, calls // 2)))
        results["enter"].append(_round_enter(200))
    med = {name: statistics.median(values) for name, values in results.items()}

    print(f"mock_kms: Encrypt in process, median of {rounds} rounds of {calls} calls (a shared machine:"
          " the ratios, measured side by side, are the figures to read)")
    rows = [
        ("Tea SDK, no-op interception (floor)", med["noop"], ""),
        ("Tea SDK under mock_kms", med["mock"], f"{med['mock'] / med['noop']:.2f}x the no-op's cost (target <= 2)"),
        ("boto3 under moto mock_aws", med["moto"],
         f"mock_kms {med['moto'] / med['mock']:.2f}x moto's rate (target >= 3)"),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<38} {seconds * 1e6:8.1f} us/call  {1 / seconds:8.0f}/s  {note}")
    print(f"  {'enter + leave mock_kms':<38} {med['enter'] * 1e3:8.3f} ms          (target < 5 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
