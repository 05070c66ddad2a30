"""Live dashboards of a device's inference stream: a state model, a rich terminal view, a web page.

The :class:`Monitor` streams ``te-stream`` batches through ``tinyedge.link`` (the same transport and
parser as ``tinyedge score``), records a session folder, and feeds a :class:`MonitorState`; the
terminal view (:mod:`.terminal`) and the web dashboard (:mod:`.web`) render its snapshots.
"""

from __future__ import annotations

from .labels import load_labels, model_labels
from .session import SESSION_FILES, Monitor, build_report, read_records, report_markdown, session_report
from .state import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, MonitorState, sparkline

__all__ = ["CONNECTED", "CONNECTING", "DISCONNECTED", "Monitor", "MonitorState", "SESSION_FILES", "STOPPED",
           "build_report", "load_labels", "model_labels", "read_records", "report_markdown",
           "session_report", "sparkline"]
