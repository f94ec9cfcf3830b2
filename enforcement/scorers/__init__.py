"""Pluggable alignment scorers for the gate.

- ``AllOf`` and ``Weighted`` combine scorers (``compose``);
- ``EmbeddingScorer`` compares the purpose and the action with a local
  sentence-embedding model (``embedding``; needs the ``embedding`` extra and
  the model package);
- ``LlmJudgeScorer`` asks an OpenAI-compatible chat completions endpoint
  (``llm_judge``; needs the ``llm-judge`` extra).

Importing this package needs none of the extras: the optional libraries are
imported when a scorer that uses them is built, and a missing one raises
``ConfigError`` with the install command.

    from enforcement import DefaultScorer
    from enforcement.scorers import AllOf, EmbeddingScorer

    gate = Gate(..., scorer=AllOf(DefaultScorer(), EmbeddingScorer()))
"""

from enforcement.scorers.compose import AllOf, Weighted
from enforcement.scorers.embedding import (
    Anchors,
    EmbeddingScorer,
    describe_action,
    find_model_directory,
)
from enforcement.scorers.errors import JudgeError, ScoringError
from enforcement.scorers.llm_judge import (
    SYSTEM_PROMPT,
    JudgeConfig,
    LlmJudgeScorer,
    parse_verdict,
)

__all__ = [
    "SYSTEM_PROMPT",
    "AllOf",
    "Anchors",
    "EmbeddingScorer",
    "JudgeConfig",
    "JudgeError",
    "LlmJudgeScorer",
    "ScoringError",
    "Weighted",
    "describe_action",
    "find_model_directory",
    "parse_verdict",
]
