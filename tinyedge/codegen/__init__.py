"""Code generation: a lowered Program as C (``cmodel``), the target pass choosing each board's kernels
(``target``), and host builds of the generated C for tests and benchmarks (``host``)."""

from .cmodel import CModel, render_model
from .target import candidates, specialize, variant

__all__ = ["CModel", "candidates", "render_model", "specialize", "variant"]
