"""A numpy forward pass of a BERT sentence encoder such as all-MiniLM-L6-v2.

The model directory contains what sentence-transformers saves: ``config.json``
(the BERT sizes), ``tokenizer.json`` (WordPiece, read by the ``tokenizers``
package), ``model.safetensors`` (the weights) and, optionally,
``sentence_bert_config.json`` (``max_seq_length``) and
``1_Pooling/config.json`` (which must ask for mean pooling). An embedding is
the mean of the last layer's token vectors under the attention mask, scaled
to unit length, as sentence-transformers computes it.

This module imports numpy, safetensors and tokenizers, which the
``embedding`` extra installs; ``enforcement.scorers.embedding`` imports it
only when a scorer is built.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from enforcement.errors import ConfigError

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")
# sentence-transformers uses 256 tokens for all-MiniLM-L6-v2; a directory
# without sentence_bert_config.json gets the same.
DEFAULT_MAX_SEQ_LENGTH = 256
TOKEN_CACHE_SIZE = 4096


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT encoder, read from the model's ``config.json``."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        document = _read_json(path)
        # transformers' BertConfig defaults: a config without these members
        # means GELU and absolute positions, but model_type must be present.
        defaults = {"hidden_act": "gelu", "position_embedding_type": "absolute"}
        expected = {"model_type": "bert", **defaults}
        for key, value in expected.items():
            seen = document.get(key, defaults.get(key))
            if seen != value:
                raise ConfigError(
                    f"{path}: {key} must be {value!r} for this encoder, got {seen!r}"
                )
        try:
            config = cls(
                hidden_size=int(document["hidden_size"]),
                num_layers=int(document["num_hidden_layers"]),
                num_heads=int(document["num_attention_heads"]),
                intermediate_size=int(document["intermediate_size"]),
                max_positions=int(document["max_position_embeddings"]),
                layer_norm_eps=float(document.get("layer_norm_eps", 1e-12)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path}: missing or invalid BERT size: {err}") from err
        if config.hidden_size % config.num_heads:
            raise ConfigError(
                f"{path}: hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_heads}"
            )
        return config


@dataclass(frozen=True)
class _Layer:
    # Query, key and value projections side by side: one product, not three.
    query_key_value: tuple[np.ndarray, np.ndarray]
    attention_out: tuple[np.ndarray, np.ndarray]
    attention_norm: tuple[np.ndarray, np.ndarray]
    intermediate: tuple[np.ndarray, np.ndarray]
    output: tuple[np.ndarray, np.ndarray]
    output_norm: tuple[np.ndarray, np.ndarray]


class SentenceEncoder:
    """Encode texts into unit-length sentence embeddings, in numpy on the CPU.

    Thread-safe: the weights are read-only after loading and every call
    works on its own arrays.
    """

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
        if missing:
            raise ConfigError(
                f"model directory {directory} lacks {', '.join(missing)}; point it "
                f"at a sentence-transformers model folder"
            )
        self.directory = directory
        self.config = BertConfig.from_file(directory / "config.json")
        self.max_seq_length = _max_seq_length(directory, self.config)
        _check_pooling(directory)
        self._tokenizer = _load_tokenizer(directory / "tokenizer.json",
                                          self.max_seq_length)
        self._load_weights(directory / "model.safetensors")
        self.token_ids = lru_cache(maxsize=TOKEN_CACHE_SIZE)(self._token_ids)
        logger.info("sentence encoder loaded from %s (%d layers, %d dimensions)",
                    directory, self.config.num_layers, self.config.hidden_size)

    @property
    def dimension(self) -> int:
        return self.config.hidden_size

    def _token_ids(self, text: str) -> tuple[int, ...]:
        """Return the token ids of ``text``: [CLS], WordPiece tokens, [SEP],
        truncated to ``max_seq_length`` with [SEP] kept last."""
        return tuple(self._tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length float32 row per text."""
        return self.encode_ids([self.token_ids(text) for text in texts])

    def encode_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Return one unit-length float32 row per token id sequence."""
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        length = max(len(ids) for ids in batch)
        if length > self.max_seq_length or min(len(ids) for ids in batch) == 0:
            raise ValueError(
                f"token sequences must hold 1 to {self.max_seq_length} ids, got "
                f"lengths {sorted({len(ids) for ids in batch})}"
            )
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, sequence in enumerate(batch):
            ids[row, :len(sequence)] = sequence
            mask[row, :len(sequence)] = 1.0
        hidden = self._forward(ids, mask)
        # Mean pooling over the real tokens, then L2 normalisation.
        summed = np.einsum("bt,btd->bd", mask, hidden)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    # -- the transformer --------------------------------------------------------

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        if int(ids.max()) >= self._word.shape[0] or int(ids.min()) < 0:
            raise ValueError(f"token ids must lie in [0, {self._word.shape[0]})")
        # Every token has segment 0, as for a single sentence.
        hidden = self._word[ids] + self._position[:length] + self._segment[0]
        hidden = _layer_norm(hidden, self._embedding_norm, self.config.layer_norm_eps)
        # Padded keys get a large negative bias, so softmax gives them ~0 weight.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self._layers:
            hidden = self._layer(hidden, bias, layer, batch, length)
        return hidden

    def _layer(self, hidden: np.ndarray, bias: np.ndarray, layer: _Layer,
               batch: int, length: int) -> np.ndarray:
        heads = self.config.num_heads
        size = self.config.hidden_size // heads
        eps = self.config.layer_norm_eps

        def split(x: np.ndarray) -> np.ndarray:
            return x.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        query, key, value = (
            split(part) for part in
            np.split(_linear(hidden, layer.query_key_value), 3, axis=-1)
        )
        scores = query @ key.transpose(0, 1, 3, 2) / np.float32(math.sqrt(size))
        weights = _softmax(scores + bias)
        context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        attended = _layer_norm(_linear(context, layer.attention_out) + hidden,
                               layer.attention_norm, eps)

        inner = _gelu(_linear(attended, layer.intermediate))
        return _layer_norm(_linear(inner, layer.output) + attended,
                           layer.output_norm, eps)

    def _load_weights(self, path: Path) -> None:
        try:
            tensors = load_file(str(path))
        except Exception as err:  # noqa: BLE001 - any unreadable file is a config fault
            raise ConfigError(f"cannot read the weights in {path}: {err}") from err
        # Some exports name every tensor under "bert."; both forms are accepted.
        if "embeddings.word_embeddings.weight" not in tensors:
            tensors = {name.removeprefix("bert."): array
                       for name, array in tensors.items()}

        def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
            array = tensors.get(name)
            if array is None:
                raise ConfigError(f"{path} lacks the tensor {name}")
            if array.shape != shape:
                raise ConfigError(
                    f"{path}: tensor {name} has shape {array.shape}, expected {shape}"
                )
            array = np.ascontiguousarray(array, dtype=np.float32)
            array.setflags(write=False)
            return array

        config = self.config
        width = config.hidden_size
        inner = config.intermediate_size
        word = tensors.get("embeddings.word_embeddings.weight")
        vocabulary = word.shape[0] if word is not None else 0
        self._word = take("embeddings.word_embeddings.weight", (vocabulary, width))
        self._position = take("embeddings.position_embeddings.weight",
                              (config.max_positions, width))
        segments = tensors.get("embeddings.token_type_embeddings.weight")
        self._segment = take("embeddings.token_type_embeddings.weight",
                             (segments.shape[0] if segments is not None else 1, width))
        self._embedding_norm = (take("embeddings.LayerNorm.weight", (width,)),
                                take("embeddings.LayerNorm.bias", (width,)))

        def pair(prefix: str, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
            # Stored as (out, in) like torch.nn.Linear. A contiguous transposed
            # copy makes x @ W about twice as fast as multiplying by a view.
            weight = np.ascontiguousarray(take(f"{prefix}.weight", (rows, columns)).T)
            weight.setflags(write=False)
            return weight, take(f"{prefix}.bias", (rows,))

        def joined(pairs) -> tuple[np.ndarray, np.ndarray]:
            weights, biases = zip(*pairs, strict=True)
            weight = np.concatenate(weights, axis=1)
            bias = np.concatenate(biases)
            weight.setflags(write=False)
            bias.setflags(write=False)
            return weight, bias

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return take(f"{prefix}.weight", (width,)), take(f"{prefix}.bias", (width,))

        self._layers = []
        for index in range(config.num_layers):
            prefix = f"encoder.layer.{index}"
            self._layers.append(_Layer(
                query_key_value=joined(
                    pair(f"{prefix}.attention.self.{name}", width, width)
                    for name in ("query", "key", "value")
                ),
                attention_out=pair(f"{prefix}.attention.output.dense", width, width),
                attention_norm=norm(f"{prefix}.attention.output.LayerNorm"),
                intermediate=pair(f"{prefix}.intermediate.dense", inner, width),
                output=pair(f"{prefix}.output.dense", width, inner),
                output_norm=norm(f"{prefix}.output.LayerNorm"),
            ))
        if self._tokenizer.get_vocab_size() > vocabulary:
            raise ConfigError(
                f"the tokenizer has {self._tokenizer.get_vocab_size()} tokens but "
                f"{path} embeds only {vocabulary}"
            )


def _linear(x: np.ndarray, parameters: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weight, bias = parameters
    return x @ weight + bias


def _layer_norm(x: np.ndarray, parameters: tuple[np.ndarray, np.ndarray],
                eps: float) -> np.ndarray:
    gain, bias = parameters
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + np.float32(eps)) * gain + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# Abramowitz and Stegun, Handbook of Mathematical Functions (1964), formula
# 7.1.26: erf(x) for x >= 0 with absolute error at most 1.5e-7, close to
# float32 resolution. numpy has no erf, and BERT's "gelu" is the exact form
# x * (1 + erf(x / sqrt(2))) / 2, not the tanh approximation.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    sign = np.sign(x)
    magnitude = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * magnitude)
    a1, a2, a3, a4, a5 = _ERF_A
    polynomial = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
    return sign * (1.0 - polynomial * np.exp(-magnitude * magnitude))


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path} as JSON: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path} must hold a JSON object, got {type(document).__name__}"
        )
    return document


def _max_seq_length(directory: Path, config: BertConfig) -> int:
    path = directory / "sentence_bert_config.json"
    length = DEFAULT_MAX_SEQ_LENGTH
    if path.is_file():
        length = _read_json(path).get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH)
    if not isinstance(length, int) or not 2 <= length <= config.max_positions:
        raise ConfigError(
            f"{path}: max_seq_length must be an integer in [2, "
            f"{config.max_positions}], got {length!r}"
        )
    return length


def _check_pooling(directory: Path) -> None:
    path = directory / "1_Pooling" / "config.json"
    if not path.is_file():
        return
    pooling = _read_json(path)
    modes = sorted(key for key, value in pooling.items()
                   if key.startswith("pooling_mode_") and value is True)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(
            f"{path}: this encoder implements mean pooling only, but the model "
            f"asks for {', '.join(modes) or 'no pooling mode'}"
        )


def _load_tokenizer(path: Path, max_seq_length: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # noqa: BLE001 - the tokenizers error types vary
        raise ConfigError(f"cannot read the tokenizer in {path}: {err}") from err
    # tokenizer.json pads and truncates to 128 tokens for training; the
    # sentence-transformers model truncates at max_seq_length and pads nothing.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer
