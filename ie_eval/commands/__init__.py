"""One driver per `ie-eval` subcommand; `ie_eval/cli.py` dispatches to them by name."""
