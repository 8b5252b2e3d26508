"""Helpers of the security tests: `alikms.runner.admin` in a subprocess, RAM-style policy documents,
official Tea SDK calls that surface errors as one exception type, raw signed calls as any key."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from alikms.shared.registry import snake
from tests import support

REGION = "cn-hangzhou"


class ApiError(Exception):
    def __init__(self, code: str, status: int, message: str, data: dict, denied: dict | None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code, self.status, self.message, self.data, self.denied = code, status, message, data, denied


def admin(data_dir: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m alikms.runner.admin --data-dir DIR ARGS...` as an operator would."""
    proc = subprocess.run([sys.executable, "-m", "alikms.runner.admin", "--data-dir", str(data_dir), *args],
                          check=False,
                          cwd=support.ROOT, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def write_policy(data_dir: Path, document: dict) -> str:
    path = Path(data_dir).parent / f"policy-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(document))
    return str(path)


def create_access_key(srv: support.Server, policy: dict | None = None, account: str | None = None) -> tuple[str, str]:
    """A new access key made by `alikms.runner.admin access-key create --json`: (AccessKeyId, AccessKeySecret)."""
    args = ["access-key", "create", "--json"]
    if account:
        args += ["--account", account]
    if policy is not None:
        args += ["--policy", write_policy(srv.data_dir, policy)]
    out = json.loads(admin(srv.data_dir, *args, env=srv.env).stdout)
    assert out["AccountId"] == (account or srv.account_id)
    return out["AccessKeyId"], out["AccessKeySecret"]


def statement(effect: str, actions, resources, condition: dict | None = None) -> dict:
    st = {"Effect": effect, "Action": actions, "Resource": resources}
    if condition:
        st["Condition"] = condition
    return st


def allow(actions, resources="*", condition: dict | None = None) -> dict:
    return statement("Allow", actions, resources, condition)


def deny(actions, resources="*", condition: dict | None = None) -> dict:
    return statement("Deny", actions, resources, condition)


def policy(*statements: dict) -> dict:
    return {"Version": "1", "Statement": list(statements)}


def key_arn(account: str, key_id: str) -> str:
    return f"acs:kms:{REGION}:{account}:key/{key_id}"


class Tea:
    """The official Tea SDK (default ACS3 signing) as one access key: tea("Encrypt", KeyId=...) -> body."""

    def __init__(self, srv: support.Server, ak: str | None = None, secret: str | None = None) -> None:
        self.client = support.tea_client(srv, ak=ak, secret=secret)

    def __call__(self, action: str, **params) -> dict:
        from alibabacloud_kms20160120 import models
        from alibabacloud_tea_openapi.exceptions import ClientException

        model = getattr(models, f"{action}Request", None)
        args = (model().from_map(params),) if model is not None else ()  # DescribeRegions takes no request
        try:
            response = getattr(self.client, snake(action))(*args)
        except ClientException as exc:
            raise ApiError(exc.code, exc.status_code, exc.data.get("Message", ""), exc.data,
                           exc.access_denied_detail) from None
        assert response.status_code == 200
        return response.body.to_map()

    def fails(self, action: str, **params) -> ApiError:
        try:
            body = self(action, **params)
        except ApiError as exc:
            return exc
        raise AssertionError(f"{action} unexpectedly succeeded: {body}")


def handler_call(action: str, params: dict | None = None, ak: str = support.TEST_AK,
                 secret: str = support.TEST_SECRET, **sign) -> tuple[int, dict, str]:
    """Invoke the action's FC handler in process with an RPC v1 request signed by any access key:
    (HTTP status, body, the request's Signature)."""
    import importlib

    from alikms.shared import registry

    query = support.sign_v1_params(action, {k: str(v) for k, v in (params or {}).items()}, ak, secret, **sign)
    event = support.gateway_event(action, query)
    result = importlib.import_module(registry.action(action).module).handler(event, None)
    return result["statusCode"], json.loads(result["body"]), query["Signature"]
