"""``tinyedge export``: a model as a library for a firmware that is not tinyedge's.

``export_model`` (``library``) writes the model with a namespaced C API in a build system's layout and the
shared kernel runtime (``runtime``); ``export_tflm`` (``tflm``) the model for TFLM's own interpreter.
"""

from .library import ARENA_MODES, FORMATS, ExportResult, check_name, export_model
from .runtime import RUNTIME_NAME, runtime_files, write_runtime
from .tflm import export_tflm

__all__ = ["ARENA_MODES", "FORMATS", "RUNTIME_NAME", "ExportResult", "check_name", "export_model", "export_tflm",
           "runtime_files", "write_runtime"]
