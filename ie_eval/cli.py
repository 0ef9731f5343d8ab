"""`ie-eval` entry point: tool commands by name, everything else goes to LightningCLI.

Each tool command lives next to the code it drives and is imported only when asked for,
so `ie-eval data synth` does not pay for importing transformers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# command -> "module:function"; the function takes the remaining argv and returns an exit code.
TOOL_COMMANDS: dict[str, str] = {
    "data": "ie_eval.data.cli:main",
    "pretrain": "ie_eval.commands.pretrain:main",
    "demo": "ie_eval.lit.demo:main",
    "score": "ie_eval.score:main",
    "critique": "ie_eval.critique:main",
    "serve-rm": "ie_eval.serve.app:main",
    "grpo": "ie_eval.rl.launch:main",
    "ablate": "ie_eval.lit.ablate:main",
    "eval": "ie_eval.eval.cli:main",
    "report": "ie_eval.eval.report:main",
}

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _resolve(target: str) -> Callable[[Sequence[str]], int | None]:
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        names = ", ".join([*LIGHTNING_SUBCOMMANDS, *TOOL_COMMANDS])
        print(f"usage: ie-eval {{{names}}} ...")
        return 0
    if args[0] in TOOL_COMMANDS:
        return int(_resolve(TOOL_COMMANDS[args[0]])(args[1:]) or 0)
    if args[0] in LIGHTNING_SUBCOMMANDS:
        from ie_eval.lit.cli import run_lightning_cli

        run_lightning_cli(args)
        return 0
    print(f"ie-eval: unknown command '{args[0]}'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
