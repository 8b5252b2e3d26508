"""One official SDK behind one call, for the SDK tests of every area.

`Sdk(kind, server)("Encrypt", KeyId=..., ...)` returns the response body as a dict or raises
`ApiError(code, status, message)`. `kind` is "tea" (ACS3 signatures), "tea_v2" (Tea with
signature_algorithm='v2', RPC v1) or "classic" (aliyun-python-sdk-core). Parameters are given as the
Tea models take them (ints, bools, dicts); the classic SDK gets them as strings and JSON.
"""

from __future__ import annotations

import importlib
import json

import pytest

from alikms.shared.registry import snake
from tests import support

KINDS = ("tea", "tea_v2", "classic")


class ApiError(Exception):
    def __init__(self, code: str, status: int, message: str, cause: Exception | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code, self.status, self.message, self.exc = code, status, message, cause


class Sdk:
    def __init__(self, kind: str, server: support.Server, secret: str | None = None, ak: str | None = None):
        self.kind, self.server = kind, server
        if kind == "classic":
            self.client = support.classic_client(server, secret=secret, ak=ak)
        else:
            self.client = support.tea_client(server, v2=kind == "tea_v2", secret=secret, ak=ak)

    def __call__(self, action: str, **params) -> dict:
        return self._classic(action, params) if self.kind == "classic" else self._tea(action, params)

    def fails(self, code: str, status: int, action: str, **params) -> ApiError:
        """The call fails with this code and HTTP status; returns the error."""
        with pytest.raises(ApiError) as info:
            self(action, **params)
        assert (info.value.code, info.value.status) == (code, status), info.value
        return info.value

    def _tea(self, action: str, params: dict) -> dict:
        from alibabacloud_kms20160120 import models
        from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

        model = getattr(models, f"{action}Request", None)
        method = getattr(self.client, snake(action))
        try:
            response = method(model().from_map(params)) if model else method()
        except (ClientException, ServerException) as exc:
            assert exc.request_id and exc.data["Code"] == exc.code
            raise ApiError(exc.code, exc.status_code, exc.message, exc) from None
        assert response.status_code == 200
        body = response.body.to_map()
        assert body["RequestId"]
        return body

    def _classic(self, action: str, params: dict) -> dict:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        module = importlib.import_module(f"aliyunsdkkms.request.v20160120.{action}Request")
        request = getattr(module, f"{action}Request")()
        for name, value in params.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            getattr(request, f"set_{name}")(str(value))
        try:
            body = support.classic_do(self.server, self.client, request)
        except ServerException as exc:
            assert exc.get_request_id()
            raise ApiError(exc.get_error_code(), exc.get_http_status(), exc.get_error_msg(), exc) from None
        assert body["RequestId"]
        return body
