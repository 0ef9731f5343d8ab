"""`ie-eval serve-rm --ckpt DIR [--config FILE]`: serve a RewardModel over HTTP (the app: `ie_eval/serve/app.py`)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from ie_eval.serve.app import create_app
from ie_eval.serve.config import ServeConfig, ServeConfigError, load_serve_config
from ie_eval.serve.scoring import RewardScoring

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ie-eval serve-rm", description="Serve a RewardModel over HTTP.")
    parser.add_argument("--ckpt", required=True, help="RewardModel.save_pretrained directory")
    parser.add_argument("--config", help="YAML/JSON file of ServeConfig fields (limits, batching, image_root)")
    parser.add_argument("--host", help="listen address (ServeConfig default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (ServeConfig default: 8000)")
    parser.add_argument("--image-root", dest="image_root", help="folder image paths must resolve inside")
    parser.add_argument("--max-batch-size", dest="max_batch_size", type=int, help="items per forward; 1 = no batching")
    parser.add_argument("--device", help="torch device, e.g. cuda:0")
    parser.add_argument("--api-key-file", dest="api_key_file",
                        help="file holding a bearer token clients must send; required off loopback")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    return parser


def build_server_app(ckpt: str, config: ServeConfig) -> FastAPI:
    """Load the checkpoint and wrap it in the app (what `main` serves)."""
    from ie_eval.models.reward_model import RewardModel

    api_key = read_api_key(config)
    model = RewardModel.from_pretrained(ckpt, device=config.device)
    scoring = RewardScoring(
        model, batch_size=config.max_batch_size, reward_weights=config.reward_weights,
        max_pixels=config.max_pixels, max_length=config.max_length,
        **({} if config.share_prefixes is None else {"share_prefixes": config.share_prefixes}),
    )
    return create_app(scoring, config, api_key=api_key)


def read_api_key(config: ServeConfig) -> str | None:
    """The bearer token from `config.api_key_file`; binding beyond loopback without one is refused."""
    if config.api_key_file is None:
        if not is_loopback(config.host):
            raise ServeConfigError(
                f"serving on {config.host} (not loopback) needs --api-key-file FILE: anyone on the network could "
                "otherwise use the reward model"
            )
        return None
    try:
        token = Path(config.api_key_file).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ServeConfigError(f"api_key_file {config.api_key_file}: cannot read: {err.strerror}") from None
    if len(token) < 16:
        raise ServeConfigError(f"api_key_file {config.api_key_file}: the token must be at least 16 characters")
    return token


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
    overrides = {k: getattr(args, k) for k in ("host", "port", "image_root", "max_batch_size", "device", "api_key_file")}
    try:
        config = load_serve_config(args.config, overrides)
        app = build_server_app(args.ckpt, config)
    except ServeConfigError as err:
        print(f"ie-eval serve-rm: {err}", file=sys.stderr)
        return 2
    if not is_loopback(config.host):
        log.warning("serving on %s: reachable beyond this machine (bearer token required)", config.host)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level, access_log=False,
                limit_concurrency=config.max_connections, timeout_keep_alive=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
