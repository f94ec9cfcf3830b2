"""Composition: AllOf takes the minimum, Weighted the weighted mean; both
reject empty or malformed compositions and raise when a member fails."""

from __future__ import annotations

import math

import pytest

from enforcement.alignment import AlignmentResult, DefaultScorer
from enforcement.errors import ConfigError, Denied, Held
from enforcement.scorers import AllOf, ScoringError, Weighted
from tests.enforcement.scorers.conftest import Counter, FixedScorer, make_context

CONTEXT = make_context("check my balance", "get_balance", {})


# -- AllOf ----------------------------------------------------------------------


def test_all_of_takes_minimum():
    high = FixedScorer("high", 0.9, ("fits",))
    low = FixedScorer("low", 0.3, ("odd tool", "odd time"))

    result = AllOf(high, low).score(CONTEXT)

    assert result.score == 0.3
    assert result.label == "uncertain"
    assert result.scorer == "all-of(high,low)"
    assert result.version == "high=1,low=1"
    assert result.reasons == (
        "high: score 0.9 (aligned)",
        "high: fits",
        "low: score 0.3 (aligned)",
        "low: odd tool",
        "low: odd time",
    )


def test_all_of_label_follows_thresholds():
    result = AllOf(FixedScorer("a", 0.1), FixedScorer("b", 1.0)).score(CONTEXT)

    assert result.score == 0.1
    assert result.label == "misaligned"


def test_all_of_single_member():
    result = AllOf(FixedScorer("only", 0.7)).score(CONTEXT)

    assert result.score == 0.7
    assert result.label == "aligned"
    assert result.scorer == "all-of(only)"


def test_all_of_empty_rejected():
    with pytest.raises(ConfigError, match="AllOf needs at least one scorer"):
        AllOf()


def test_all_of_list_argument_rejected():
    with pytest.raises(ConfigError, match=r"write AllOf\(\*scorers\)"):
        AllOf([FixedScorer("a", 1.0)])


@pytest.mark.parametrize(("member", "message"), [
    (object(), "AllOf member 1 must be a scorer with name, version and score()"),
    (FixedScorer("", 1.0), "AllOf member 1 has name ''; it must be a non-empty"),
])
def test_all_of_bad_member_rejected(member, message):
    with pytest.raises(ConfigError) as caught:
        AllOf(DefaultScorer(), member)
    assert str(caught.value).startswith(message)


