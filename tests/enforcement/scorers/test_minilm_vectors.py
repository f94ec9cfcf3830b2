"""The numpy MiniLM encoder against reference embeddings from
sentence-transformers (tests/vectors/minilm/reference.json).

Bounds: every embedding must have cosine similarity at least 0.9999 with the
reference and differ from it by at most 1e-5 in any component. On the
machine that wrote the vectors the encoder reached a cosine of
1 - 1.1e-7 and a maximum difference of 3.2e-7; the bound leaves room for
other BLAS builds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enforcement.errors import ConfigError

np = pytest.importorskip(
    "numpy", reason="needs the embedding extra: pip install "
                    "'agentgate-runtime[embedding]'")
pytest.importorskip("safetensors", reason="needs the embedding extra")
pytest.importorskip("tokenizers", reason="needs the embedding extra")

from enforcement.scorers._minilm import SentenceEncoder  # noqa: E402
from enforcement.scorers.embedding import find_model_directory  # noqa: E402

REFERENCE = Path(__file__).parents[2] / "vectors" / "minilm" / "reference.json"
MIN_COSINE = 0.9999
MAX_ABS_DIFF = 1e-5
CASES = json.loads(REFERENCE.read_text(encoding="utf-8"))["cases"]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    try:
        directory = find_model_directory()
    except ConfigError as err:
        pytest.skip(f"the MiniLM model is not installed: {err}")
    return SentenceEncoder(directory)


def case_id(case: dict) -> str:
    text = case["text"]
    return repr(text[:30]) + (f"+{len(text) - 30}" if len(text) > 30 else "")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_token_ids_match_reference(encoder, case):
    assert list(encoder.token_ids(case["text"])) == case["input_ids"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_embedding_matches_reference(encoder, case):
    (vector,) = encoder.encode([case["text"]])
    reference = np.array(case["embedding"], dtype=np.float64)

    cosine = float(vector @ reference / np.linalg.norm(reference))
    difference = float(np.abs(vector - reference).max())
    assert cosine >= MIN_COSINE, f"cosine {cosine}"
    assert difference <= MAX_ABS_DIFF, f"max abs difference {difference}"


def test_batch_with_padding_matches_reference(encoder):
    # One batch pads every text to the longest; the attention mask must keep
    # the padding out of attention and pooling.
    vectors = encoder.encode([case["text"] for case in CASES])
    references = np.array([case["embedding"] for case in CASES])

    assert vectors.shape == (len(CASES), 384)
    assert float(np.abs(vectors - references).max()) <= MAX_ABS_DIFF


def test_reference_covers_truncation():
    lengths = [len(case["input_ids"]) for case in CASES]

    assert max(lengths) == 256
    assert any(128 < length < 256 for length in lengths)
    assert min(lengths) == 2


def test_embeddings_unit_length(encoder):
    vectors = encoder.encode(["a", "", "send money to Bob"])

    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_empty_batch_gives_empty_matrix(encoder):
    assert encoder.encode([]).shape == (0, 384)


def test_bad_token_ids_rejected(encoder):
    with pytest.raises(ValueError, match=r"token sequences must hold 1 to 256 ids"):
        encoder.encode_ids([[]])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 30522\)"):
        encoder.encode_ids([[101, 40000, 102]])
