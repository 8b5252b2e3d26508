"""Turn an action's `run(request, ctx)` into a Function Compute handler, and a job's into a timer handler.

The wrapper is the single place that decodes the event, authenticates, validates the request model,
builds the `Context`, serialises the response with its `RequestId`, and turns every exception into
the documented error body. Anything unexpected becomes `InternalFailure` with a log line that names
the request id, the exception type and its traceback's frames (never parameters, which may hold
plaintext, nor the exception's message or the frames' variables: shared/log.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from . import accounts, audit, auth, authz, clock, errors, log, ops, registry, telemetry, wire
from .config import Config, get_config
from .context import Context
from .models import ApiModel, Response, parse_request
from .store import get_store

# The catch-all's log message: the test suite fails any test during which it fires (tests/conftest.py).
CATCH_ALL = "request %s failed with %s"


def _request_id(context: Any) -> str:
    rid = getattr(context, "request_id", None)
    return str(rid) if rid else str(uuid.uuid4())


def api_handler(module: str, request_model: type[ApiModel], run: Callable[[Any, Context], Response]):
    """Build `handler(event, context)` for the action registered for `module`."""
    spec = registry.action_for_module(module)
    dry_run_capable = "dry_run" in request_model.model_fields

    def handler(event: bytes, context: Any = None) -> dict:
        """The FC entry point: the event as JSON bytes, FC's context object."""
        request_id = _request_id(context)
        try:
            return serve(event, request_id)
        except errors.KmsError as exc:  # the call's audit record could not be written (fail-closed)
            return wire.error_response(exc, request_id, "")

    def serve(event: bytes | str | dict | wire.HttpRequest, request_id: str) -> dict:
        """One call. The local runner passes the `HttpRequest` it parsed, sparing a JSON round trip."""
        host = "kms.local"
        cfg: Config | None = None
        caller: auth.Caller | None = None
        req: wire.HttpRequest | None = None
        params: dict[str, str] = {}
        found: Sequence[tuple[str, str]] = ()
        code, status, sink = "OK", 200, telemetry.sink
        started = time.perf_counter() if sink.records else 0.0
        try:
            cfg = get_config()
            host = f"kms.{cfg.region}.aliyuncs.com"
            audit.admit(cfg)
            req = event if isinstance(event, wire.HttpRequest) else wire.decode_event(event)
            host = req.headers.get("host", host)
            query, params = wire.parse_params(req, cfg.max_body)
            if wire.action_name(req, params) != spec.name:
                raise errors.InvalidAction()
            now = clock.now()
            store = get_store()
            caller = auth.authenticate(req, query, params, cfg, store, now)
            if not spec.before_open:
                accounts.require_open(store, cfg, caller.account_id)
            ctx = Context(request_id, caller.account_id, cfg.region, caller.access_key_id, caller.source_ip,
                          now, store, cfg, spec)
            request = None
            try:
                # The one parse: the action, the policy check and the audit record all take the
                # resources from this validated request (authz.py).
                request = parse_request(request_model, params)
                # Aliases resolve for every caller, so that the audit record names the key the
                # action used whoever called; a secret's key is looked up only for a policy to check.
                resolved: dict[str, str] = {}
                ctx.read = {} if caller.policies is not None and spec.secret_key else None
                found = authz.resources(spec, request, caller.account_id, cfg.region, store, resolved,
                                        secret_key=caller.policies is not None, read=ctx.read)
                authz.check(caller, found)
                request = authz.pin(spec, request, resolved)
                body = run(request, ctx).to_wire()
            except (errors.MissingParameter, errors.InvalidParameter) as exc:
                raise errors.ValidationError(exc.detail) if _dry_run(request, params) else exc from None
            except errors.ForbiddenNoPermission as exc:
                raise errors.AccessDeniedError() if _dry_run(request, params) else exc from None
            if dry_run_capable and request.dry_run:
                # DryRun always fails (kms-api.md §1.5). Every DryRun-capable action is read-only, so
                # the call ran for real, with every state and ciphertext check, and its result is dropped.
                raise errors.DryRunOperationError()
            body["RequestId"] = request_id
            return wire.response(200, body, request_id)
        except errors.KmsError as exc:
            code, status = exc.code, exc.status
            return wire.error_response(exc, request_id, host)
        except Exception as exc:  # noqa: BLE001 - the one central catch
            code, status = errors.InternalFailure.code, 500
            log.get("kms.request").error(CATCH_ALL, request_id, type(exc).__name__, exc_info=exc, extra={
                "event": "request.internal_failure", "request_id": request_id, "action": spec.name})
            return wire.error_response(errors.InternalFailure(), request_id, host)
        finally:
            if sink.records:
                sink.call(spec.name, code, time.perf_counter() - started)
            if cfg is not None:
                account = caller.account_id if caller else ""
                ak = caller.access_key_id if caller else auth.claimed_access_key(req, params) if req else ""
                audit.record(cfg, audit.entry(request_id, spec.name, account, ak, req.source_ip if req else "",
                                              [arn for _, arn in found], code, status))

    def _dry_run(request: Any, params: dict[str, str]) -> bool:
        """Whether a refused call asked for DryRun: from the request if it parsed, else from the raw
        parameter (only to choose which error reports the refusal)."""
        if not dry_run_capable:
            return False
        if request is not None:
            return request.dry_run
        return params.get("DryRun", "").strip().lower() == "true"

    handler.serve = serve  # type: ignore[attr-defined]
    handler.action = spec  # type: ignore[attr-defined]
    handler.run = run  # type: ignore[attr-defined]
    handler.request_model = request_model  # type: ignore[attr-defined]
    return handler


def trigger_time(event: dict) -> float:
    """Epoch seconds of the timer event's `triggerTime` (`2023-12-26T07:49:00Z`)."""
    value = str(event.get("triggerTime", ""))
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def timer_handler(module: str, run: Callable[[Context, dict], dict]):
    """Build `handler(event, context)` for a timer job. `run(ctx, payload)` returns a JSON summary."""
    spec = registry.job_for_module(module)

    def handler(event: bytes, context: Any = None) -> dict:
        ev = json.loads(event) if not isinstance(event, dict) else event
        cfg = get_config()
        ctx = Context(_request_id(context), "", cfg.region, "", "", trigger_time(ev), get_store(), cfg)
        payload = json.loads(ev.get("payload") or "{}")
        started = time.perf_counter()
        try:
            result = run(ctx, payload)
        except Exception as exc:
            ops.timer_finished(ctx, spec.name, time.perf_counter() - started, None, exc)
            raise
        ops.timer_finished(ctx, spec.name, time.perf_counter() - started, result, None)
        return result

    handler.job = spec  # type: ignore[attr-defined]
    handler.run = run  # type: ignore[attr-defined]
    return handler
