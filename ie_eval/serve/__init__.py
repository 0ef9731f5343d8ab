"""Reward serving: batched HTTP server, client and in-process scorer (docs/serving.md)."""
