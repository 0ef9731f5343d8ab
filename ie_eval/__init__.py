"""ie-eval: interpretable evaluation of text-guided image editing (ReasonEdit)."""

__version__ = "0.1.0"
