"""Write an audit's results: ``audit.json`` and a self-contained ``audit.html``.

The HTML page has no scripts and loads nothing: the styles are inline and
every value from the log is escaped, because the log's records are
untrusted text.
"""

import html
import json
from pathlib import Path

from verifier._files import write_atomic
from verifier.audit import AuditResult

MAX_HTML_FINDINGS = 1000

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em;
       color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd;
         vertical-align: top; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
.pass { color: #146c2e; } .fail { color: #a4161a; } .warn { color: #8a5a00; }
.verdict { font-weight: 600; font-size: 1.2em; }
"""


def write_reports(result: AuditResult, directory: str | Path) -> tuple[Path, Path]:
    """Write ``audit.json`` and ``audit.html`` into ``directory``; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "audit.json"
    html_path = directory / "audit.html"
    document = json.dumps(
        result.to_json(), indent=2, sort_keys=True, ensure_ascii=False
    )
    write_atomic(json_path, document.encode("utf-8") + b"\n", mode=0o644)
    write_atomic(html_path, render_html(result).encode("utf-8"), mode=0o644)
    return json_path, html_path


def summary_lines(result: AuditResult) -> list[str]:
    """Return the plain-text summary that ``agentgate audit`` prints."""
    data = result.to_json()
    records = ", ".join(f"{count} {kind}" for kind, count in data["records"].items())
    verdicts = ", ".join(f"{count} {kind}" for kind, count in data["verdicts"].items())
    lines = [
        f"log {data['origin']} at tree size {data['checkpoint']['size']}, signed by "
        f"{', '.join(data['checkpoint']['keys'])}",
        f"entries read: {data['entries']} ({data['source']}); root "
        f"{'matches' if data['root_matches'] else 'DOES NOT MATCH'} the checkpoint",
        f"records: {records or 'none'}",
        f"decisions: {verdicts or 'none'}",
    ]
    if result.findings:
        lines.append(f"findings: {data['errors']} errors, {data['warnings']} warnings")
        for kind, index in sorted(result.first_bad().items()):
            where = f"first at index {index}" if index is not None else "log-wide"
            lines.append(f"  {kind}: {where}")
    else:
        lines.append("findings: none")
    lines.append("PASS" if result.ok else "FAIL")
    return lines


def render_html(result: AuditResult) -> str:
    """Return the audit as one HTML page."""
    data = result.to_json()
    origin = html.escape(data["origin"])
    if result.ok:
        verdict = '<p class="verdict pass">PASS: no errors found</p>'
    else:
        verdict = f'<p class="verdict fail">FAIL: {data["errors"]} errors</p>'

    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>AgentGate audit of {origin}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>AgentGate audit of <code>{origin}</code></h1>{verdict}"
        f"<h2>Log</h2>{_facts_table(data)}{_findings_section(result, data)}"
        "<h2>Checkpoint</h2>"
        f"<pre><code>{html.escape(data['checkpoint']['text'])}</code></pre>"
        "</body></html>\n"
    )


def _facts_table(data: dict) -> str:
    records = ", ".join(f"{v} {k}" for k, v in data["records"].items())
    verdicts = ", ".join(f"{v} {k}" for k, v in data["verdicts"].items())
    facts = [
        ("Origin", data["origin"]),
        ("Location", f"{data['location']} ({data['source']})"),
        ("Tree size", str(data["checkpoint"]["size"])),
        ("Signed root", data["checkpoint"]["root"]),
        ("Computed root", data["computed_root"]),
        ("Signed by", ", ".join(data["checkpoint"]["keys"])),
        ("Entries read", str(data["entries"])),
        ("Records", records or "none"),
        ("Decisions", verdicts or "none"),
        ("Delegation roots", ", ".join(data["delegation_roots"]) or "none"),
        ("Audit time", f"{data['seconds']} s"),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(value)}</code></td></tr>"
        for name, value in facts
    )
    return f"<table>{rows}</table>"


def _findings_section(result: AuditResult, data: dict) -> str:
    if not result.findings:
        return "<h2>Findings</h2><p>None.</p>"

    first_rows = "".join(
        f"<tr><td>{html.escape(kind)}</td>"
        f"<td>{'log-wide' if index is None else index}</td></tr>"
        for kind, index in sorted(data["first_bad"].items())
    )
    listed = result.findings[:MAX_HTML_FINDINGS]
    finding_rows = "".join(
        f'<tr class="{"fail" if f.severity == "error" else "warn"}">'
        f"<td>{'' if f.index is None else f.index}</td>"
        f"<td>{html.escape(f.kind)}</td><td>{html.escape(f.severity)}</td>"
        f"<td>{html.escape(f.message)}</td></tr>"
        for f in listed
    )
    more = ""
    if len(result.findings) > len(listed):
        more = (
            f"<p>{len(result.findings) - len(listed)} more findings are in "
            "audit.json.</p>"
        )
    return (
        "<h2>First index of each kind</h2>"
        f"<table><tr><th>kind</th><th>first index</th></tr>{first_rows}</table>"
        "<h2>Findings</h2><table><tr><th>index</th><th>kind</th>"
        f"<th>severity</th><th>message</th></tr>{finding_rows}</table>{more}"
    )
