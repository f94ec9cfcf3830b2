"""The audit of one decision record: is its verdict backed by the evidence?

For every decision, ``check_decision`` runs this plan:

1. the shape of the record (``specs/records.md``, decision);
2. the policy it cites is a policy record earlier in the log, and the
   alignment thresholds it records are that policy's;
3. its session links: ``sequence.previous`` is the leaf hash of the
   session's previous record, and ``sequence.before`` the ``after`` of the
   session's previous decision;
4. its delegation chain, rebuilt from earlier delegation records: the chain
   rules, the validity window at the decision's time, the revocations sealed
   before it, and the recorded root, agent and effective scope;
5. an allow needs a valid chain that no revocation reached and a tool
   inside the effective scope. Its score must not be below the deny
   threshold, nor below the hold threshold unless approvers lifted an
   alignment hold. When it cites an approval request, it must be allowed to
   use the request, with a quorum of valid approvals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from verifier._encoding import shorten
from verifier._record_fields import require_hex64, require_members
from verifier._time import parse_time
from verifier.delegation import (
    VerifiedChain,
    check_window,
    find_revocation,
    verify_chain,
)
from verifier.errors import ChainInvalid, MalformedInput
from verifier.jcs import canonicalize
from verifier.scope import parse_scope, scope_within

if TYPE_CHECKING:
    from verifier.audit_records import RecordAuditor

_VERDICTS = ("allow", "deny", "hold")


def check_decision(auditor: RecordAuditor, index: int, record: dict, leaf: str) -> None:
    """Check the decision at ``index`` and record what later records need."""
    # 1. Shape.
    _check_shape(record)
    verdict = record["verdict"]
    allow = verdict == "allow"
    time = parse_time(record["time"], "time")
    sequence = record["sequence"]
    auditor.verdicts[verdict] += 1

    # 2. Policy and thresholds.
    policy = auditor.policies.get(record["policy"])
    if policy is None:
        auditor.report(
            "decision.policy",
            index,
            f"decision {index} cites policy {record['policy']}, which no "
            "earlier policy record has",
        )
    thresholds = record["alignment"]["thresholds"]
    if policy is not None:
        alignment = policy[1].get("alignment") or {}
        expected = {
            "hold": alignment.get("hold_below", 0.5),
            "deny": alignment.get("deny_below", 0.15),
        }
        if thresholds != expected:
            auditor.report(
                "decision.alignment",
                index,
                f"decision {index} records thresholds {thresholds}, but "
                f"policy {record['policy'][:12]} sets {expected}",
            )

    # 3. Session links.
    auditor.session_step(
        index,
        record["session"],
        sequence["previous"],
        leaf,
        sequence["before"],
        sequence["after"],
    )

    # 4. and 5. Chain, scope, alignment, approvals.
    chain_problem = _check_chain(auditor, index, record, time)
    if allow and chain_problem is not None:
        rule, text = chain_problem
        auditor.report(
            "decision.chain",
            index,
            f"decision {index} allows {record['tool']!r} although its "
            f"chain fails {rule}: {text}",
        )
    elif allow:
        _check_scope(auditor, index, record)
    lifted = _check_approval(auditor, index, record, time)
    if allow:
        _check_alignment(auditor, index, record, lifted)

    auditor.remember_decision(index, record)


def _check_shape(record: dict) -> None:
    require_members(
        record,
        {
            "agent",
            "session",
            "tool",
            "arguments",
            "delegation",
            "alignment",
            "sequence",
            "policy",
            "verdict",
            "reasons",
        },
        {"approval"},
    )
    for name in ("agent", "session", "tool"):
        if not isinstance(record[name], str) or not record[name]:
            raise MalformedInput(f"{name} must be a non-empty string")
    if record["verdict"] not in _VERDICTS:
        raise MalformedInput(
            f"verdict must be one of {_VERDICTS}, got {shorten(record['verdict'])}"
        )
    require_hex64(record["policy"], "policy")
    arguments = record["arguments"]
    if not isinstance(arguments, dict):
        raise MalformedInput("arguments must be an object of commitments")
    for name, commitment in arguments.items():
        require_hex64(commitment, f"arguments.{name}")

    delegation = record["delegation"]
    if not isinstance(delegation, dict) or set(delegation) != {
        "chain",
        "root",
        "scope",
    }:
        raise MalformedInput("delegation must have exactly chain, root and scope")
    if not isinstance(delegation["chain"], list):
        raise MalformedInput("delegation.chain must be a list of certificate hashes")
    for position, value in enumerate(delegation["chain"]):
        require_hex64(value, f"delegation.chain[{position}]")

    alignment = record["alignment"]
    score = alignment["score"]
    if (
        not isinstance(score, (int, float))
        or isinstance(score, bool)
        or not 0 <= score <= 1
    ):
        raise MalformedInput(
            f"alignment.score must lie in [0, 1], got {shorten(score)}"
        )
    thresholds = alignment["thresholds"]
    if not isinstance(thresholds, dict) or set(thresholds) != {"hold", "deny"}:
        raise MalformedInput("alignment.thresholds must have exactly hold and deny")

    sequence = record["sequence"]
    if sequence["previous"] is not None:
        require_hex64(sequence["previous"], "sequence.previous")
    require_hex64(sequence["before"], "sequence.before")
    require_hex64(sequence["after"], "sequence.after")

    reasons = record["reasons"]
    if not isinstance(reasons, list) or not all(
        isinstance(r, dict) and set(r) == {"rule", "text"} for r in reasons
    ):
        raise MalformedInput("reasons must be a list of {rule, text} objects")


def _check_chain(
    auditor: RecordAuditor, index: int, record: dict, time: Any
) -> tuple[str, str] | None:
    """Return ``(rule, text)`` of the first chain problem, or None for a valid chain."""
    delegation = record["delegation"]
    hashes = tuple(delegation["chain"])
    certificates = []
    for value in hashes:
        found = auditor.certificates.get(value)
        if found is None:
            return (
                "chain.unknown",
                f"certificate {value} is in no earlier delegation "
                "record, so the chain cannot be checked",
            )
        certificates.append(found[1])

    chain = auditor.chain_cache.get(hashes)
    if chain is None:
        try:
            chain = verify_chain(certificates, auditor.anchors)
        except ChainInvalid as err:
            chain = err
        auditor.chain_cache[hashes] = chain
    if isinstance(chain, ChainInvalid):
        return chain.rule, str(chain)

    # The recorded facts must be the chain's.
    if delegation["root"] != chain.root or record["agent"] != chain.agent:
        auditor.report(
            "decision.delegation",
            index,
            f"decision {index} records root or agent "
            f"{shorten(delegation['root'])}/{record['agent']} that differ "
            f"from its chain's {shorten(chain.root)}/{chain.agent}",
        )
    auditor.roots.add(chain.root)
    try:
        check_window(chain, time)
    except ChainInvalid as err:
        return err.rule, str(err)
    anchors = auditor.anchors if auditor.anchors is not None else (chain.root,)
    revoked = find_revocation(chain, auditor.revocations, anchors)
    if revoked is not None:
        position, revocation = revoked
        return (
            "chain.revoked",
            f"link {position} ({revocation.certificate[:16]}...) "
            f"was revoked by record {revocation.index}",
        )
    return None


def _check_scope(auditor: RecordAuditor, index: int, record: dict) -> None:
    """An allow's recorded scope must be granted by every link and cover the tool."""
    delegation = record["delegation"]
    hashes = tuple(delegation["chain"])
    key = (hashes, canonicalize(delegation["scope"]))
    problem = auditor.scope_cache.get(key)
    if problem is None:
        chain: VerifiedChain = auditor.chain_cache[hashes]
        try:
            recorded = parse_scope(delegation["scope"], "delegation.scope")
        except MalformedInput as err:
            recorded, problem = (), str(err)
        for certificate in chain.certificates:
            if problem:
                break
            problem = scope_within(recorded, certificate.scope, strict=True) or ""
        auditor.scope_cache[key] = (problem, recorded)
    else:
        problem, recorded = problem
    if problem:
        auditor.report(
            "decision.scope",
            index,
            f"decision {index} records an effective scope the chain does "
            f"not grant: {problem}",
        )
    elif not any(capability.matches_tool(record["tool"]) for capability in recorded):
        auditor.report(
            "decision.scope",
            index,
            f"decision {index} allows tool {record['tool']!r}, which no "
            "capability of its effective scope names",
        )