def test_all_of_member_raising_raises():
    failing = FixedScorer("judge", RuntimeError("model offline"))
    composite = AllOf(FixedScorer("high", 1.0), failing)

    with pytest.raises(ScoringError) as caught:
        composite.score(CONTEXT)

    assert str(caught.value) == (
        "member judge of all-of(high,judge) raised RuntimeError: model offline"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_all_of_stops_at_first_failure():
    # The first failure decides, so later members are not asked for a score
    # that would be thrown away.
    first = FixedScorer("first", ValueError("bad"))
    second = FixedScorer("second", 1.0)

    with pytest.raises(ScoringError, match="member first of"):
        AllOf(first, second).score(CONTEXT)
    assert second.calls == 0


@pytest.mark.parametrize(("result", "message"), [
    ({"score": 1.0}, "returned a dict, expected an AlignmentResult"),
    (AlignmentResult("x", "1", 1.5, "aligned", ()),
     r"returned score 1\.5, expected a number in \[0, 1\]"),
    (AlignmentResult("x", "1", -0.2, "aligned", ()), r"returned score -0\.2"),
    (AlignmentResult("x", "1", math.nan, "aligned", ()), r"returned score nan"),
    (AlignmentResult("x", "1", True, "aligned", ()), r"returned score True"),
    (AlignmentResult("x", "1", "0.5", "aligned", ()), r"returned score '0\.5'"),
    (AlignmentResult("x", "1", 0.5, "aligned", (3,)),
     r"returned reasons \(3,\), expected strings"),
])
def test_all_of_member_bad_result_raises(result, message):
    composite = AllOf(FixedScorer("odd", result))

    with pytest.raises(ScoringError, match=message):
        composite.score(CONTEXT)


# -- Weighted -------------------------------------------------------------------


def test_weighted_takes_weighted_mean():
    composite = Weighted([(FixedScorer("a", 1.0, ("fine",)), 0.75),
                          (FixedScorer("b", 0.2), 0.25)])

    result = composite.score(CONTEXT)

    assert result.score == 0.8
    assert result.label == "aligned"
    assert result.scorer == "weighted(a*0.75,b*0.25)"
    assert result.version == "a=1,b=1"
    assert result.reasons == ("a: score 1 (aligned)", "a: fine",
                              "b: score 0.2 (aligned)")


def test_weighted_decimal_weights_accepted():
    composite = Weighted([(FixedScorer("a", 1.0), 0.1), (FixedScorer("b", 1.0), 0.2),
                          (FixedScorer("c", 0.0), 0.7)])

    assert composite.score(CONTEXT).score == 0.3


def test_weighted_empty_rejected():
    with pytest.raises(ConfigError, match="Weighted needs at least one scorer"):
        Weighted([])


@pytest.mark.parametrize(("weights", "message"), [
    ((0.5, 0.4), r"weights must sum to 1, got 0\.9 \(a 0\.5, b 0\.4\); scale"),
    ((0.7, 0.7), r"weights must sum to 1, got 1\.4"),
    ((1.0, 0.0), r"the weight of scorer b must be a positive number, got 0\.0"),
    ((1.5, -0.5), r"the weight of scorer b must be a positive number, got -0\.5"),
    ((math.nan, 1.0), r"the weight of scorer a must be a positive number, got nan"),
    ((math.inf, 1.0), r"the weight of scorer a must be a positive number, got inf"),
    ((True, 0.0), r"the weight of scorer a must be a positive number, got True"),
    (("0.5", 0.5), r"the weight of scorer a must be a positive number, got '0\.5'"),
])
def test_weighted_bad_weights_rejected(weights, message):
    pairs = [(FixedScorer("a", 1.0), weights[0]), (FixedScorer("b", 1.0), weights[1])]

    with pytest.raises(ConfigError, match=message):
        Weighted(pairs)


@pytest.mark.parametrize(("members", "message"), [
    ("default", "Weighted takes a list of (scorer, weight) pairs, got str"),
    ([DefaultScorer()], "Weighted member 0 must be a (scorer, weight) pair"),
    ([(DefaultScorer(), 0.5, 0.5)], "Weighted member 0 must be a (scorer, weight)"),
    ([(object(), 1.0)], "Weighted member 0 must be a scorer with name, version"),
])
def test_weighted_malformed_members_rejected(members, message):
    with pytest.raises(ConfigError) as caught:
        Weighted(members)
    assert str(caught.value).startswith(message)


def test_weighted_member_raising_raises():
    composite = Weighted([(FixedScorer("a", 1.0), 0.5),
                          (FixedScorer("b", TimeoutError("slow")), 0.5)])

    with pytest.raises(ScoringError, match=r"^member b of weighted\(a\*0\.5,b\*0\.5\) "
                                           r"raised TimeoutError: slow$"):
        composite.score(CONTEXT)


# -- through a gate -------------------------------------------------------------


def test_gate_all_of_allows_aligned_call(deploy):
    deployment = deploy(AllOf(DefaultScorer(), FixedScorer("model", 0.8)))
    tool = Counter({"balance": 10})

    session = deployment.gate.session("check my balance")
    assert session.call("get_balance", {}, tool) == {"balance": 10}

    assert tool.runs == 1
    alignment = session.decisions[-1].record["alignment"]
    assert alignment["scorer"] == "all-of(default,model)"
    assert alignment["version"] == "default=1,model=1"
    assert alignment["score"] == 0.8
    assert alignment["reasons"] == ["default: score 1 (aligned)",
                                    "model: score 0.8 (aligned)"]


def test_gate_all_of_low_member_holds(deploy):
    deployment = deploy(AllOf(DefaultScorer(),
                              FixedScorer("model", 0.3, ("unusual tool",))))
    tool = Counter()

    session = deployment.gate.session("check my balance")
    with pytest.raises(Held) as caught:
        session.call("get_balance", {}, tool)

    assert tool.runs == 0
    (reason,) = caught.value.reasons
    assert reason.rule == "alignment"
    assert reason.text == (
        "score 0.30 is below the hold threshold 0.5: default: score 1 (aligned); "
        "model: score 0.3 (aligned); model: unusual tool"
    )


def test_gate_failing_member_denies(deploy):
    deployment = deploy(AllOf(DefaultScorer(),
                              FixedScorer("model", RuntimeError("model offline"))))
    tool = Counter()

    session = deployment.gate.session("check my balance")
    with pytest.raises(Denied) as caught:
        session.call("get_balance", {}, tool)

    assert tool.runs == 0
    (reason,) = caught.value.reasons
    assert reason.text == (
        "score 0.00 is below the deny threshold 0.15: scorer raised ScoringError: "
        "member model of all-of(default,model) raised RuntimeError: model offline"
    )
    alignment = session.decisions[-1].record["alignment"]
    assert alignment["label"] == "error"
    assert alignment["scorer"] == "all-of(default,model)"


def test_gate_weighted_decides(deploy):
    deployment = deploy(Weighted([(DefaultScorer(), 0.5),
                                  (FixedScorer("model", 0.0), 0.5)]))

    session = deployment.gate.session("check my balance")
    session.call("get_balance", {}, Counter())

    alignment = session.decisions[-1].record["alignment"]
    assert alignment["scorer"] == "weighted(default*0.5,model*0.5)"
    assert alignment["score"] == 0.5
    assert alignment["label"] == "aligned"
