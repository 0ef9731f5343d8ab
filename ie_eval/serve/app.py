"""The reward server: FastAPI app over a micro-batched RE-Reward model (paper appendix C.5).

`POST /v1/score` validates each item (limits from `ServeConfig`), decodes and budget-fits its
images (small requests on the event loop, larger ones in a thread), queues the request for the
`MicroBatcher` and answers with one result per item, in order. `GET /healthz` and `GET /v1/info` report liveness, model and limits.
`main` is `ie-eval serve-rm --ckpt DIR [--host] [--port] [--config FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from functools import partial

from fastapi import FastAPI
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ie_eval import __version__
from ie_eval.data.collate import CollateError
from ie_eval.data.records import EditRecord
from ie_eval.serve.base import RewardItem, RewardScores
from ie_eval.serve.batching import BatcherStoppedError, MicroBatcher, QueueFullError
from ie_eval.serve.config import ServeConfig, load_serve_config
from ie_eval.serve.errors import BodyLimitMiddleware, ServiceUnavailable, install_error_handlers
from ie_eval.serve.images import InputError, decode_base64_image, load_image_path, peek_pixels
from ie_eval.serve.schemas import (
    ErrorResponse,
    HealthResponse,
    ImageInput,
    InfoResponse,
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
)
from ie_eval.serve.scoring import RewardScoring

log = logging.getLogger(__name__)

_REFUSALS = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (403, "An image path resolves outside image_root, or path inputs are disabled."),
        (404, "An image path names no readable file under image_root."),
        (413, "The body or an image is over its byte or pixel limit."),
        (422, "A field is missing, has the wrong type, or breaks a limit; `field` names it."),
        (503, "Queue full, request timed out, or not serving; retry after Retry-After seconds."),
    )
}


def create_app(scoring: RewardScoring, config: ServeConfig) -> FastAPI:
    """The ASGI app; the batcher starts and stops with the app's lifespan."""
    batcher = MicroBatcher(
        scoring.score_records, config.max_batch_size, config.max_wait_ms, config.max_queue,
        worker_init=partial(set_thread_torch_threads, config.torch_threads),
    )

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
    model_name = scoring.info()["model"]
    install_error_handlers(app, config.retry_after_s)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    document_limits(app, config)

    @app.get("/healthz", response_model=HealthResponse, summary="Liveness and queue depth.",
             responses={503: _REFUSALS[503]})
    async def healthz() -> HealthResponse:
        if not batcher.running:
            raise ServiceUnavailable("the reward model worker is not running")
        return HealthResponse(
            status="ok", queued_requests=batcher.queue.qsize(), batches=batcher.batches_run,
            items_scored=batcher.items_scored,
        )

    @app.get("/v1/info", response_model=InfoResponse, summary="Served model, reward weights and request limits.")
    async def info() -> InfoResponse:
        return InfoResponse(**scoring.info(), version=__version__, limits=config.limits())

    @app.post("/v1/score", response_model=ScoreResponse, summary="Score critiques; results in request order.",
              responses=_REFUSALS)
    async def score(request: ScoreRequest) -> ScoreResponse:
        check_request_limits(request, config)
        with batcher.admitting():
            if decode_inline(request, config):
                records = prepare_records(request.items, scoring, config)
            else:
                records = await run_in_threadpool(prepare_records, request.items, scoring, config)
            future = submit(batcher, records)
        results = await wait_for_scores(future, config)
        return ScoreResponse(results=[ScoreResult(**r.as_dict()) for r in results], model=model_name)

    return app


