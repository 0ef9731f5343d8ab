"""The reward server: FastAPI app over a micro-batched RE-Reward model (paper appendix C.5).

`POST /v1/score` validates each item (limits from `ServeConfig`), decodes and budget-fits its
images (small requests on the event loop, larger ones in a thread), queues the request for the
`MicroBatcher` and answers with one result per item, in order. `GET /healthz` and `GET /v1/info` report liveness, model and limits.
`main` is `ie-eval serve-rm --ckpt DIR [--host] [--port] [--config FILE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from ie_eval import __version__
from ie_eval.data.collate import CollateError
from ie_eval.data.records import EditRecord
from ie_eval.serve.admission import (
    DecodeBudget,
    EditInput,
    check_request_limits,
    decode_records,
    edit_inputs,
    open_request_images,
    parse_score_request,
    request_pixels,
)
from ie_eval.serve.base import RewardScores
from ie_eval.serve.batching import BatcherStoppedError, MicroBatcher, QueueFullError
from ie_eval.serve.config import ServeConfig
from ie_eval.serve.errors import (
    BearerTokenMiddleware,
    BodyLimitMiddleware,
    ServiceUnavailable,
    install_error_handlers,
)
from ie_eval.serve.images import InputError
from ie_eval.serve.schemas import (
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
)
from ie_eval.serve.scoring import RewardScoring

log = logging.getLogger(__name__)

_REFUSALS = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (401, "Authentication required: send `Authorization: Bearer <token>` (servers started with --api-key-file)."),
        (403, "An image path resolves outside image_root, or path inputs are disabled."),
        (404, "An image path names no readable file under image_root."),
        (413, "The body, an image or the request's images in total are over a byte or pixel limit."),
        (415, "An image is in a format outside image_formats (PNG, JPEG, WebP by default)."),
        (422, "A field is missing, has the wrong type, or breaks a limit; `field` names it."),
        (503, "Queue full, request timed out, or not serving; retry after Retry-After seconds."),
    )
}


def create_app(scoring: RewardScoring, config: ServeConfig, api_key: str | None = None) -> FastAPI:
    """The ASGI app; the batcher starts and stops with the app's lifespan. With `api_key`, every
    request except GET /healthz must send `Authorization: Bearer <api_key>`."""
    batcher = MicroBatcher(
        scoring.score_records, config.max_batch_size, config.max_wait_ms, config.max_queue,
        worker_init=partial(set_thread_torch_threads, config.torch_threads),
    )
    decode_budget = DecodeBudget(config.max_decode_pixels_in_flight)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="ie-eval reward server",
        version=__version__,
        description="RE-Reward as a service: scores critiques of image edits (logicality, accuracy, "
        "usefulness, weighted reward). Limits: GET /v1/info.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.scoring, app.state.config = batcher, scoring, config
    app.state.decode_budget = decode_budget
    model_name = scoring.info()["model"]
    install_error_handlers(app, config.retry_after_s)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    if api_key is not None:
        app.add_middleware(BearerTokenMiddleware, token=api_key, open_paths=("/healthz",))
    document_limits(app, config)

    @app.get("/healthz", response_model=HealthResponse, summary="Liveness, model health and queue depth.",
             responses={503: _REFUSALS[503]})
    async def healthz() -> HealthResponse:
        if not batcher.running:
            raise ServiceUnavailable("the reward model worker is not running")
        if batcher.failed_in_a_row >= config.unhealthy_after_failures:
            raise ServiceUnavailable(
                f"model: the last {batcher.failed_in_a_row} batches failed (unhealthy_after_failures="
                f"{config.unhealthy_after_failures}); last error: {batcher.last_error}", field="model",
            )
        return HealthResponse(
            status="ok", queued_requests=batcher.queue.qsize(), batches=batcher.batches_run,
            items_scored=batcher.items_scored,
        )

    @app.get("/v1/info", response_model=InfoResponse, summary="Served model, reward weights and request limits.")
    async def info() -> InfoResponse:
        return InfoResponse(**scoring.info(), version=__version__, limits=config.limits())

    @app.post("/v1/score", response_model=ScoreResponse, summary="Score critiques; results in request order.",
              responses=_REFUSALS, openapi_extra=SCORE_REQUEST_BODY)
    async def score(request: Request) -> ScoreResponse:
        answer = asyncio.ensure_future(score_request(request, batcher, decode_budget, scoring, config))
        try:  # one deadline for reading, decoding, queueing and scoring
            results = await asyncio.wait_for(answer, config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ServiceUnavailable(
                f"timeout: not answered within request_timeout_s={config.request_timeout_s}; server overloaded",
                field="timeout",
            ) from None
        return ScoreResponse(results=[ScoreResult(**r.as_dict()) for r in results], model=model_name)

    return app


async def score_request(
    request: Request, batcher: MicroBatcher, decode_budget: DecodeBudget, scoring: RewardScoring, config: ServeConfig,
) -> list[RewardScores]:
    """Parse and check the request, decode its images within the budgets, queue it, await its scores."""
    items = edit_inputs(parse_score_request(await request.body(), config))
    check_request_limits(items, config)
    with batcher.admitting():
        inline = decode_inline(items, config)
        if inline:
            opened = open_request_images(items, config)
        else:
            opened = await run_in_threadpool(open_request_images, items, config)
        async with decode_budget.reserve(request_pixels(opened)):
            if inline:
                records = decode_records(items, opened, scoring)
            else:
                records = await run_in_threadpool(decode_records, items, opened, scoring)
        future = submit(batcher, records)
    try:
        return await wait_for_scores(future)
    finally:
        future.cancel()  # a request that timed out is skipped if the batcher has not started it


def document_limits(app: FastAPI, config: ServeConfig) -> None:
    """Write the request body schema and this server's item-count and text-length limits into its
    OpenAPI schema (the handler parses the body itself, to count items before validating them)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = generate()["components"].setdefault("schemas", {})  # generate() caches into app.openapi_schema
            request_schema = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(request_schema.pop("$defs", {}))
            schemas["ScoreRequest"] = request_schema
            schemas["ScoreRequest"]["properties"]["items"]["maxItems"] = config.max_items_per_request
            item = schemas["ScoreItem"]["properties"]
            item["critique"]["maxLength"] = config.max_critique_chars
            item["instruction"]["maxLength"] = config.max_instruction_chars
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