def _check_alignment(
    auditor: RecordAuditor, index: int, record: dict, lifted: set[str]
) -> None:
    alignment = record["alignment"]
    score = alignment["score"]
    thresholds = alignment["thresholds"]
    if alignment.get("label") == "error" or score < thresholds["deny"]:
        auditor.report(
            "decision.alignment",
            index,
            f"decision {index} allows {record['tool']!r} with alignment "
            f"score {score} below the deny threshold {thresholds['deny']}",
        )
    elif score < thresholds["hold"] and "alignment" not in lifted:
        auditor.report(
            "decision.alignment",
            index,
            f"decision {index} allows {record['tool']!r} with alignment "
            f"score {score} below the hold threshold {thresholds['hold']}, "
            "and no approval lifted an alignment hold",
        )


def _check_approval(
    auditor: RecordAuditor, index: int, record: dict, time: Any
) -> set[str]:
    """Check the decision's approval member; return the rules an allow lifted."""
    member = record.get("approval")
    allow = record["verdict"] == "allow"
    cites_rule = any(reason["rule"] == "approval" for reason in record["reasons"])
    if member is None:
        if allow and cites_rule:
            auditor.report(
                "decision.approval",
                index,
                f"decision {index} gives an approval reason but cites no "
                "approval request",
            )
        return set()
    if (
        not isinstance(member, dict)
        or set(member) != {"request", "approvals"}
        or (not isinstance(member["approvals"], list))
    ):
        raise MalformedInput("approval must have exactly request and approvals")

    found = auditor.requests.get(member["request"])
    if found is None:
        auditor.report(
            "decision.approval",
            index,
            f"decision {index} cites approval request {member['request']}, "
            "which no earlier approval-request record has",
        )
        return set()
    request_index, request = found
    wrong = [
        name
        for name in ("session", "tool", "agent", "policy")
        if request[name] != record[name]
    ]
    if wrong:
        auditor.report(
            "decision.approval",
            index,
            f"decision {index} cites request {request_index}, whose "
            f"{', '.join(wrong)} differ from the decision's",
        )
    if not allow:
        return set()

    # An allow uses the request once, before it expires, with a quorum.
    if not cites_rule:
        auditor.report(
            "decision.approval",
            index,
            f"decision {index} is lifted by request {request_index} but "
            "gives no reason of rule 'approval'",
        )
    used = auditor.used_requests.get(member["request"])
    if used is not None:
        auditor.report(
            "approval.reused",
            index,
            f"decision {index} uses approval request {request_index} a "
            f"second time; decision {used} used it already",
        )
    auditor.used_requests.setdefault(member["request"], index)
    if parse_time(request["expiry"], "request expiry") <= time:
        auditor.report(
            "approval.expired",
            index,
            f"decision {index} uses request {request_index} after it "
            f"expired at {request['expiry']}",
        )

    approvers = set()
    for item in member["approvals"]:
        approval_index = item.get("index") if isinstance(item, dict) else None
        approval = auditor.approvals.get(approval_index)
        if approval is None or approval.id != item.get("id"):
            auditor.report(
                "decision.approval",
                index,
                f"decision {index} cites approval {shorten(item)}, which is "
                "not an earlier approval record",
            )
            continue
        if not approval.valid or approval.request != member["request"]:
            auditor.report(
                "decision.approval",
                index,
                f"decision {index} counts approval {approval_index}, which "
                "is invalid or for another request",
            )
        elif approval.verdict != "approve":
            auditor.report(
                "decision.approval",
                index,
                f"decision {index} counts the denial {approval_index} as an approval",
            )
        elif approval.expiry <= time:
            auditor.report(
                "approval.expired",
                index,
                f"decision {index} counts approval {approval_index}, which had expired",
            )
        else:
            approvers.add(approval.approver)
    if len(approvers) < request["quorum"]:
        auditor.report(
            "approval.quorum",
            index,
            f"decision {index} is allowed with {len(approvers)} valid "
            f"approvals from distinct keys; request {request_index} needs "
            f"{request['quorum']}",
        )
    return set(request["rules"])
