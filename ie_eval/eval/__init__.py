"""Evaluation suite: scorers behind one interface, benchmark views, `ie-eval eval` and `ie-eval report`."""
