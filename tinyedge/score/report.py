"""Writers of a :class:`~tinyedge.score.figures.ScoreResult`: report.json, report.md, summary.md (CI step
summary), junit.xml (one test case per SLO), a self-contained report.html with matplotlib plots, and a
monitored session's report.md. They render; every figure and its how-measured text comes from
:func:`tinyedge.score.figures.figures`."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .figures import ScoreResult
from .slo import SloResult


def _f(v: Any, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


@dataclass
class Report:
    """The result of :func:`tinyedge.score.score`: ``data`` is report.json; ``slo_results`` the SLO gate.

    ``series`` holds the per-sample arrays the plots need (not written to report.json).
    """

    data: dict[str, Any]
    slo_results: list[SloResult] = field(default_factory=list)
    out_dir: Path | None = None
    series: dict[str, Any] = field(default_factory=dict, repr=False)
    result: ScoreResult | None = field(default=None, repr=False)

    @classmethod
    def from_result(cls, result: ScoreResult, slo_results: list[SloResult] | None = None) -> Report:
        """The report of ``result`` (report.json is ``result.to_dict()``)."""
        return cls(result.to_dict(), list(slo_results or []), series=dict(result.series), result=result)

    @property
    def passed(self) -> bool:
        """True when every SLO holds (and trivially when there are none)."""
        return all(r.passed for r in self.slo_results)

    @property
    def failed(self) -> list[SloResult]:
        return [r for r in self.slo_results if not r.passed]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def incomplete_note(self) -> str | None:
        """One line saying the run stopped early and what the figures cover; None for a complete run."""
        d = self.data
        if d.get("complete", True):
            return None
        return (f"INCOMPLETE: {d.get('stopped') or 'the run stopped early'}; the figures cover the "
                f"{d['samples']} sample(s) harvested before it")

    # ------------------------------------------------------------------ tables

    def summary_rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs for a summary table."""
        d = self.data
        lat = d["latency_ms"]
        planned = d.get("samples_planned")
        rows = [
            ("board", str(d["board"]) + (" (emulated)" if d["emulated"] else "")),
            ("samples (ok / total)", f"{d['samples_ok']} / {d['samples']}"
             + (f" of {planned} planned (INCOMPLETE)" if not d.get("complete", True) and planned else "")),
            ("success_rate", _f(d["success_rate"], ".4f")),
        ]
        if d.get("accuracy") is not None:
            rows.append(("accuracy", _f(d["accuracy"], ".4f")))
        if d.get("roc_auc") is not None:
            rows.append(("roc_auc", _f(d["roc_auc"], ".4f")))
        rows += [
            ("parity", _f(d["parity"], ".4f")),
            ("latency_ms p50/p95/p99/max",
             " / ".join(_f(lat[k], ".3f") for k in ("p50", "p95", "p99", "max"))
             + (" (estimate)" if d["emulated"] else "")),
            ("throughput_ips", _f(d["throughput_ips"], ".2f")),
            ("instructions", _f(d["instructions"], ",d")),
            ("energy_uj_per_inference", _f(d["energy_uj_per_inference"], ".2f")
             + {"trace": " (measured: power trace)", "power_model": " (power model)"}.get(d["energy_source"], "")),
            ("psi (confidence drift)", _f(d["psi"], ".4f")),
            ("ram_bytes", _f(d["ram_bytes"], ",d")),
            ("flash_bytes", _f(d["flash_bytes"], ",d")),
        ]
        return rows

    def to_markdown(self) -> str:
        d = self.data
        out = [f"# tinyedge score: {d['model']} on {d['board']}", ""]
        if self.incomplete_note:
            out += [f"**{self.incomplete_note}.**", ""]
        out += ["| figure | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.summary_rows()]
        if d.get("profile"):
            out += ["", "## Per-layer latency (te-profile)", "", "| # | layer | ticks | ms | share |",
                    "|---|---|---|---|---|"]
            out += [f"| {la['index']} | {la['name']} | {la['ticks']} | {_f(la['ms'], '.4f')} | {la['share']:.1%} |"
                    for la in d["profile"]["layers"]]
        if d.get("confusion_matrix"):
            cm = d["confusion_matrix"]
            out += ["", "## Confusion matrix (rows: label, columns: prediction)", "",
                    "| | " + " | ".join(str(i) for i in range(len(cm))) + " |",
                    "|---" * (len(cm) + 1) + "|"]
            out += [f"| **{i}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)]
        out += ["", "## How each figure was obtained", ""]
        out += [f"- **{k}**: {v}" for k, v in d["measurement"].items()]
        if d.get("model_mismatch"):
            out += ["", f"**Model mismatch allowed** (--allow-model-mismatch): firmware runs "
                        f"{d['firmware_model_sha256']}, scored against {d['model_sha256']}."]
        if self.slo_results:
            out += ["", "## SLOs", "", "| slo | value | result |", "|---|---|---|"]
            out += [f"| `{r.slo.expr}` | {'n/a' if r.value is None else f'{r.value:g}'} | "
                    f"{'pass' if r.passed else 'MISS'} |" for r in self.slo_results]
        link = d["link"]
        out += ["", f"Link {link['url']}: {link['corrupt_lines']} corrupt, {link['unknown_lines']} unknown, "
                    f"{link['truncated_lines']} truncated lines; {link['retries']} retries, {link['resyncs']} "
                    f"resyncs, {link['reconnects']} reconnects; raw bytes in raw.log.", ""]
        return "\n".join(out)

    def to_summary_markdown(self) -> str:
        """A short Markdown summary for a CI step summary (``$GITHUB_STEP_SUMMARY``)."""
        d = self.data
        verdict = ("no SLOs" if not self.slo_results else
                   "all SLOs met" if self.passed else f"{len(self.failed)} of {len(self.slo_results)} SLOs missed")
        icon = "" if not self.slo_results else ("✅ " if self.passed else "❌ ")
        if self.incomplete_note:
            icon, verdict = "❌ ", f"{verdict}, INCOMPLETE"
        out = [f"### {icon}tinyedge: {d['model']} on {d['board']}: {verdict}", ""]
        if self.incomplete_note:
            out += [f"**{self.incomplete_note}.**", ""]
        if self.slo_results:
            out += ["| SLO | value | |", "|---|---|---|"]
            out += [f"| `{r.slo.expr}` | {'not measured' if r.value is None else f'{r.value:g}'} | "
                    f"{'✅' if r.passed else '❌'} |" for r in self.slo_results]
            out.append("")
        out += ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.summary_rows()]
        if d.get("model_mismatch"):
            out += ["", "⚠️ scored with --allow-model-mismatch: the firmware runs another model."]
        if d["emulated"]:
            out += ["", "_Latency is an estimate from emulator instruction counts; energy from "
                        f"{'a power trace' if d['energy_source'] == 'trace' else 'the board power model'}._"]
        return "\n".join(out) + "\n"

    def to_junit(self) -> str:
        """JUnit XML: one test case per SLO (a miss is a failure, an unmeasured figure too)."""
        d = self.data
        incomplete = self.incomplete_note
        suite = ET.Element("testsuite", name="tinyedge.slo", tests=str(len(self.slo_results) + bool(incomplete)),
                           failures=str(len(self.failed) + bool(incomplete)), errors="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        for k in ("model", "model_sha256", "board", "samples", "tinyedge_version"):
            ET.SubElement(props, "property", name=k, value=str(d.get(k)))
        for r in self.slo_results:
            case = ET.SubElement(suite, "testcase", classname=f"tinyedge.slo.{d['board']}", name=r.slo.expr, time="0")
            if not r.passed:
                value = "not measured" if r.value is None else f"{r.value:g}"
                f = ET.SubElement(case, "failure", message=f"{r.slo.key} = {value}, wanted {r.slo.op} {r.slo.target:g}",
                                  type="SLOMiss")
                f.text = d["measurement"].get(r.slo.key.split(".")[0], "")
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{r.slo.key} = {r.value:g}"
        if incomplete:  # a run that stopped early is a failure even when its partial figures meet every SLO
            case = ET.SubElement(suite, "testcase", classname=f"tinyedge.harvest.{d['board']}", name="complete",
                                 time="0")
            f = ET.SubElement(case, "failure", message=str(d.get("stopped")), type="Incomplete")
            f.text = incomplete
        root = ET.Element("testsuites", name="tinyedge", tests=suite.get("tests", "0"),
                          failures=suite.get("failures", "0"))
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    # ------------------------------------------------------------------ html

    def figures(self) -> list[tuple[str, str, str]]:
        """(title, caption stating the source, PNG as base64) for every plot this report has data for."""
        import matplotlib  # noqa: PLC0415 - heavy optional dependency, only for report.html

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt  # noqa: PLC0415

        d, s = self.data, self.series
        figs: list[tuple[str, str, str]] = []

        def png(fig: Any) -> str:
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            return base64.b64encode(buf.getvalue()).decode("ascii")

        lat = np.asarray(s.get("latency_ms", []), dtype=np.float64)
        if lat.size:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ax.hist(lat, bins=min(40, max(5, lat.size // 3)), color="#4477aa")
            for k, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                ax.axvline(d["latency_ms"][k], color="k", linestyle=style, label=f"{k} {d['latency_ms'][k]:.3f} ms")
            ax.set_xlabel("latency per inference (ms)")
            ax.set_ylabel("samples")
            ax.legend(fontsize=8)
            figs.append(("Latency histogram", d["measurement"]["latency_ms"], png(fig)))
        prof = d.get("profile")
        if prof and prof["layers"]:
            names = [f"{la['index']}: {la['name']}"[:40] for la in prof["layers"]]
            ms = [la["ms"] or 0.0 for la in prof["layers"]]
            fig, ax = plt.subplots(figsize=(6, 0.6 + 0.28 * len(names)))
            ax.barh(range(len(names)), ms, color="#228833")
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("ms per layer")
            figs.append(("Per-layer latency", d["measurement"]["profile"], png(fig)))
        cm = d.get("confusion_matrix")
        if cm:
            m = np.asarray(cm)
            fig, ax = plt.subplots(figsize=(4.5, 4))
            ax.imshow(m, cmap="Blues")
            if m.shape[0] <= 16:
                for (i, j), v in np.ndenumerate(m):
                    if v:
                        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                                color="white" if v > m.max() / 2 else "black")
            ax.set_xlabel("prediction")
            ax.set_ylabel("label")
            figs.append(("Confusion matrix", d["measurement"]["accuracy"], png(fig)))
        conf = np.asarray(s.get("confidence", []), dtype=np.float64)
        if conf.size:
            ref = np.asarray(s.get("confidence_reference", []), dtype=np.float64)
            fig, ax = plt.subplots(figsize=(6, 3.2))
            lo = float(min(conf.min(), ref.min() if ref.size else conf.min()))
            hi = float(max(conf.max(), ref.max() if ref.size else conf.max()))
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 21)
            ax.hist(conf, bins=bins.tolist(), alpha=0.6, label="device", color="#ee6677")
            if ref.size:
                ax.hist(ref, bins=bins.tolist(), alpha=0.6, label="host reference (tflite_micro)", color="#4477aa")
            ax.set_xlabel(d["confidence"]["what"])
            ax.set_ylabel("samples")
            ax.legend(fontsize=8)
            figs.append(("Confidence distribution", d["measurement"]["psi"], png(fig)))
        return figs

    def to_html(self, *, plots: bool = True) -> str:
        """A self-contained HTML page (plots embedded as data URIs, no external files; without ``plots``,
        only the tables)."""
        d = self.data
        esc = html.escape
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>tinyedge score: {esc(d['model'])} on {esc(str(d['board']))}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
            ".pass{color:#187a2f}.miss{color:#b00020;font-weight:bold}figure{margin:1.5em 0}"
            "figcaption{font-size:.85em;color:#555}</style></head><body>",
            f"<h1>tinyedge score: {esc(d['model'])} on {esc(str(d['board']))}</h1>",
        ]
        if self.incomplete_note:
            parts.append(f"<p class='miss'>{esc(self.incomplete_note)}.</p>")
        if self.slo_results:
            parts.append("<h2>SLOs</h2><table><tr><th>SLO</th><th>value</th><th>result</th></tr>")
            for r in self.slo_results:
                v = "not measured" if r.value is None else f"{r.value:g}"
                cls, word = ("pass", "pass") if r.passed else ("miss", "MISS")
                parts.append(f"<tr><td><code>{esc(r.slo.expr)}</code></td><td>{esc(v)}</td>"
                             f"<td class='{cls}'>{word}</td></tr>")
            parts.append("</table>")
        parts.append("<h2>Figures</h2><table><tr><th>figure</th><th>value</th></tr>")
        parts += [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in self.summary_rows()]
        parts.append("</table>")
        if d.get("model_mismatch"):
            parts.append(f"<p class='miss'>Model mismatch allowed: firmware runs {esc(d['firmware_model_sha256'])}, "
                         f"scored against {esc(d['model_sha256'])}.</p>")
        if not plots:
            parts.append("<p>Plots left out: the run stopped early and ends without drawing them "
                         "(every figure is in the tables and in report.json).</p>")
        for title, caption, b64 in self.figures() if plots else []:
            parts.append(f"<figure><h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>Source: {esc(caption)}</figcaption></figure>")
        parts.append("<h2>How each figure was obtained</h2><ul>")
        parts += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in d["measurement"].items()]
        parts.append("</ul>")
        link = d["link"]
        parts.append(f"<p>Link {esc(link['url'])}: {link['corrupt_lines']} corrupt, {link['unknown_lines']} unknown, "
                     f"{link['truncated_lines']} truncated lines; {link['retries']} retries, {link['resyncs']} "
                     f"resyncs, {link['reconnects']} reconnects. Every received byte is in raw.log.</p>")
        parts.append(f"<p><small>tinyedge {esc(str(d['tinyedge_version']))}; model sha256 "
                     f"{esc(d['model_sha256'])}</small></p></body></html>")
        return "\n".join(parts) + "\n"

    # ------------------------------------------------------------------ files

    def write(self, out_dir: str | Path, *, step_summary: bool = True, plots: bool = True) -> dict[str, Path]:
        """Write report.json, report.md, summary.md, junit.xml and report.html into ``out_dir``.

        Without ``plots`` report.html has only tables: drawing takes seconds (matplotlib), which a run
        stopped by a stalled device must not spend beyond its deadline.

        With ``step_summary`` and ``$GITHUB_STEP_SUMMARY`` set, the summary is appended there too.
        Each file is written to a temporary name and renamed, so none is ever half-written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "report.json": json.dumps(self.data, indent=2) + "\n",
            "report.md": self.to_markdown(),
            "summary.md": self.to_summary_markdown(),
            "junit.xml": self.to_junit(),
            "report.html": self.to_html(plots=plots),
        }
        paths = {}
        for name, text in files.items():
            tmp = out / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, out / name)
            paths[name] = out / name
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary and target:
            with open(target, "a", encoding="utf-8") as f:
                f.write(files["summary.md"] + "\n")
        self.out_dir = out
        return paths


def monitor_markdown(d: dict[str, Any]) -> str:
    """A monitored session's report.md: the figures of its report.json as a Markdown table."""
    lat = d["latency_ms"]
    rows = [
        ("board", str(d["board"])),
        ("model", f"{d['model']} (sha256 {str(d['firmware_model_sha256'])[:16]}…)"),
        ("inferences recorded", str(d["samples"])),
        ("inferences/s (wall clock)", _f(d["inferences_per_second"], ".1f")),
        ("latency_ms p50/p95/p99/max", " / ".join(_f(lat[k], ".3f") for k in ("p50", "p95", "p99", "max"))
         + (" (estimate)" if d["emulated"] else "")),
        ("instructions", _f(d["instructions"], ",d")),
        ("accuracy", _f(d["accuracy"], ".4f")),
        ("energy_uj_per_inference", _f(d["energy_uj_per_inference"], ".2f")),
    ]
    out = [f"# tinyedge monitor: {d['model']} on {d['board']}", ""]
    if d.get("model_mismatch"):
        out += [f"**MODEL MISMATCH**: the firmware runs {d['firmware_model_sha256']}, the model given has "
                f"{d['model_sha256']}.", ""]
    out += ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    out += ["", "## How each figure was obtained", ""] + [f"- **{k}**: {v}" for k, v in d["measurement"].items()]
    out += ["", "## Link", "", "| counter | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in d["link"].items()]
    out += ["", "Raw bytes in raw.log; one row per inference in records.jsonl.", ""]
    return "\n".join(out)
