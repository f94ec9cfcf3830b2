"""The parts of the evaluate step: what one call is judged on, before sealing.

``Session.evaluate`` runs the first five steps of the pipeline: it validates
the request, verifies the delegation chain and checks the call against its
scope, scores alignment, evaluates the sequence rules and takes the
strictest verdict. This module contains the pieces it is built from and
the ``Evaluation`` it returns: the verdict, its reasons and everything the
decision record will carry. Nothing here touches the log; sealing is the
next step (``Session.seal``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enforcement import jcs
from enforcement.alignment import (
    AlignmentResult,
    Purpose,
    Scorer,
    ScoringContext,
    label_for,
)
from enforcement.approval_desk import Resolution
from enforcement.delegation import Certificate, ChainVerifier, VerifiedChain
from enforcement.errors import (
    ConfigError,
    DelegationError,
    GateError,
    InvalidRequest,
    Reason,
)
from enforcement.identity import parse_verifier_key
from enforcement.policy import AlignmentPolicy
from enforcement.profiles import ToolProfile
from enforcement.provenance import Provenance
from enforcement.scope import BudgetRef, CallBudgets

logger = logging.getLogger(__name__)

MAX_TOOL_NAME_LENGTH = 256


@dataclass(frozen=True)
class ChainFacts:
    """The delegation facts that a decision record carries for a call.

    For a chain that failed verification, ``verified`` is None and the other
    fields are read from the certificates without trusting them.
    """

    agent: str
    hashes: tuple[str, ...]
    root: str
    # Shared by every evaluation under the chain; copy it before changing it.
    scope: dict[str, Any]
    verified: VerifiedChain | None = None


@dataclass(frozen=True)
class Evaluation:
    """The verdict on one call and the facts its decision record will carry.

    ``reasons`` come in pipeline order: delegation, alignment, sequence rules,
    then approvals. ``sequence`` contains the state digests before and after
    the call, the ids of the rules that fired and the session's counters.
    ``charged`` lists the budget counters the call used; it is empty unless
    the verdict is an allow, because a call that is not allowed gives its
    charge back.
    """

    tool: str
    arguments: dict[str, Any]
    now: datetime
    profile: ToolProfile
    chain: ChainFacts
    alignment: AlignmentResult
    verdict: str
    reasons: tuple[Reason, ...]
    hold_rules: frozenset[str]
    sequence: dict[str, Any]
    resolution: Resolution
    charged: tuple[BudgetRef, ...] = ()


def validate_request(tool: Any, arguments: Any) -> dict[str, Any]:
    """Return the arguments as a plain dict, or raise ``InvalidRequest``.

    The tool name must be a non-empty string of at most 256 characters and
    the arguments a mapping of names to JSON values.
    """
    if not isinstance(tool, str) or not tool or len(tool) > MAX_TOOL_NAME_LENGTH:
        raise InvalidRequest(f"tool name must be a non-empty string, got {tool!r}")
    jcs.check_json_value(tool, path="tool")
    if not isinstance(arguments, Mapping):
        raise InvalidRequest(
            f"arguments must be a mapping of names to values, got "
            f"{type(arguments).__name__}"
        )
    arguments = dict(arguments)
    jcs.check_json_value(arguments, path="arguments")
    return arguments


def verify_chain(chains: ChainVerifier, chain: Sequence[Certificate],
                 now: datetime, reasons: list[Reason]) -> ChainFacts:
    """Verify the chain at ``now`` and describe it for the decision record.

    A chain that fails adds a deny reason citing the failed rule and is
    described without trusting any of its fields.
    """
    try:
        verified = chains.verify(chain, now)
    except (DelegationError, InvalidRequest, ConfigError) as err:
        rule = getattr(err, "rule", "delegation")
        reasons.append(Reason(rule, str(err)))
        return _refused_chain(chain)
    return ChainFacts(
        agent=verified.agent.key_id, hashes=verified.hashes, root=verified.root,
        scope=verified.scope_json, verified=verified,
    )


def admit_call(chain: ChainFacts, tool: str, arguments: Mapping[str, Any],
               budgets: CallBudgets, reasons: list[Reason]) -> tuple[BudgetRef, ...]:
    """Check the call against the verified chain's scope and charge its budget.

    Returns the counters charged. A call outside the scope, or allowed only
    by capabilities out of budget, adds a deny reason (``delegation.scope``
    or ``delegation.budget``) and is charged nothing. Call this under the
    sequence engine's lock, together with the verdict and any refund, so
    that no other call sees a charge that is then given back.
    """
    if chain.verified is None:
        return ()
    admission = chain.verified.scope.admit(tool, arguments, budgets)
    if admission.exhausted:
        reasons.append(Reason("delegation.budget", "; ".join(admission.exhausted)))
    elif admission.problems:
        reasons.append(Reason("delegation.scope", "; ".join(admission.problems)))
    return admission.charged


def score_alignment(scorer: Scorer, thresholds: AlignmentPolicy, purpose: Purpose,
                    profile: ToolProfile, arguments: Mapping[str, Any],
                    provenance: Provenance,
                    reasons: list[Reason]) -> tuple[AlignmentResult, str | None]:
    """Score the call and return the result with the verdict it requests.

    The verdict is None when the call is aligned.

    A scorer that raises or returns something unusable denies the call.
    A reason is added to ``reasons`` whenever a verdict is returned.
    """
    context = ScoringContext(
        purpose=purpose, profile=profile, arguments=arguments,
        provenance=provenance, hold_below=thresholds.hold_below,
        deny_below=thresholds.deny_below,
    )
    try:
        result = _checked_result(scorer.score(context), thresholds)
        score = result.score
    except Exception as err:  # noqa: BLE001 - a failing scorer denies
        logger.error("scorer %s raised %r; the call is denied",
                     getattr(scorer, "name", scorer), err)
        result = AlignmentResult(
            getattr(scorer, "name", "unknown"), getattr(scorer, "version", "?"),
            0.0, "error", (f"scorer raised {type(err).__name__}: {err}",),
        )
        score = 0.0
    label = label_for(score, thresholds.hold_below, thresholds.deny_below)
    if label == "aligned":
        return result, None
    verdict = "deny" if label in ("misaligned", "error") else "hold"
    if result.label == "error":
        verdict = "deny"
    detail = "; ".join(result.reasons) or "no reason given"
    reasons.append(Reason(
        "alignment",
        f"score {score:.2f} is below the {verdict} threshold "
        f"{thresholds.hold_below if verdict == 'hold' else thresholds.deny_below}"
        f": {detail}",
    ))
    return result, verdict


def _checked_result(result: Any, thresholds: Any) -> AlignmentResult:
    """Return a scorer's result with a float score, or raise if it is unusable."""
    if not isinstance(result, AlignmentResult):
        raise TypeError(
            f"score() returned a {type(result).__name__}, expected an AlignmentResult"
        )
    score = float(result.score)
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score {score} is outside [0, 1]")
    if not all(isinstance(reason, str) for reason in result.reasons):
        raise TypeError(f"reasons must be strings, got {result.reasons!r}")
    if type(result.score) is not float or type(result.reasons) is not tuple:
        result = dataclasses.replace(result, score=score,
                                     reasons=tuple(result.reasons))
    jcs.check_json_value(
        result.to_json(thresholds.hold_below, thresholds.deny_below), "alignment"
    )
    return result


def _refused_chain(chain: Sequence[Any]) -> ChainFacts:
    """Describe a chain that failed verification, trusting none of its fields.

    The deny is sealed even when a certificate lacks a field or contains a
    value that is not JSON. Each field is therefore read with a fallback: an
    empty hash list when a certificate cannot be hashed, and "" or "unknown"
    for a bad key.
    """
    try:
        hashes = tuple(certificate.hash for certificate in chain)
    except (GateError, AttributeError, TypeError, ValueError):
        hashes = ()
    root = _body_text(chain[0], "issuer") if chain else None
    subject = _body_text(chain[-1], "subject") if chain else None
    return ChainFacts(
        agent=_key_id_or_unknown(subject),
        hashes=hashes,
        root=root if _key_id_or_unknown(root) != "unknown" else "",
        scope={"capabilities": []},
    )


def _body_text(certificate: Any, name: str) -> str | None:
    body = getattr(certificate, "body", None)
    value = body.get(name) if isinstance(body, Mapping) else None
    return value if isinstance(value, str) else None


def _key_id_or_unknown(verifier_key: str | None) -> str:
    if not verifier_key:
        return "unknown"
    try:
        return parse_verifier_key(verifier_key).key_id
    except GateError:
        return "unknown"
