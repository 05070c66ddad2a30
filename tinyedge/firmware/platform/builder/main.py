"""SCons build script of tinyedge's offline PlatformIO platform.

Compiles ``src/*.c`` with the arm-none-eabi-gcc on PATH, using flags derived from the board manifest
(``boards/<id>.json`` of the project, generated from the board YAML), links with the project's
``linker.ld`` and produces ``firmware.elf`` and ``firmware.bin``. ``upload`` on an emulated board
starts QEMU through ``tinyedge emulate``.
"""

import os
import shutil
import sys

from SCons.Script import AlwaysBuild, Builder, Default, DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

if shutil.which("arm-none-eabi-gcc", path=env["ENV"].get("PATH")) is None:
    sys.stderr.write(
        "Error: 'arm-none-eabi-gcc' is not on PATH. Try: sudo apt-get install gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi\n"
    )
    env.Exit(1)

cpu = board.get("build.cpu")
fpu = board.get("build.fpu", "none")
machine_flags = ["-mcpu=%s" % cpu, "-mthumb"]
if fpu and fpu != "none":
    machine_flags += ["-mfpu=%s" % fpu, "-mfloat-abi=hard"]

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="gdb-multiarch",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    LDSCRIPT_PATH=os.path.join("$PROJECT_DIR", board.get("build.ldscript", "linker.ld")),
)

env.Append(
    ASFLAGS=machine_flags,
    ASPPFLAGS=machine_flags + ["-x", "assembler-with-cpp"],
    CCFLAGS=machine_flags + ["-O2", "-ffunction-sections", "-fdata-sections", "-Wall", "-g"],
    CFLAGS=["-std=gnu11"],
    CXXFLAGS=["-fno-rtti", "-fno-exceptions"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=machine_flags
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
    LIBS=["m"],
    BUILDERS=dict(
        ElfToBin=Builder(
            action=env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET", "Building $TARGET"),
            suffix=".bin",
        )
    ),
)

target_elf = env.BuildProgram()
target_bin = env.ElfToBin(os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)
env.Depends(target_bin, "checkprogsize")

AlwaysBuild(
    env.Alias("size", target_elf, env.VerboseAction("$SIZETOOL -B -d $SOURCES", "Calculating size $SOURCE"))
)

# Upload. Emulated boards "upload" by running the firmware in QEMU through `tinyedge emulate`; the
# tinyedge that shipped this platform is put on PYTHONPATH so that works from a source checkout too.
tinyedge_root = os.path.abspath(os.path.join(platform.get_dir(), "..", "..", ".."))
if os.path.isfile(os.path.join(tinyedge_root, "tinyedge", "__init__.py")):
    old = env["ENV"].get("PYTHONPATH", "")
    env["ENV"]["PYTHONPATH"] = tinyedge_root + (os.pathsep + old if old else "")

protocol = env.subst("$UPLOAD_PROTOCOL") or board.get("upload.protocol", "")
user_command = env.GetProjectOption("upload_command", None)  # PlatformIO substitutes it after this script
if board.get("build.tinyedge_emulated", False) and protocol == "custom" and not user_command:
    port = env.subst("$UPLOAD_PORT")
    port_arg = " --serial-port %s" % port if port.isdigit() else ""
    env.Replace(UPLOADCMD='"$PYTHONEXE" -m tinyedge emulate "$PROJECT_DIR"' + port_arg)

if env.get("UPLOADCMD") or user_command:
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
else:

    def _no_uploader(target, source, env):  # pylint: disable=unused-argument
        sys.stderr.write(
            "Error: board '%s' has no uploader in the tinyedge platform. Try: set upload_command in "
            "platformio.ini, or flash %s with your vendor tool\n" % (board.id, env.subst("$BUILD_DIR/firmware.bin"))
        )
        return 1

    upload_actions = [_no_uploader]

AlwaysBuild(env.Alias("upload", target_elf, upload_actions))

Default([target_bin])