def document_limits(app: FastAPI, config: ServeConfig) -> None:
    """Write this server's item-count and text-length limits into its OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = generate()["components"]["schemas"]  # generate() caches into app.openapi_schema
            schemas["ScoreRequest"]["properties"]["items"]["maxItems"] = config.max_items_per_request
            item = schemas["ScoreItem"]["properties"]
            item["critique"]["maxLength"] = config.max_critique_chars
            item["instruction"]["maxLength"] = config.max_instruction_chars
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def set_thread_torch_threads(threads: int | None) -> None:
    """Intra-op threads for the calling thread only (OpenMP's setting is per thread); None keeps torch's."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def check_request_limits(request: ScoreRequest, config: ServeConfig) -> None:
    """Item count and text lengths; the first violation raises InputError naming field and limit."""
    if len(request.items) > config.max_items_per_request:
        raise InputError(
            "items", f"{len(request.items)} items > max_items_per_request={config.max_items_per_request}"
        )
    for index, item in enumerate(request.items):
        for name, limit_name in (("instruction", "max_instruction_chars"), ("critique", "max_critique_chars")):
            text, limit = getattr(item, name), getattr(config, limit_name)
            if len(text) > limit:
                raise InputError(f"items.{index}.{name}", f"{len(text)} characters > {limit_name}={limit}")


def decode_inline(request: ScoreRequest, config: ServeConfig) -> bool:
    """Decode on the event loop (cheaper than a thread hop) only small base64-only requests:
    at most inline_decode_max_bytes of base64 and inline_decode_max_pixels of images in all."""
    encoded = [image.base64 for item in request.items for image in (item.source_image, item.edited_image)]
    if any(text is None for text in encoded):
        return False  # file reads belong off the loop
    if sum(len(text) for text in encoded) > config.inline_decode_max_bytes:
        return False
    return sum(peek_pixels(text) for text in encoded) <= config.inline_decode_max_pixels


def prepare_records(items: Sequence[ScoreItem], scoring: RewardScoring, config: ServeConfig) -> list[EditRecord]:
    """Decode, check and budget-fit every item's images (runs in a worker thread, not the loop)."""
    records = []
    for index, item in enumerate(items):
        where = f"items.{index}"
        source = fitted_image(item.source_image, f"{where}.source_image", scoring, config)
        edited = fitted_image(item.edited_image, f"{where}.edited_image", scoring, config)
        try:
            records.append(scoring.prepare_record(RewardItem(source, edited, item.instruction, item.critique), where))
        except CollateError as err:
            message = str(err).removeprefix(f"{where}: ")
            name = "instruction" if message.startswith("instruction") else "critique"
            raise InputError(f"{where}.{name}", message) from None
    return records


def fitted_image(image: ImageInput, field: str, scoring: RewardScoring, config: ServeConfig) -> Image.Image:
    """Decode a request image and resize it to the model's pixel budget (unusable shapes: 422)."""
    decoded = load_image(image, field, config)
    try:
        return scoring.fit(decoded, field)
    except CollateError as err:
        raise InputError(field, f"unusable image size: {str(err).removeprefix(field + ': ')}") from None


def load_image(image: ImageInput, field: str, config: ServeConfig) -> Image.Image:
    """A request image by whichever way it was given (schemas.ImageInput guarantees exactly one)."""
    if image.base64 is not None:
        return decode_base64_image(image.base64, f"{field}.base64", config)
    return load_image_path(image.path or "", f"{field}.path", config)


def submit(batcher: MicroBatcher, records: list[EditRecord]) -> asyncio.Future:
    """Queue the records; a full queue or a stopped batcher becomes 503 + Retry-After."""
    try:
        return batcher.submit(records)
    except QueueFullError as err:
        raise ServiceUnavailable(f"queue: {err}; retry later", field="queue") from None
    except BatcherStoppedError as err:
        raise ServiceUnavailable(str(err)) from None


async def wait_for_scores(future: asyncio.Future, config: ServeConfig) -> list[RewardScores]:
    """Await a queued request's scores; timeout or shutdown become 503, a collate error 422."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), config.request_timeout_s)
    except asyncio.TimeoutError:
        future.cancel()  # the batcher skips it if it has not started yet
        raise ServiceUnavailable(
            f"timeout: not scored within request_timeout_s={config.request_timeout_s}; server overloaded",
            field="timeout",
        ) from None
    except BatcherStoppedError as err:
        raise ServiceUnavailable(str(err)) from None
    except CollateError as err:  # e.g. a prompt over max_length; the message starts "items.<i>: "
        message = str(err)
        field = message.split(":", 1)[0] if message.startswith("items.") else "items"
        raise InputError(field, message) from None


# --- command line ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ie-eval serve-rm", description="Serve a RewardModel over HTTP.")
    parser.add_argument("--ckpt", required=True, help="RewardModel.save_pretrained directory")
    parser.add_argument("--config", help="YAML/JSON file of ServeConfig fields (limits, batching, image_root)")
    parser.add_argument("--host", help="listen address (ServeConfig default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (ServeConfig default: 8000)")
    parser.add_argument("--image-root", dest="image_root", help="folder image paths must resolve inside")
    parser.add_argument("--max-batch-size", dest="max_batch_size", type=int, help="items per forward; 1 = no batching")
    parser.add_argument("--device", help="torch device, e.g. cuda:0")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    return parser


def build_server_app(ckpt: str, config: ServeConfig) -> FastAPI:
    """Load the checkpoint and wrap it in the app (what `main` serves)."""
    from ie_eval.models.reward_model import RewardModel

    model = RewardModel.from_pretrained(ckpt, device=config.device)
    scoring = RewardScoring(
        model, batch_size=config.max_batch_size, reward_weights=config.reward_weights,
        max_pixels=config.max_pixels, max_length=config.max_length,
    )
    return create_app(scoring, config)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("host", "port", "image_root", "max_batch_size", "device")}
    config = load_serve_config(args.config, overrides)
    if not is_loopback(config.host):
        log.warning("serving on %s: reachable beyond this machine", config.host)
    app = build_server_app(args.ckpt, config)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
