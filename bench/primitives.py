"""Raw signing rates for scripts/bench: what `cryptography` alone does, in as many processes as the
runner has workers, on the same box in the same run. The runner's AsymmetricSign is held against
these (issue target: at least 60% of the primitive's rate).

Each process loads one key, then signs a 32-byte prehashed digest in a loop for a fixed time:
RSA_2048 with RSA-PSS (salt 32, as the service signs) and EC_P256 with ECDSA.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

SPECS = ("RSA_2048", "EC_P256")


def _sign_loop(spec: str, seconds: float, ready, go, out) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    digest = os.urandom(32)
    prehashed = utils.Prehashed(hashes.SHA256())
    if spec == "RSA_2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

        def sign():
            return key.sign(digest, pss, prehashed)
    else:
        key = ec.generate_private_key(ec.SECP256R1())

        def sign():
            return key.sign(digest, ec.ECDSA(prehashed))
    ready.set()
    go.wait()
    n, start = 0, time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(16):
            sign()
        n += 16
        if time.perf_counter() >= end:
            break
    out.put(n / (time.perf_counter() - start))


def rate(spec: str, procs: int, seconds: float = 2.0) -> float:
    """Signatures per second of `procs` processes signing at once."""
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(procs)]
    ps = [ctx.Process(target=_sign_loop, args=(spec, seconds, r, go, out), daemon=True) for r in readies]
    for p in ps:
        p.start()
    try:
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("primitive benchmark process did not start")
        go.set()
        return sum(out.get(timeout=seconds + 60) for _ in ps)
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()


if __name__ == "__main__":
    for spec in SPECS:
        print(spec, f"{rate(spec, os.cpu_count() or 1):,.0f}/s")
