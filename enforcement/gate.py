"""The gate: decide, seal, verify the receipt, and only then run the tool.

``Gate`` keeps what is shared (the ledger client, the pinned log key, the
policy, the trust anchors, the scorer); ``Session`` is one agent's run
towards one declared purpose. ``Session.call`` is the whole pipeline:

1. validate the request;
2. verify the delegation chain and check the call against its scope;
3. score alignment with the purpose;
4. evaluate the sequence rules;
5. take the strictest verdict;
6. seal the decision record in the log;
7. verify the receipt with the independent verifier against the pinned log
   key, and check that the proved entry is the record that was sent;
8. run the tool only for a verified allow, else raise ``Denied`` or ``Held``;
9. seal the outcome, linked to the decision.

Any exception in steps 1-7 means the tool does not run. There is no switch to
let a call through when the ledger cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import hmac
import inspect
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import verifier
from enforcement import jcs
from enforcement.alignment import (
    AlignmentResult,
    DefaultScorer,
    Purpose,
    Scorer,
    ScoringContext,
    checked_values,
    label_for,
)
from enforcement.delegation import Certificate, ChainVerifier
from enforcement.errors import (
    ConfigError,
    DelegationError,
    Denied,
    GateError,
    Held,
    InvalidRequest,
    NoSession,
    Reason,
    SealError,
)
from enforcement.identity import parse_verifier_key
from enforcement.logview import LogView
from enforcement.policy import Policy
from enforcement.profiles import ToolProfile, derive_profile, profile_from_function
from enforcement.provenance import Provenance, to_plain
from enforcement.records import (
    Decision,
    decision_record,
    delegation_record,
    leaf_hash,
    new_id,
    outcome_record,
    policy_record,
)
from enforcement.sequence import CallFacts, SequenceEngine, SessionState, strictest
from enforcement.timeutil import utc_now
from enforcement.vault import ArgumentVault

logger = logging.getLogger(__name__)

_current_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "agentgate_session", default=None
)
# The reset tokens of the sessions entered in the current context, innermost
# last. They live in a context variable, not on the session, because threads
# and asyncio tasks may enter the same session at once, and a token can only
# be reset in the context that created it.
_entered_tokens: contextvars.ContextVar[tuple[contextvars.Token, ...]] = (
    contextvars.ContextVar("agentgate_session_tokens", default=())
)


class Sealed:
    """A record the gate sealed and whose receipt it verified."""

    def __init__(self, entry: bytes, receipt: Any, verified: Any) -> None:
        self.entry = entry
        self.receipt = receipt
        self.verified = verified
        self.index: int = verified.index
        self.leaf_hash = leaf_hash(entry)


class Gate:
    """Authorizes tool calls and seals every decision into the log."""

    def __init__(
        self,
        ledger: Any,
        log_key: str | Sequence[str],
        policy: Policy,
        trust_anchors: Iterable[str],
        *,
        origin: str | None = None,
        scorer: Scorer | None = None,
        vault: ArgumentVault | None = None,
        clock: Callable[[], datetime] = utc_now,
        default_chain: Sequence[Certificate] = (),
        on_seal: Callable[[Sealed], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._view = LogView(ledger)
        self._on_seal = on_seal
        keys = [log_key] if isinstance(log_key, str) else list(log_key)
        if not keys:
            raise ConfigError("pin at least one log verifier key")
        for key in keys:
            parse_verifier_key(key)
        self._log_keys = keys
        self._origin = origin or getattr(ledger, "origin", None)
        if not self._origin:
            raise ConfigError("the log origin is unknown; pass origin=")
        self.policy = policy
        self._chains = ChainVerifier(trust_anchors)
        self._scorer = scorer or DefaultScorer()
        if not isinstance(self._scorer, Scorer):
            raise ConfigError(
                f"scorer {self._scorer!r} lacks name, version or score()"
            )
        self._vault = vault or ArgumentVault()
        if clock().tzinfo is None:
            raise ConfigError(
                "the clock returned a time without a time zone; return an aware "
                "datetime such as datetime.now(UTC)"
            )
        self._clock = clock
        self._engine = SequenceEngine(policy.rules)
        self._profiles: dict[str, ToolProfile] = {}
        self._profiles_lock = threading.Lock()
        self.default_chain = tuple(default_chain)
        self.policy_hash = policy.hash
        sealed = self.seal_record(
            policy_record(policy.document(), self.policy_hash, self._clock())
        )
        self.policy_index = sealed.index
        logger.info("gate started under policy %s (leaf %d)", self.policy_hash,
                    sealed.index)

    # -- set-up ---------------------------------------------------------------

    def register_tool(
        self,
        name: str,
        *,
        func: Callable | None = None,
        arguments: Iterable[str] = (),
        description: str = "",
        profile: ToolProfile | None = None,
    ) -> ToolProfile:
        """Register a tool's profile: given, or derived and then overridden."""
        if profile is None:
            if func is not None:
                profile = profile_from_function(func, name)
            else:
                profile = derive_profile(name, arguments, description)
        profile = self._apply_overrides(profile)
        with self._profiles_lock:
            self._profiles[name] = profile
        return profile

    def profile_for(self, tool: str, arguments: Mapping[str, Any]) -> ToolProfile:
        with self._profiles_lock:
            profile = self._profiles.get(tool)
        if profile is not None:
            return profile
        return self._apply_overrides(derive_profile(tool, arguments))

    def _apply_overrides(self, profile: ToolProfile) -> ToolProfile:
        override = self.policy.profiles.get(profile.name)
        if override is None:
            return profile
        return profile.with_overrides(
            labels=frozenset(override.labels) if override.labels is not None else None,
            data_classes=(frozenset(override.data_classes)
                          if override.data_classes is not None else None),
            roles={**profile.roles, **override.roles} if override.roles else None,
            trusted_output=override.trusted_output,
        )

    def register_delegation(self, certificate: Certificate) -> Sealed:
        """Seal a delegation record so auditors see who delegated what to whom."""
        Certificate.from_json(certificate.to_json())
        return self.seal_record(
            delegation_record(certificate.to_json(), certificate.hash, self._clock())
        )

    def session(
        self,
        purpose: Purpose | str,
        chain: Sequence[Certificate] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Start a session of the agent at the end of ``chain`` for ``purpose``."""
        if isinstance(purpose, str):
            purpose = Purpose(purpose)
        chain = tuple(chain) if chain is not None else self.default_chain
        if not chain:
            raise ConfigError(
                "a session needs a delegation chain; pass chain= or give the gate "
                "a default_chain"
            )
        return Session(self, chain, purpose, session_id or f"s-{secrets.token_hex(8)}")

    # -- sealing ----------------------------------------------------------------

    def seal_record(self, record: dict[str, Any]) -> Sealed:
        """Append a record and verify its receipt; raise ``SealError`` on any fault."""
        entry = jcs.canonical(record)
        try:
            receipt = self._ledger.append(entry)
        except Exception as err:  # noqa: BLE001 - whatever failed, nothing runs
            raise SealError(f"the ledger did not seal {record['type']} record "
                            f"{record['id']}: {err}") from err
        try:
            verified = verifier.verify_receipt(
                receipt.text, self._log_keys, origin=self._origin
            )
        except verifier.VerificationError as err:
            raise SealError(
                f"the receipt for {record['id']} failed verification: {err}"
            ) from err
        except Exception as err:  # noqa: BLE001 - a malformed receipt object
            raise SealError(
                f"the receipt for {record['id']} could not be read: {err!r}"
            ) from err
        if not hmac.compare_digest(verified.entry, entry):
            raise SealError(
                f"the log proved an entry other than record {record['id']}"
            )
        if verified.index != receipt.index:
            raise SealError(
                f"receipt index {receipt.index} differs from the proved index "
                f"{verified.index}"
            )
        self._view.accept(verified.checkpoint)
        sealed = Sealed(entry, receipt, verified)
        if self._on_seal is not None:
            self._on_seal(sealed)
        return sealed

    # -- decorator --------------------------------------------------------------

    def guard(self, func: Callable | None = None, *, name: str | None = None,
              profile: ToolProfile | None = None):
        """Decorate a sync or async function so that every call passes the gate.

        The call must happen inside ``with gate.session(...)``; outside one it
        raises ``NoSession`` and the function does not run.
        """
        def wrap(function: Callable) -> Callable:
            tool = name or function.__name__
            self.register_tool(tool, func=function, profile=profile)
            signature = inspect.signature(function)

            if inspect.iscoroutinefunction(function):
                @functools.wraps(function)
                async def async_guarded(*args, **kwargs):
                    session = self._active_session(tool)
                    arguments = _bind(signature, args, kwargs)
                    return await session.acall(
                        tool, arguments, lambda: function(*args, **kwargs)
                    )
                return async_guarded

            @functools.wraps(function)
            def guarded(*args, **kwargs):
                session = self._active_session(tool)
                arguments = _bind(signature, args, kwargs)
                return session.call(tool, arguments, lambda: function(*args, **kwargs))
            return guarded

        return wrap(func) if func is not None else wrap

    def _active_session(self, tool: str) -> Session:
        session = _current_session.get()
        if session is None or session.gate is not self:
            raise NoSession(
                f"{tool} was called outside a session of this gate; wrap the "
                "agent's run in `with gate.session(purpose=...):`"
            )
        return session


def _bind(signature: inspect.Signature, args, kwargs) -> dict[str, Any]:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        raise InvalidRequest(
            f"arguments do not match the tool's signature: {err}"
        ) from err
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for parameter_name, value in bound.arguments.items():
        kind = signature.parameters[parameter_name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            items = dict(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            items = {parameter_name: list(value)}
        else:
            items = {parameter_name: value}
        # A keyword caught by **kwargs may share the name of a positional-only
        # parameter or of *args. Merged, one value would hide the other, and
        # the gate would judge a value the tool never receives.
        for name, item in items.items():
            if name in arguments:
                raise InvalidRequest(
                    f"argument {name!r} is passed twice (once to a parameter, once "
                    "through **kwargs); rename one of them"
                )
            arguments[name] = item
    return arguments


class Session:
    """One agent's run towards one declared purpose."""

    def __init__(self, gate: Gate, chain: Sequence[Certificate], purpose: Purpose,
                 session_id: str) -> None:
        self.gate = gate
        self.id = session_id
        self.purpose = purpose
        self._chain = tuple(chain)
        self._state = SessionState(session_id)
        self._provenance = Provenance(purpose.text, purpose.principal_values)
        self._lock = threading.RLock()
        self._previous: str | None = None
        self.decisions: list[Decision] = []

    # -- context ----------------------------------------------------------------

    def __enter__(self) -> Session:
        token = _current_session.set(self)
        _entered_tokens.set(_entered_tokens.get() + (token,))
        return self

    def __exit__(self, *exc_info) -> None:
        tokens = _entered_tokens.get()
        _entered_tokens.set(tokens[:-1])
        _current_session.reset(tokens[-1])

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(self, *exc_info) -> None:
        self.__exit__(*exc_info)

    # -- the pipeline -----------------------------------------------------------

    def call(self, tool: str, arguments: Mapping[str, Any],
             run: Callable[[], Any]) -> Any:
        """Decide, seal and verify; run ``run()`` only for a verified allow."""
        decision = self.decide(tool, arguments)
        _raise_unless_allowed(decision)
        started = time.perf_counter()
        try:
            result = run()
        except BaseException as err:
            # An interrupt or a cancellation ends the tool too; its outcome is
            # still sealed, and the tool's own exception is what propagates.
            self._seal_failure(decision, started, err)
            raise
        self._seal_outcome(decision, started, result=result)
        self.observe(tool, result)
        return result

    async def acall(self, tool: str, arguments: Mapping[str, Any],
                    run: Callable[[], Awaitable[Any]]) -> Any:
        """The async form of ``call``: sealing runs in a worker thread."""
        decision = await asyncio.to_thread(self.decide, tool, arguments)
        _raise_unless_allowed(decision)
        started = time.perf_counter()
        try:
            result = await run()
        except BaseException as err:
            # Sealing runs on the event loop here: a cancelled task cannot
            # await a worker thread.
            self._seal_failure(decision, started, err)
            raise
        await asyncio.to_thread(self._seal_outcome, decision, started, result=result)
        self.observe(tool, result)
        return result

    def observe(self, tool: str, output: Any) -> None:
        """Record a tool output for provenance (``call`` does this itself)."""
        profile = self.gate.profile_for(tool, {})
        with self._lock:
            self._provenance.observe(tool, output, trusted=profile.trusted_output)

    def decide(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        """Run steps 1-7 of the pipeline and return the sealed, verified decision."""
        gate = self.gate
        # 1. validate the request
        if not isinstance(tool, str) or not tool or len(tool) > 256:
            raise InvalidRequest(f"tool name must be a non-empty string, got {tool!r}")
        jcs.check_json_value(tool, path="tool")
        if not isinstance(arguments, Mapping):
            raise InvalidRequest(
                f"arguments must be a mapping of names to values, got "
                f"{type(arguments).__name__}"
            )
        arguments = dict(arguments)
        jcs.check_json_value(arguments, path="arguments")

        with self._lock:
            now = gate._clock()
            profile = gate.profile_for(tool, arguments)
            reasons: list[Reason] = []
            verdicts: list[str] = []

            # 2. delegation and scope
            chain_info = self._check_delegation(tool, arguments, now, reasons,
                                                verdicts)

            # 3. alignment
            alignment = self._score(profile, arguments, reasons, verdicts)

            # 4-5. sequence rules and the strictest verdict, atomically with
            # the state update so that concurrent calls respect limits exactly
            destinations = {
                argument: self._provenance.source_of(value)
                for argument, value in checked_values(
                    profile, arguments, self._provenance).items()
            }
            facts = CallFacts(
                agent=chain_info["agent"], session=self.id, profile=profile,
                arguments=arguments, destination_sources=destinations, now=now,
                names_destinations=bool(
                    profile.arguments_with_roles({"recipient", "url"})),
            )
            engine = gate._engine
            with engine.lock:
                before = self._state.digest
                firings = engine.evaluate(self._state, facts)
                for firing in firings:
                    reasons.append(Reason(firing.rule, firing.text))
                    verdicts.append(firing.verdict)
                verdict = strictest(verdicts)
                # NOTE: the state is committed before the record is sealed. If
                # sealing fails, the digest (and, for an allow, the rate
                # windows) has advanced with no record, so the next decision's
                # "before" does not match any sealed "after".
                after = engine.commit(self._state, facts, verdict)

            # 6. seal the decision
            record_id = new_id("decision")
            commitments = gate._vault.commit_values(record_id, arguments)
            record = decision_record(
                record_id=record_id,
                now=now,
                agent=chain_info["agent"],
                session=self.id,
                tool=tool,
                commitments=commitments,
                chain_hashes=chain_info["hashes"],
                root=chain_info["root"],
                scope=chain_info["scope"],
                alignment=alignment.to_json(gate.policy.alignment.hold_below,
                                            gate.policy.alignment.deny_below),
                sequence={
                    "previous": self._previous,
                    "before": before,
                    "after": after,
                    "fired": [f.rule for f in firings],
                    "counters": dict(self._state.counters),
                },
                policy_hash=gate.policy_hash,
                verdict=verdict,
                reasons=reasons,
            )
            # 7. the receipt is verified inside seal_record
            sealed = gate.seal_record(record)
            self._previous = sealed.leaf_hash

        decision = Decision(
            id=record_id, tool=tool, verdict=verdict, reasons=tuple(reasons),
            record=record, entry=sealed.entry, receipt=sealed.receipt,
            index=sealed.index, leaf_hash=sealed.leaf_hash, alignment=alignment,
        )
        self.decisions.append(decision)
        logger.debug("%s %s -> %s (leaf %d)", self.id, tool, verdict, sealed.index)
        return decision

    def _check_delegation(self, tool, arguments, now, reasons, verdicts) -> dict:
        try:
            chain = self.gate._chains.verify(self._chain, now)
        except (DelegationError, InvalidRequest, ConfigError) as err:
            rule = getattr(err, "rule", "delegation")
            reasons.append(Reason(rule, str(err)))
            verdicts.append("deny")
            return _refused_chain(self._chain)
        problems = chain.scope.check(tool, arguments)
        if problems:
            reasons.append(Reason("delegation.scope", "; ".join(problems)))
            verdicts.append("deny")
        return {"agent": chain.agent.key_id, "hashes": list(chain.hashes),
                "root": chain.root, "scope": chain.scope.to_json()}

    def _score(self, profile, arguments, reasons, verdicts) -> AlignmentResult:
        thresholds = self.gate.policy.alignment
        scorer = self.gate._scorer
        context = ScoringContext(
            purpose=self.purpose, profile=profile, arguments=arguments,
            provenance=self._provenance, hold_below=thresholds.hold_below,
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
        if label != "aligned":
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
            verdicts.append(verdict)
        return result

    def _seal_failure(self, decision: Decision, started: float,
                      error: BaseException) -> None:
        try:
            self._seal_outcome(decision, started, error=error)
        except Exception as seal_error:  # noqa: BLE001 - the tool's error wins
            logger.error("session %s: outcome of decision %s not sealed: %s",
                         self.id, decision.id, seal_error)

    def _seal_outcome(self, decision: Decision, started: float, *,
                      result: Any = None, error: BaseException | None = None) -> None:
        duration_ms = (time.perf_counter() - started) * 1000.0
        gate = self.gate
        if error is not None:
            value: Any = {"error": type(error).__name__}
        else:
            value = to_plain(result)
            try:
                jcs.check_json_value(value)
            except InvalidRequest:
                value = repr(result)
        with self._lock:
            record_id = new_id("outcome")
            commitment = gate._vault.commit_values(record_id, {"result": value})[
                "result"
            ]
            record = outcome_record(
                record_id=record_id,
                now=gate._clock(),
                session=self.id,
                decision_id=decision.id,
                decision_index=decision.index,
                status="error" if error is not None else "ok",
                error=type(error).__name__ if error is not None else None,
                duration_ms=duration_ms,
                result_commitment=commitment,
                previous=self._previous or "",
            )
            sealed = gate.seal_record(record)
            self._previous = sealed.leaf_hash


def _raise_unless_allowed(decision: Decision) -> None:
    if decision.verdict == "allow":
        return
    if decision.verdict == "hold":
        raise Held(decision)
    raise Denied(decision)


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
    result = dataclasses.replace(result, score=score, reasons=tuple(result.reasons))
    jcs.check_json_value(
        result.to_json(thresholds.hold_below, thresholds.deny_below), "alignment"
    )
    return result


def _refused_chain(chain: Sequence[Any]) -> dict[str, Any]:
    """Describe a chain that failed verification, trusting none of its fields.

    The deny is sealed even when a certificate lacks a field or contains a
    value that is not JSON. Each field is therefore read with a fallback: an
    empty hash list when a certificate cannot be hashed, and "" or "unknown"
    for a bad key.
    """
    try:
        hashes = [certificate.hash for certificate in chain]
    except (GateError, AttributeError, TypeError, ValueError):
        hashes = []
    root = _body_text(chain[0], "issuer") if chain else None
    subject = _body_text(chain[-1], "subject") if chain else None
    return {
        "agent": _key_id_or_unknown(subject),
        "hashes": hashes,
        "root": root if _key_id_or_unknown(root) != "unknown" else "",
        "scope": {"capabilities": []},
    }


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


