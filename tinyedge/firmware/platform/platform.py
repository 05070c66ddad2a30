"""tinyedge's offline PlatformIO development platform.

Nothing to install: the toolchain is the arm-none-eabi-gcc on PATH and the build script is
``builder/main.py``. PlatformIO names the class after platform.json's ``name`` (``tinyedge-qemu``).
"""

from platformio.public import PlatformBase


class TinyedgeqemuPlatform(PlatformBase):
    """No packages, no frameworks: keep PlatformIO away from its registry."""

    def is_embedded(self):
        return True