SCORE_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
    }
}


def set_thread_torch_threads(threads: int | None) -> None:
    """Intra-op threads for the calling thread only (OpenMP's setting is per thread); None keeps torch's."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def decode_inline(items: list[EditInput], config: ServeConfig) -> bool:
    """Decode on the event loop (cheaper than a thread hop) only small base64-only requests:
    at most inline_decode_max_bytes of base64 (so at most about as many pixels: headers are
    checked against inline_decode_max_pixels after opening)."""
    images = [image for item in items for image in item.images]
    if any(image.base64 is None or image.entry is not None for image in images):
        return False  # file reads and process_vision_info (first import: seconds) belong off the loop
    encoded = [image.base64 for image in images]
    return sum(len(text) for text in encoded) <= config.inline_decode_max_bytes


def submit(batcher: MicroBatcher, records: list[EditRecord]) -> asyncio.Future:
    """Queue the records; a full queue or a stopped batcher becomes 503 + Retry-After."""
    try:
        return batcher.submit(records)
    except QueueFullError as err:
        raise ServiceUnavailable(f"queue: {err}; retry later", field="queue") from None
    except BatcherStoppedError as err:
        raise ServiceUnavailable(str(err)) from None


async def wait_for_scores(future: asyncio.Future) -> list[RewardScores]:
    """Await a queued request's scores; shutdown becomes 503, a collate error 422."""
    try:
        return await asyncio.shield(future)
    except BatcherStoppedError as err:
        raise ServiceUnavailable(str(err)) from None
    except CollateError as err:  # e.g. a prompt over max_length; the message starts "items.<i>: "
        message = str(err)
        field = message.split(":", 1)[0] if message.startswith("items.") else "items"
        raise InputError(field, message) from None
