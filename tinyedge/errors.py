"""One exception hierarchy for tinyedge.

Every message says what is wrong and ends with what to try, so the CLI can print it as one line
and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations


class TinyedgeError(Exception):
    """Base of all errors tinyedge reports to users.

    ``problem`` says what went wrong, ``hint`` what to try; ``str()`` joins them.
    """

    exit_code = 2

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem}. Try: {hint}" if hint else problem)


class BoardError(TinyedgeError):
    """Unknown board id or an invalid board file."""


class ModelError(TinyedgeError):
    """A model file that cannot be read or is not supported."""


class UnsupportedModelError(ModelError):
    """The model uses ops, types or structure tinyedge cannot generate code for.

    ``problems`` lists every problem found in one pass over the model.
    """

    def __init__(self, problems: list[str], hint: str) -> None:
        self.problems = list(problems)
        head = f"model is not supported ({len(problems)} problem{'s' if len(problems) != 1 else ''}): "
        super().__init__(head + "; ".join(problems), hint)


class DataError(TinyedgeError):
    """A data file (.npz) that is missing, malformed or mismatched with the model."""


class FitError(TinyedgeError):
    """The model does not fit the board's RAM or flash."""


class ToolError(TinyedgeError):
    """An external tool (pio, gcc, qemu) is missing or failed."""


class LinkError(TinyedgeError):
    """The serial link to the device failed: no answer, wrong answer, lost connection."""


class SLOError(TinyedgeError):
    """An SLO expression is malformed or names an unknown report key."""


class OracleError(TinyedgeError):
    """The TFLM reference interpreter (run in a child process) refused the model, crashed or stopped
    answering. ``kind`` is "refused", "crashed" or "timeout"."""

    def __init__(self, problem: str, hint: str = "", kind: str = "refused") -> None:
        super().__init__(problem, hint)
        self.kind = kind


class DeviceStalled(LinkError):
    """The device sent no valid byte for longer than the stall deadline, and resynchronising or
    reconnecting within the deadline did not bring it back: the run stops (exit code 3) and keeps
    what was harvested.

    ``report`` is the partial report written before raising (set by ``tinyedge.score.score``).
    """

    exit_code = 3

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(problem, hint)
        self.report: object | None = None
