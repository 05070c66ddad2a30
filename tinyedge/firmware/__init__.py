"""Build and flash firmware projects offline with PlatformIO and tinyedge's own development platform.

* :func:`provision` creates PlatformIO's ``tool-scons`` core package from the pip-installed SCons.
* :func:`generate_project` writes a whole project: the model as C (``tinyedge.codegen``) and the board files;
* :func:`project_files` renders the board files of a project (platformio.ini, board manifest,
  linker script, startup code and the board port).
* :func:`build_project` runs ``pio run``; :func:`flash_project` runs ``pio run -t upload``;
  :func:`elf_size` reads a built firmware's sizes with ``arm-none-eabi-size``.
"""

from __future__ import annotations

from .generate import CODE_FLASH_ESTIMATE, RUNTIME_RAM_BYTES, FitReport, GeneratedProject, fit_report, generate_project
from .pio import BuildResult, build_project, elf_size, flash_project, project_env
from .project import PLATFORM_DIR, project_files
from .provision import pio_env, provision

__all__ = [
    "CODE_FLASH_ESTIMATE",
    "FitReport",
    "GeneratedProject",
    "RUNTIME_RAM_BYTES",
    "fit_report",
    "generate_project",
    "BuildResult",
    "PLATFORM_DIR",
    "build_project",
    "elf_size",
    "flash_project",
    "pio_env",
    "project_env",
    "project_files",
    "provision",
]
