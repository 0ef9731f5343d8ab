"""`ie-eval` entry point: tool commands by name, everything else goes to LightningCLI.

Every driver lives in `ie_eval/commands/` and is imported only when asked for, so
`ie-eval data synth` does not pay for importing transformers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# command -> "module:function"; the function takes the remaining argv and returns an exit code.
TOOL_COMMANDS: dict[str, str] = {
    "data": "ie_eval.commands.data:main",
    "pretrain": "ie_eval.commands.pretrain:main",
    "demo": "ie_eval.commands.demo:main",
    "pairwise": "ie_eval.commands.pairwise:main",
    "score": "ie_eval.commands.score:main",
    "critique": "ie_eval.commands.critique:main",
    "infer": "ie_eval.commands.infer:main",
    "calibrate": "ie_eval.commands.calibrate:main",
    "serve-rm": "ie_eval.commands.serve_rm:main",
    "grpo": "ie_eval.commands.grpo:main",
    "gcpo": "ie_eval.commands.grpo:gcpo_main",
    "ablate": "ie_eval.commands.ablate:main",
    "eval": "ie_eval.commands.eval:main",
    "report": "ie_eval.commands.report:main",
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
        from ie_eval.commands.fit import build_cli

        build_cli(args)
        return 0
    print(f"ie-eval: unknown command '{args[0]}'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
