"""`ie-eval grpo`: GRPO as in real use, with RE-Reward served over HTTP on 127.0.0.1; `ie-eval gcpo`: GCPO.

    ie-eval grpo --config configs/grpo/tiny.yaml --serve-rm runs/rm-tiny/export [LightningCLI overrides]
    ie-eval gcpo --config configs/gcpo/tiny.yaml [LightningCLI overrides]

With --serve-rm, starts `ie-eval serve-rm` as a subprocess on a free port: one per node, on the node's
local rank 0, the node's other ranks using its URL (`ie_eval/serve/node.py`), on the node's last GPU
when there is one (--serve-rm-device, --serve-rm-batch-size). A `--model.init_args.reward_source.url`
on the command line skips it; without --serve-rm the config's URL or checkpoint is used. Then, on the
same held-out prompts: validates the SFT starting point, trains, validates the result. Prints the
start/end table and writes it to `<default_root_dir>/grpo_results.json`. The server is stopped however the run ends. A run directory
with an earlier run's checkpoints or export is refused unless `--overwrite` or `--ckpt-path` (resume).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from ie_eval.serve.node import free_port, node_reward_server, served_reward_model  # noqa: F401 (re-exported)

URL_FLAG = "--model.init_args.reward_source.url"

REPORTED = (
    "reward_mean", "text_pair_accuracy", "head_pair_accuracy", "response_length", "format_rate", "head_mean_srcc",
    "text_mean_srcc", "text_overall_srcc", "factuality", "blank_factuality", "unverifiable_claims",
)


def metrics_of(results: list[dict], stage: str = "val") -> dict[str, float]:
    merged: dict[str, float] = {}
    for block in results:
        merged.update({k.removeprefix(f"{stage}/"): float(v) for k, v in block.items() if k.startswith(f"{stage}/")})
    return merged


def comparison_table(start: dict[str, float], end: dict[str, float]) -> str:
    lines = ["| held-out prompts | SFT start | after GRPO | change |", "|---|---|---|---|"]
    components = sorted(k for k in start if k.startswith("reward_") and k.endswith("_mean") and k != "reward_mean")
    for key in (REPORTED[0], *components, *REPORTED[1:]):
        if key in start and key in end:
            lines.append(f"| {key} | {start[key]:.4f} | {end[key]:.4f} | {end[key] - start[key]:+.4f} |")
    return "\n".join(lines)


def run_grpo(cli_args: Sequence[str], ckpt_path: str | None = None) -> dict:
    """Validate (start) -> fit -> validate (end) under one LightningCLI config; returns the comparison."""
    from ie_eval.commands.fit import build_cli

    cli = build_cli(list(cli_args), run=False, resume=ckpt_path is not None)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    started = time.perf_counter()
    start = metrics_of(trainer.validate(model, datamodule=data, verbose=False))
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    end = metrics_of(trainer.validate(model, datamodule=data, verbose=False))
    result = {
        "start": start, "end": end, "steps": int(trainer.global_step), "wall_s": round(time.perf_counter() - started, 1),
        "reward_improved": end.get("reward_mean", float("-inf")) > start.get("reward_mean", float("inf")),
    }
    out = Path(trainer.default_root_dir) / "grpo_results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(comparison_table(start, end))
    print(f"{result['steps']} GRPO steps in {result['wall_s']} s; results in {out}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval grpo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-rm", dest="serve_rm", help="RE-Reward export to serve over HTTP for this run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--serve-rm-device", dest="serve_rm_device", default="auto",
                        help="the server's device: auto (the node's last GPU, else cpu), cpu, cuda, cuda:N")
    parser.add_argument("--serve-rm-batch-size", dest="serve_rm_batch_size", type=int,
                        help="the server's max items per forward (serve-rm --max-batch-size; default ServeConfig's)")
    parser.add_argument("--serve-rm-config", dest="serve_rm_config", help="ServeConfig file for the server")
    parser.add_argument("--serve-rm-timeout", dest="serve_rm_timeout", type=float, default=600.0,
                        help="seconds to wait for the server to load (and, off local rank 0, to be published)")
    parser.add_argument("--serve-rm-rendezvous", dest="serve_rm_rendezvous",
                        help="folder where local rank 0 publishes the URL (default: the node's temp folder)")
    parser.add_argument("--ckpt-path", dest="ckpt_path", help="resume fit from this Lightning checkpoint (e.g. last.ckpt)")
    known, rest = parser.parse_known_args(argv)
    if not known.serve_rm or names_url(rest):
        if known.serve_rm:
            print(f"ie-eval grpo: {URL_FLAG} given, so no reward server is started for --serve-rm")
        run_grpo(rest, known.ckpt_path)
        return 0
    with node_reward_server(known.serve_rm, known.host, device=known.serve_rm_device,
                            max_batch_size=known.serve_rm_batch_size, config=known.serve_rm_config,
                            rendezvous_dir=known.serve_rm_rendezvous, timeout_s=known.serve_rm_timeout) as url:
        run_grpo([*rest, URL_FLAG, url], known.ckpt_path)
    return 0


def names_url(args: Sequence[str]) -> bool:
    """Whether LightningCLI `args` set the reward server URL (`--flag value` or `--flag=value`)."""
    return any(a == URL_FLAG or a.startswith(f"{URL_FLAG}=") for a in args)


GCPO_CONFIG = "configs/gcpo/tiny.yaml"


def gcpo_main(argv: Sequence[str] | None = None) -> int:
    """`ie-eval gcpo [--config ...]`: GCPO (Edit-R1) through the same driver; its config needs no reward server."""
    args = list(argv or [])
    if "--config" not in args and not any(a.startswith("--config=") for a in args):
        args = ["--config", GCPO_CONFIG, *args]
    return main(args)
