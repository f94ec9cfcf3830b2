"""Every decision that depends on time takes the time as a parameter.

The places where time matters, and the parameter each one takes:

| place | parameter |
|---|---|
| certificate validity | ``ChainVerifier.verify(chain, now)``; the gate's ``clock`` |
| approval expiry | ``check_approval(..., now)``; the gate's ``clock`` |
| rate windows | ``Windows.total(key, now, window)``; the gate's ``clock`` |
| record and key record times | ``Ledger.open(now=...)``, ``add_key(now=...)`` |
| checkpoint cosignature times | ``verify_cosignatures(..., now=...)`` |
| witness timestamps | ``Witness(clock=...)`` |

Each test freezes the time, checks the behaviour just before and at the
boundary, and never reads the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enforcement.approvals import check_approval, sign_approval
from enforcement.delegation import ChainVerifier
from enforcement.errors import ApprovalError, ApprovalRequired, DelegationError
from enforcement.windows import Windows
from ledger import Ledger, Signer
from ledger.note import sign_checkpoint
from tests.enforcement.conftest import (  # noqa: F401 - fixtures
    T0,
    agent,
    clock,
    issue,
    make_harness,
    principal,
)
from tests.enforcement.test_approvals import (
    ALICE,
    LARGE,
    RENT,
    Counter,
    approvals_policy,
)
from verifier import Cosigner, VerificationError
from verifier.cosignature import (
    generate_cosigner,
    parse_cosigner_key,
    parse_cosigner_signer_key,
    verify_cosignatures,
)
from verifier.note import parse_verifier_key
from verifier.witness import Witness, WitnessState

ORIGIN = "agentgate.test/frozen-time"


# -- certificate validity ---------------------------------------------------------


def test_certificate_valid_until_not_after(principal, agent):
    start, end = T0, T0 + timedelta(hours=1)
    certificate = issue(principal, agent, start=start, end=end)
    chains = ChainVerifier([principal.verifier_key])

    chains.verify([certificate], start)
    chains.verify([certificate], end - timedelta(microseconds=1))
    with pytest.raises(DelegationError, match="now is"):
        chains.verify([certificate], end)
    with pytest.raises(DelegationError, match="now is"):
        chains.verify([certificate], start - timedelta(microseconds=1))


def test_gate_uses_its_clock_for_certificates(make_harness, clock):
    harness = make_harness()
    # The harness's certificate ends one day after T0.
    clock.now = T0 + timedelta(days=1) - timedelta(seconds=1)
    with harness.gate.session(RENT) as session:
        assert session.decide("get_balance", {}).verdict == "allow"
        clock.advance(1)
        assert session.decide("get_balance", {}).verdict == "deny"


# -- approval expiry --------------------------------------------------------------


def test_approval_counts_until_expiry(make_harness, clock):
    harness = make_harness(policy=approvals_policy())
    with harness.gate.session(RENT) as session:
        with pytest.raises(ApprovalRequired) as held:
            session.call("send_money", LARGE, Counter())
    store = harness.gate.approval_store
    request = store.request(held.value.request)
    expiry = clock() + timedelta(seconds=60)
    approval = sign_approval(ALICE, request, "approve", clock(), expiry)
    approvers = [ALICE.verifier_key]

    check_approval(approval, request, approvers, expiry - timedelta(microseconds=1))
    with pytest.raises(ApprovalError, match="expired at"):
        check_approval(approval, request, approvers, expiry)


# -- rate windows -----------------------------------------------------------------


def test_rate_window_boundary():
    """An event at moment m counts in (now - window, now], so not at m + window."""
    windows = Windows(horizon=60)
    windows.add("agent:a", 1000.0)

    assert windows.total("agent:a", 1000.0, 60) == 1
    assert windows.total("agent:a", 1059.999, 60) == 1
    assert windows.total("agent:a", 1060.0, 60) == 0


def test_gate_rate_limit_uses_its_clock(make_harness, clock):
    """The session rate limit opens again exactly one window after the calls."""
    harness = make_harness()
    rule = next(r for r in harness.gate.policy.rules if r.id == "limit.session-rate")
    with harness.gate.session(RENT) as session:
        for _ in range(rule.limit):
            assert session.decide("get_balance", {}).verdict == "allow"
        assert session.decide("get_balance", {}).verdict != "allow"
        clock.advance(rule.window_seconds - 0.001)
        assert session.decide("get_balance", {}).verdict != "allow"
        clock.advance(0.001)
        assert session.decide("get_balance", {}).verdict == "allow"


# -- record times -----------------------------------------------------------------


def test_key_record_time_is_the_given_now(tmp_path):
    signer = Signer.from_seed(ORIGIN, bytes(32))
    frozen = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    with Ledger.open(str(tmp_path / "log.db"), signer, now=frozen) as ledger:
        first = ledger.entries(0, 1)[0]
        with pytest.raises(Exception, match="time zone"):
            ledger.add_key(Signer.from_seed(ORIGIN, bytes(range(32))),
                           now=frozen.replace(tzinfo=None))

    assert b'"2030-01-02T03:04:05.678901Z"' in first


# -- cosignature and witness timestamps -------------------------------------------


def _cosigned(timestamp: int) -> tuple[str, str]:
    """Return a checkpoint cosigned at ``timestamp`` and the cosigner's key."""
    signer_key, verifier_key = generate_cosigner("witness.test/frozen")
    cosigner: Cosigner = parse_cosigner_signer_key(signer_key)
    checkpoint = sign_checkpoint(ORIGIN, 1, bytes(32),
                                 [Signer.from_seed(ORIGIN, bytes(32))])
    text = checkpoint.note.split("\n\n", 1)[0] + "\n"
    return checkpoint.note + cosigner.cosign(text, timestamp), verifier_key


def test_cosignature_from_future_rejected():
    note, key = _cosigned(2_000_000_000)
    keys = [parse_cosigner_key(key)]
    skew = 300

    verify_cosignatures(note, keys, now=2_000_000_000 - skew, max_skew=skew)
    with pytest.raises(VerificationError, match="future"):
        verify_cosignatures(note, keys, now=2_000_000_000 - skew - 1, max_skew=skew)


def test_witness_timestamps_from_its_clock(tmp_path):
    signer_key, verifier_key = generate_cosigner("witness.test/frozen")
    log_signer = Signer.from_seed(ORIGIN, bytes(32))
    witness = Witness(parse_cosigner_signer_key(signer_key),
                      {ORIGIN: [parse_verifier_key(str(log_signer.verifier_key))]},
                      WitnessState(tmp_path / "state.json"),
                      clock=lambda: 1_234_567_890.75)
    checkpoint = sign_checkpoint(ORIGIN, 1, bytes(32), [log_signer])

    answer = witness.add_checkpoint(f"old 0\n\n{checkpoint.note}".encode())

    assert answer.status == 200, answer.body
    cosigned = checkpoint.note + answer.body.decode()
    lines = verify_cosignatures(cosigned, [parse_cosigner_key(verifier_key)])
    assert [line.timestamp for line in lines] == [1_234_567_890]
