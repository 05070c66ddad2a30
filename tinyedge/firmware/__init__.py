"""Build and flash firmware projects offline with PlatformIO and tinyedge's own development platform.

* :func:`provision` creates PlatformIO's ``tool-scons`` core package from the pip-installed SCons.
* :func:`generate_project` writes a whole project: the model as C (``tinyedge.codegen``) and the board files;
* :func:`project_files` renders the board files of a project (platformio.ini, board manifest,
  linker script, startup code and the board port).
* :func:`build_project` runs ``pio run``; :func:`elf_size` reads a built firmware's sizes with ``arm-none-eabi-size``;
* :func:`flash_project` flashes with the board's uploader (``upload``: pyOCD, OpenOCD, a UF2 image, esptool;
  no vendor platform needed) or ``pio run -t upload``; :func:`upload_plan` says how, without running it.
"""

from __future__ import annotations

from .generate import CODE_FLASH_ESTIMATE, RUNTIME_RAM_BYTES, FitReport, GeneratedProject, fit_report, generate_project
from .pio import BuildResult, build_project, elf_size, flash_project, pio_upload_command, project_env, upload_plan
from .project import PLATFORM_DIR, project_files
from .provision import pio_env, provision
from .upload import TOOLS, UploadPlan, elf_flash_image, parse_uf2, uf2_image, write_uf2

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
    "TOOLS",
    "UploadPlan",
    "elf_flash_image",
    "parse_uf2",
    "pio_upload_command",
    "uf2_image",
    "upload_plan",
    "write_uf2",
]
