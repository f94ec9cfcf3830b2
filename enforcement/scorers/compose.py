"""Scorers built from other scorers: ``AllOf`` and ``Weighted``.

``AllOf`` scores a call by its lowest member score, so every member must
find the call aligned; use it to add a model-based check to the
deterministic ``DefaultScorer`` without weakening it. ``Weighted`` averages
its members with fixed weights, so a high score from one member can make up
for a low score from another.

Both fail closed. An empty composition raises ``ConfigError`` at
construction instead of scoring 1, and a member that raises, or returns
anything but an ``AlignmentResult`` with a score in [0, 1], makes the
composite raise ``ScoringError``, which the gate turns into a deny.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from enforcement.alignment import AlignmentResult, Scorer, ScoringContext, label_for
from enforcement.errors import ConfigError
from enforcement.scorers.errors import ScoringError

logger = logging.getLogger(__name__)

# How far the weights of a Weighted composition may sum from 1, to allow for
# decimal fractions such as 0.1 + 0.2 that binary floats cannot hold exactly.
WEIGHT_SUM_TOLERANCE = 1e-9


class AllOf:
    """Score a call by the minimum of its members' scores.

    The label follows from that minimum and the context's thresholds. The
    reasons list each member's score, then that member's own reasons, each
    prefixed with the member's name.
    """

    def __init__(self, *scorers: Scorer) -> None:
        if len(scorers) == 1 and _is_iterable_of_scorers(scorers[0]):
            raise ConfigError(
                "AllOf takes scorers as separate arguments, got one "
                f"{type(scorers[0]).__name__}; write AllOf(*scorers)"
            )
        self.members: tuple[Scorer, ...] = _checked_members("AllOf", scorers)
        self.name = f"all-of({','.join(s.name for s in self.members)})"
        self.version = _member_versions(self.members)

    def score(self, context: ScoringContext) -> AlignmentResult:
        results = [_member_result(self.name, member, context)
                   for member in self.members]
        score = min(result.score for result in results)
        label = label_for(score, context.hold_below, context.deny_below)
        return AlignmentResult(self.name, self.version, score, label,
                               _member_reasons(self.members, results))


class Weighted:
    """Score a call by the weighted mean of its members' scores.

    ``members`` is a sequence of ``(scorer, weight)`` pairs. Every weight
    must be a positive finite number, and the weights must sum to 1 within
    ``WEIGHT_SUM_TOLERANCE``.
    """

    def __init__(self, members: Iterable[tuple[Scorer, float]]) -> None:
        if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
            raise ConfigError(
                f"Weighted takes a list of (scorer, weight) pairs, got "
                f"{type(members).__name__}"
            )
        pairs = list(members)
        for position, pair in enumerate(pairs):
            if not isinstance(pair, Sequence) or isinstance(pair, (str, bytes)) or (
                len(pair) != 2
            ):
                raise ConfigError(
                    f"Weighted member {position} must be a (scorer, weight) pair, "
                    f"got {pair!r}"
                )
        scorers = _checked_members("Weighted", [scorer for scorer, _ in pairs])
        weights = tuple(_checked_weight(scorer, weight) for scorer, weight in pairs)
        weighted = tuple(zip(scorers, weights, strict=True))
        total = math.fsum(weights)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            listed = ", ".join(f"{s.name} {w:g}" for s, w in weighted)
            raise ConfigError(
                f"Weighted weights must sum to 1, got {total:.12g} ({listed}); "
                f"scale them so that they add up to 1"
            )
        self.members = scorers
        self.weights = weights
        self.name = "weighted({})".format(
            ",".join(f"{s.name}*{w:g}" for s, w in weighted)
        )
        self.version = _member_versions(scorers)

    def score(self, context: ScoringContext) -> AlignmentResult:
        results = [_member_result(self.name, member, context)
                   for member in self.members]
        pairs = zip(self.weights, results, strict=True)
        mean = math.fsum(weight * result.score for weight, result in pairs)
        score = round(min(1.0, max(0.0, mean)), 4)
        label = label_for(score, context.hold_below, context.deny_below)
        return AlignmentResult(self.name, self.version, score, label,
                               _member_reasons(self.members, results))


def _checked_members(kind: str, scorers: Sequence[Any]) -> tuple[Scorer, ...]:
    if not scorers:
        raise ConfigError(
            f"{kind} needs at least one scorer; an empty composition would have "
            f"no score to give"
        )
    for position, scorer in enumerate(scorers):
        if not isinstance(scorer, Scorer):
            raise ConfigError(
                f"{kind} member {position} must be a scorer with name, version "
                f"and score(), got {scorer!r}"
            )
        for attribute in ("name", "version"):
            value = getattr(scorer, attribute)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{kind} member {position} has {attribute} {value!r}; it must "
                    f"be a non-empty string"
                )
    return tuple(scorers)


def _checked_weight(scorer: Scorer, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
        math.isfinite(weight) and weight > 0
    ):
        raise ConfigError(
            f"the weight of scorer {scorer.name} must be a positive number, got "
            f"{weight!r}"
        )
    return float(weight)


def _member_versions(scorers: Sequence[Scorer]) -> str:
    return ",".join(f"{s.name}={s.version}" for s in scorers)


def _member_result(composite: str, member: Scorer,
                   context: ScoringContext) -> AlignmentResult:
    """Return a member's result, or raise ``ScoringError`` naming the member."""
    try:
        result = member.score(context)
    except Exception as err:
        logger.warning("member %s of %s raised %r", member.name, composite, err)
        raise ScoringError(
            f"member {member.name} of {composite} raised "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(result, AlignmentResult):
        raise ScoringError(
            f"member {member.name} of {composite} returned a "
            f"{type(result).__name__}, expected an AlignmentResult"
        )
    score = result.score
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not (
        0.0 <= score <= 1.0
    ):
        raise ScoringError(
            f"member {member.name} of {composite} returned score {score!r}, "
            f"expected a number in [0, 1]"
        )
    if not all(isinstance(reason, str) for reason in result.reasons):
        raise ScoringError(
            f"member {member.name} of {composite} returned reasons "
            f"{result.reasons!r}, expected strings"
        )
    return result


def _member_reasons(members: Sequence[Scorer],
                    results: Sequence[AlignmentResult]) -> tuple[str, ...]:
    reasons: list[str] = []
    for member, result in zip(members, results, strict=True):
        reasons.append(f"{member.name}: score {result.score:.4g} ({result.label})")
        reasons.extend(f"{member.name}: {reason}" for reason in result.reasons)
    return tuple(reasons)


def _is_iterable_of_scorers(value: Any) -> bool:
    return (isinstance(value, (list, tuple))
            and all(isinstance(item, Scorer) for item in value))
