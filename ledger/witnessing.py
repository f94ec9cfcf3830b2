"""Collect witness cosignatures on the log's checkpoints (C2SP tlog-witness).

``collect_cosignatures`` sends a signed checkpoint to every witness of a
policy with the ``add-checkpoint`` call of https://c2sp.org/tlog-witness::

    old <tree size the witness last cosigned>\\n
    <consistency proof from that size, one base64 hash per line>\\n
    \\n
    <the checkpoint note>

A witness that last cosigned another size responds with 409 and that size,
and the request is sent again with the proof from there. A witness that
cosigns responds with 200 and its cosignature lines. Each line is verified
with the witness's key (``ledger.cosignatures``) before it is attached, and
the policy counts the distinct keys whose cosignatures verify on the result.
Any other status (400, 403, 404, 422), a timeout or an unreachable witness
counts that witness out, with a message that explains the status.
"""

from __future__ import annotations

import base64
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .cosignatures import (
    Cosignature,
    CosignerKey,
    WitnessPolicy,
    attach_cosignatures,
    check_cosignature_line,
    read_cosignatures,
    split_note,
)
from .errors import InvalidRequest

__all__ = [
    "DEFAULT_TIMEOUT",
    "Collection",
    "Witness",
    "WitnessOutcome",
    "collect_cosignatures",
    "witnesses_for",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# Requests per witness: the first, and retries after a 409 that names a size.
MAX_ATTEMPTS = 3
_MAX_RESPONSE_BYTES = 64 * 1024
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")

# Returns the RFC 9162 consistency proof between two tree sizes.
ConsistencyProof = Callable[[int, int], list[bytes]]

# Operator hints by C2SP tlog-witness status: the meaning and the fix.
_STATUS_HINTS = {
    400: "the witness could not parse the request; check that the URL is a "
    "tlog-witness add-checkpoint endpoint",
    403: "the witness does not trust the log key that signed the checkpoint; "
    "give the witness operator the log's verifier key",
    404: "the witness is not configured for this log's origin; give the "
    "witness operator the log's origin and verifier key",
    422: "the consistency proof from the tree the witness cosigned does not "
    "verify, so the witness saw another history of this log; compare the "
    "witness's checkpoint with the log's before publishing",
}
_OTHER_STATUS_HINT = "check that the URL is a tlog-witness add-checkpoint endpoint"


@dataclass(frozen=True)
class Witness:
    """A witness to ask: its label in the policy, its key and its URL."""

    label: str
    key: CosignerKey
    url: str


@dataclass(frozen=True)
class WitnessOutcome:
    """The result of one witness: its cosignature, or the problem that stopped it."""

    witness: Witness
    cosignature: Cosignature | None
    problem: str | None
    old_size: int


@dataclass(frozen=True)
class Collection:
    """The checkpoint with the cosignatures collected, and the policy's count."""

    note: str
    outcomes: list[WitnessOutcome]
    counted: int
    quorum: int

    @property
    def met(self) -> bool:
        """Whether cosignatures by at least ``quorum`` distinct keys are on the note."""
        return self.counted >= self.quorum


def witnesses_for(policy: WitnessPolicy, urls: Mapping[str, str]) -> list[Witness]:
    """Pair each witness of ``policy`` with its URL from ``urls`` (label to URL).

    A URL is the witness's prefix, such as ``http://127.0.0.1:7380``;
    ``/add-checkpoint`` is appended unless it ends with it already. Every
    label of the policy needs a URL, and every URL a label of the policy.
    """
    labels = [label for label, _ in policy.witnesses]
    unknown = sorted(set(urls) - set(labels))
    if unknown:
        raise InvalidRequest(
            f"witness URL for {unknown[0]!r}, which the witness policy does not "
            f"list (its witnesses: {', '.join(labels)}); remove the URL or add the "
            "witness to the policy"
        )
    missing = [label for label in labels if label not in urls]
    if missing:
        raise InvalidRequest(
            f"witness {missing[0]!r} of the witness policy has no URL; pass "
            f"--witness-url {missing[0]}=http://HOST:PORT"
        )
    witnesses = []
    for label, key in policy.witnesses:
        url = urls[label].rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(
                f"witness {label!r}: URL {urls[label]!r} is not an http(s) URL with "
                "a host"
            )
        if not url.endswith("/add-checkpoint"):
            url += "/add-checkpoint"
        witnesses.append(Witness(label, key, url))
    return witnesses


# -- collection -----------------------------------------------------------------


def collect_cosignatures(
    note: str,
    size: int,
    consistency_proof: ConsistencyProof,
    witnesses: Sequence[Witness],
    policy: WitnessPolicy,
    *,
    now: int,
    last_sizes: Mapping[str, int] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Collection:
    """Ask every witness to cosign ``note``, the checkpoint of tree ``size``.

    Plan:

    1. send each witness, in parallel, an add-checkpoint request with the
       consistency proof from its size in ``last_sizes`` (by label, default
       0). After a 409, send it again from the size the witness returned;
    2. verify each returned line with the witness's key, rejecting timestamps
       more than 300 s after ``now`` (POSIX seconds);
    3. attach the verified lines to the note, replacing older lines by the
       same keys, and count the distinct policy keys that cosigned it.

    A witness that is down, rejects the checkpoint or returns a line that
    does not verify is reported in its outcome and counted out.
    """
    last_sizes = last_sizes or {}
    text, _ = split_note(note)

    # Steps 1 and 2.
    def ask(witness: Witness) -> WitnessOutcome:
        old = last_sizes.get(witness.label, 0)
        try:
            cosignature, old = _request_cosignature(
                witness, note, text, size, old, consistency_proof, now, timeout
            )
        except _WitnessFailed as failure:
            logger.warning("witness %s did not cosign size %d: %s",
                           witness.label, size, failure)
            return WitnessOutcome(witness, None, str(failure), failure.old_size)
        logger.info("witness %s cosigned size %d (old size %d)",
                    witness.label, size, old)
        return WitnessOutcome(witness, cosignature, None, old)

    if witnesses:
        with ThreadPoolExecutor(max_workers=len(witnesses)) as pool:
            outcomes = list(pool.map(ask, witnesses))
    else:
        outcomes = []

    # Step 3.
    new = [o.cosignature for o in outcomes if o.cosignature is not None]
    cosigned = attach_cosignatures(note, new) if new else note
    counted = policy.count(read_cosignatures(cosigned, policy.keys))
    return Collection(cosigned, outcomes, counted, policy.quorum)


class _WitnessFailed(Exception):
    def __init__(self, message: str, old_size: int) -> None:
        super().__init__(message)
        self.old_size = old_size


def _request_cosignature(
    witness: Witness,
    note: str,
    text: str,
    size: int,
    old: int,
    consistency_proof: ConsistencyProof,
    now: int,
    timeout: float,
) -> tuple[Cosignature, int]:
    """Send add-checkpoint requests until one is cosigned.

    Returns the cosignature and the old size of the request that got it.
    """
    old = min(old, size)
    for _ in range(MAX_ATTEMPTS):
        proof = consistency_proof(old, size) if 0 < old < size else []
        lines = "".join(
            base64.b64encode(digest).decode("ascii") + "\n" for digest in proof
        )
        body = f"old {old}\n{lines}\n{note}".encode()
        status, content = _post(witness.url, body, timeout, old)
        if status == 200:
            return _cosignature_from(witness, content, text, now, old), old
        if status != 409:
            detail = content.decode("utf-8", "replace").strip()[:300]
            hint = _STATUS_HINTS.get(status, _OTHER_STATUS_HINT)
            if status == 422:
                logger.error(
                    "witness %s rejected the consistency proof from tree size %d "
                    "to %d; the log may show a split view",
                    witness.label,
                    old,
                    size,
                )
            raise _WitnessFailed(
                f"POST {witness.url} returned HTTP {status}: {detail}; {hint}", old
            )
        reported = _reported_size(witness, content, old)
        if reported > size:
            raise _WitnessFailed(
                f"the witness last cosigned tree size {reported}, larger than this "
                f"checkpoint's {size} (HTTP 409); publish a newer checkpoint",
                old,
            )
        if reported == old:
            logger.error(
                "witness %s cosigned another root at tree size %d than the log's "
                "checkpoint; the log may show a split view",
                witness.label,
                old,
            )
            raise _WitnessFailed(
                f"the witness cosigned another root at tree size {old} (HTTP 409); "
                "compare the log's checkpoints with the witness's state",
                old,
            )
        logger.info("witness %s last cosigned size %d, not %d; sending again",
                    witness.label, reported, old)
        old = reported
    raise _WitnessFailed(
        f"the witness returned 409 to {MAX_ATTEMPTS} requests in a row; another "
        "process may be publishing the same log",
        old,
    )


def _post(url: str, body: bytes, timeout: float, old: int) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8",
                 "User-Agent": "agentgate-ledger"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(_MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(_MAX_RESPONSE_BYTES)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise _WitnessFailed(
                f"POST {url} timed out after {timeout:g} s; check that the witness "
                "is running, or raise --witness-timeout",
                old,
            ) from err
        raise _WitnessFailed(
            f"POST {url} failed: {reason}; check that the witness is running at "
            "that address",
            old,
        ) from err


def _reported_size(witness: Witness, content: bytes, old: int) -> int:
    """Return the tree size in a 409 body (``text/x.tlog.size``: decimal, newline)."""
    value = content.decode("ascii", "replace").removesuffix("\n")
    if not _DECIMAL.fullmatch(value):
        raise _WitnessFailed(
            f"POST {witness.url} returned HTTP 409 without a tree size: "
            f"{value[:80]!r}",
            old,
        )
    return int(value)


def _cosignature_from(
    witness: Witness, content: bytes, text: str, now: int, old: int
) -> Cosignature:
    """Return the witness's verified cosignature among the lines it returned."""
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise _WitnessFailed(
            f"POST {witness.url}: the response is not UTF-8", old
        ) from err
    for line in lines:
        try:
            cosignature = check_cosignature_line(line, witness.key, text, now)
        except InvalidRequest as err:
            raise _WitnessFailed(f"POST {witness.url}: {err}", old) from err
        if cosignature is not None:
            return cosignature
    raise _WitnessFailed(
        f"POST {witness.url} returned 200 without a cosignature line by "
        f"{witness.key}",
        old,
    )
