"""``agentgate monitor``: watch a tiled log and stop at the first misbehaviour.

Each outcome has its own exit code (see ``verifier.monitor.Outcome``):

- 0: the log is consistent (after one check with ``--once``);
- 1: the log served a malformed checkpoint or tile;
- 2: bad usage;
- 3: a bad log signature or another origin;
- 4: the witness policy is not met;
- 5: a rollback;
- 6: a fork;
- 7: the log's tiles do not give its signed root;
- 8: the log could not be read;
- 9: an entry does not hash to its leaf hash, or its bundle is damaged.
"""

import logging
import time

import click

from verifier.cli import load_keys
from verifier.errors import VerificationError
from verifier.monitor import DEFAULT_RECHECK, RECHECK_ALL, Monitor, Outcome
from verifier.tiles import TiledLog, TileSource
from verifier.witness_policy import load_witness_policy

logger = logging.getLogger(__name__)


class RecheckCount(click.ParamType):
    """A number of bundles >= 0, or "all"."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == RECHECK_ALL:
            return value
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            self.fail(
                f"expected a number of bundles >= 0 or {RECHECK_ALL!r}, got {value!r}",
                param,
                ctx,
            )
        return count


@click.command(name="monitor")
@click.argument("location")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="VKEY|FILE",
    help="The log's verifier key, or a file of keys such as LOG.pub. "
    "Repeatable during a key rotation.",
)
@click.option(
    "--origin",
    default=None,
    help="Origin the checkpoints must name; defaults to the stored one.",
)
@click.option(
    "--witness-policy",
    "policy_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Witness policy file; every checkpoint must meet it.",
)
@click.option(
    "--state",
    "state_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="State file (created on the first run); STATE.leaves is kept beside it.",
)
@click.option(
    "--interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between checks.",
)
@click.option(
    "--recheck",
    default=DEFAULT_RECHECK,
    show_default=True,
    type=RecheckCount(),
    help="Entry bundles of leaves seen before to re-read per check, round robin, "
    "or 'all' for a full pass.",
)
@click.option("--once", is_flag=True, help="Check once and exit.")
def monitor(
    location, keys, origin, policy_file, state_file, interval, recheck, once
):
    """Check that every checkpoint of the log at LOCATION extends the last one seen.

    LOCATION is a tiled log: a directory or an http(s) URL. Each check
    verifies the checkpoint's signature (and the witness policy), then
    recomputes the tree from the level 0 tiles and checks that it extends
    the tree seen before. It hashes the entries of the new leaves, and
    re-reads --recheck bundles of older leaves, to check that each entry
    matches its leaf hash. A problem is reported on one line of standard
    error, and the command exits with its code: 1 malformed, 3 bad
    signature, 4 witness policy, 5 rollback, 6 fork, 7 inconsistent, 9 an
    entry that does not match its leaf hash. An unreachable log exits with
    8 under --once and is retried otherwise.
    """
    verifier_keys = load_keys(keys)
    try:
        policy = load_witness_policy(policy_file) if policy_file else None
        source = TileSource(location)
    except VerificationError as err:
        raise click.BadParameter(str(err)) from None
    checker = Monitor(
        TiledLog(source), verifier_keys, state_file, origin, policy, recheck
    )

    failures = 0
    while True:
        report = checker.check(now=int(time.time()))
        if report.ok:
            failures = 0
            click.echo(f"OK {location}: {report.message}")
        elif report.outcome == Outcome.UNAVAILABLE and not once:
            failures += 1
            click.echo(
                f"agentgate monitor: unavailable ({failures} in a row): "
                f"{report.message}; retrying in {interval:g} s",
                err=True,
            )
        else:
            click.echo(f"agentgate monitor: {report.kind}: {report.message}", err=True)
            raise SystemExit(report.exit_code)
        if once:
            return
        time.sleep(interval)
