"""Procedural edit-evaluation benchmark with known truth: `generate_benchmark(out_dir, n_sources, seed)`."""

from ie_eval.data.synth.benchmark import SYNTH_VERSION, SynthOptions, generate_benchmark

__all__ = ["SYNTH_VERSION", "SynthOptions", "generate_benchmark"]
