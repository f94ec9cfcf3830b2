"""``agentgate audit``: download a whole log and re-verify every record.

Exit codes: 0 when the audit found no errors (warnings are allowed); 1 when
it found errors, or the checkpoint did not verify; 2 for bad usage; 3 when
the log could not be read.
"""

import sys
import time

import click

from verifier.audit import audit_log
from verifier.audit_report import summary_lines, write_reports
from verifier.cli import load_keys
from verifier.errors import MalformedInput, Unavailable, VerificationError
from verifier.note import parse_verifier_key

EXIT_UNAVAILABLE = 3


@click.command(name="audit")
@click.argument("location")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="VKEY|FILE",
    help="The log's verifier key, or a file of keys such as LOG.pub.",
)
@click.option("--origin", default=None, help="Origin the checkpoint must name.")
@click.option(
    "--trust-anchor",
    "anchors",
    multiple=True,
    metavar="VKEY",
    help="A principal's verifier key that the gate trusts. Repeatable. "
    "Without it, each chain's root must equal the root its decision "
    "records.",
)
@click.option(
    "--monitor-state",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="State file of `agentgate monitor`; entries must equal the "
    "leaves it verified.",
)
@click.option(
    "--source",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "tiles", "api"]),
    help="Read tiles, or the JSON API /v1/entries.",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Directory for audit.json and audit.html.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: on a terminal).",
)
def audit(location, keys, origin, anchors, monitor_state, source, out_dir, progress):
    """Audit the log at LOCATION: a tiled log directory or URL, or the ledger's API.

    Downloads every entry, recomputes the root, and re-verifies every
    record: delegation chains, revocations, session chains, approvals,
    outcomes, and that each verdict is consistent with its evidence. Prints
    a summary with the first index of each kind of finding.
    """
    verifier_keys = load_keys(keys)
    anchor_keys = []
    for text in anchors:
        try:
            anchor_keys.append(parse_verifier_key(text).text)
        except MalformedInput as err:
            raise click.BadParameter(str(err), param_hint="--trust-anchor") from None

    stderr = sys.stderr
    show = progress if progress is not None else stderr.isatty()
    try:
        result = audit_log(
            location,
            verifier_keys,
            origin=origin,
            anchors=anchor_keys or None,
            monitor_state=monitor_state,
            source=source,
            progress=_progress_bar(stderr) if show else None,
        )
    except Unavailable as err:
        click.echo(f"FAIL {location}: the log could not be read: {err}")
        raise SystemExit(EXIT_UNAVAILABLE) from None
    except VerificationError as err:
        click.echo(f"FAIL {location}: {type(err).__name__}: {err}")
        raise SystemExit(1) from None

    for line in summary_lines(result):
        click.echo(line)
    if out_dir is not None:
        json_path, html_path = write_reports(result, out_dir)
        click.echo(f"wrote {json_path} and {html_path}")
    raise SystemExit(0 if result.ok else 1)


def _progress_bar(stream):
    """Return a progress callback that redraws one line at most ten times a second."""
    last = [0.0]

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        width = 30
        filled = width * done // total if total else width
        stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} entries"
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return update
