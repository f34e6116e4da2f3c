"""A pretrained BERT sentence encoder (e.g. all-MiniLM-L6-v2) run in JAX/Flax NNX.

Reads a local sentence-transformers folder and nothing else (no downloads): `config.json`
(the BERT shape), `tokenizer.json` (for the `tokenizers` package), `model.safetensors` (HF
BERT weight names), `modules.json` (Transformer, Pooling, optional Normalize),
`<pooling path>/config.json` and, when present, `sentence_bert_config.json` (the truncation
length). The forward pass is jitted once per (rows, padded length) shape; lengths are bucketed
and texts sorted by length so that batches carry little padding.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from flax import nnx
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from ssvae.adapters.json_limits import JsonLimitError, load_json_bounded
from ssvae.domain.errors import DataError

Array = jax.Array

HOW_TO_PROVIDE = (
    "pass --embedder-folder PATH naming a local sentence-transformers folder "
    "(e.g. all-MiniLM-L6-v2 with config.json, tokenizer.json, model.safetensors, modules.json)"
)
REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors", "modules.json")
# The padded lengths a batch may have; a batch is padded to the first one that fits it.
LENGTH_BUCKETS: tuple[int, ...] = (
    *range(8, 65, 8),
    80,
    96,
    112,
    128,
    160,
    192,
    224,
    256,
    320,
    384,
    448,
    512,
)
# sentence-transformers concatenates the pooled vectors of several modes in this order.
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
# bfloat16 products (float32 sums) run ~2x faster on CPUs with AMX/AVX512-BF16 and keep cosine
# > 0.9999 with the float32 vectors; float32 is the portable default.
COMPUTE_DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # BERT's exact erf GELU
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


@attrs.frozen
class EncoderConfig:
    """What the folder says about the network, the tokenizer and the pooling."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    activation: str
    max_length: int
    do_lower_case: bool
    pooling_modes: tuple[str, ...]
    normalize: bool


def _fail(folder: Path, problem: str) -> DataError:
    return DataError(f"embedder folder {folder}: {problem}; {HOW_TO_PROVIDE}")


def _read_json(folder: Path, relative: str) -> Any:
    path = folder / relative
    if not path.is_file():
        raise _fail(folder, f"missing file {relative}")
    try:
        return load_json_bounded(path.read_bytes())
    except (OSError, JsonLimitError) as exc:
        raise _fail(folder, f"{relative} is not valid JSON ({exc})") from None


def check_folder(folder: Path) -> None:
    """Raise DataError naming the folder or the first required file that is missing."""
    if not folder.is_dir():
        raise _fail(folder, "no such folder")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise _fail(folder, f"missing file {name}")


def _module_chain(folder: Path) -> tuple[str, bool]:
    """(the pooling folder, whether to L2-normalise) from modules.json, refusing other modules."""
    modules = _read_json(folder, "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if len(kinds) < 2 or kinds[0] != "Transformer" or kinds[1] != "Pooling":
        raise _fail(folder, f"modules.json lists {kinds}; expected Transformer, Pooling")
    extra = kinds[2:]
    if extra not in ([], ["Normalize"]):
        raise _fail(
            folder, f"modules.json lists {extra} after Pooling; only Normalize is supported"
        )
    return str(modules[1].get("path", "1_Pooling")), extra == ["Normalize"]


def _pooling_modes(folder: Path, pooling_folder: str) -> tuple[tuple[str, ...], int | None]:
    """The enabled pooling modes in sentence-transformers' order, and the width they expect."""
    config = _read_json(folder, f"{pooling_folder}/config.json")
    unsupported = [
        key
        for key in ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
        if config.get(key)
    ]
    if unsupported:
        raise _fail(folder, f"pooling {unsupported} is not supported; use cls, max or mean")
    modes = tuple(m for m in POOLING_MODES if config.get(f"pooling_mode_{m}"))
    if not modes:
        raise _fail(folder, f"{pooling_folder}/config.json enables no pooling mode")
    width = config.get("word_embedding_dimension")
    return modes, None if width is None else int(width)


def read_config(folder: Path, max_length: int | None = None) -> EncoderConfig:
    """The encoder's configuration, validated; DataError says which file or value is wrong."""
    check_folder(folder)
    bert = _read_json(folder, "config.json")
    pooling_folder, normalize = _module_chain(folder)
    modes, pooled_width = _pooling_modes(folder, pooling_folder)
    sbert_path = folder / "sentence_bert_config.json"
    sbert = _read_json(folder, sbert_path.name) if sbert_path.is_file() else {}
    try:
        max_positions = int(bert["max_position_embeddings"])
        config = EncoderConfig(
            hidden_size=int(bert["hidden_size"]),
            num_layers=int(bert["num_hidden_layers"]),
            num_heads=int(bert["num_attention_heads"]),
            intermediate_size=int(bert["intermediate_size"]),
            layer_norm_eps=float(bert.get("layer_norm_eps", 1e-12)),
            vocab_size=int(bert["vocab_size"]),
            max_positions=max_positions,
            type_vocab_size=int(bert.get("type_vocab_size", 2)),
            activation=str(bert.get("hidden_act", "gelu")),
            max_length=int(
                max_length if max_length is not None else sbert.get("max_seq_length", max_positions)
            ),
            do_lower_case=bool(sbert.get("do_lower_case", False)),
            pooling_modes=modes,
            normalize=normalize,
        )
    except KeyError as exc:
        raise _fail(folder, f"config.json lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise _fail(folder, f"a configuration value is not a number ({exc})") from exc
    if pooled_width not in (None, config.hidden_size):
        raise _fail(folder, f"pooling expects width {pooled_width}, not {config.hidden_size}")
    if config.activation not in ACTIVATIONS:
        raise _fail(folder, f"hidden_act {config.activation!r} is not one of {sorted(ACTIVATIONS)}")
    if bert.get("position_embedding_type", "absolute") != "absolute":
        raise _fail(folder, "only absolute position embeddings are supported")
    if config.hidden_size % config.num_heads:
        raise _fail(folder, "hidden_size is not a multiple of num_attention_heads")
    if not 2 <= config.max_length <= max_positions:
        raise _fail(folder, f"max length {config.max_length} is outside 2..{max_positions}")
    return config


# --- the network -----------------------------------------------------------------------------


class Dense(nnx.Module):
    """y = x W + b with W stored (in, out); the product runs in `dtype`, summed in float32."""

    def __init__(self, kernel: npt.ArrayLike, bias: npt.ArrayLike, dtype: Any) -> None:
        # Stored in the compute dtype so that bfloat16 runs do not convert W on every call.
        self.kernel = nnx.Param(jnp.asarray(kernel, dtype))
        self.bias = nnx.Param(jnp.asarray(bias, jnp.float32))
        self.dtype = dtype

    def __call__(self, x: Array) -> Array:
        product = jnp.einsum(
            "...i,io->...o",
            x.astype(self.dtype),
            self.kernel[...],
            preferred_element_type=jnp.float32,
        )
        return product + self.bias[...]


class LayerNorm(nnx.Module):
    """Layer normalisation over the last axis with the two-pass variance, as PyTorch does."""

    def __init__(self, scale: npt.ArrayLike, bias: npt.ArrayLike, eps: float) -> None:
        self.scale = nnx.Param(jnp.asarray(scale, jnp.float32))
        self.bias = nnx.Param(jnp.asarray(bias, jnp.float32))
        self.eps = eps

    def __call__(self, x: Array) -> Array:
        centred = x - jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(centred * centred, axis=-1, keepdims=True)
        return centred * jax.lax.rsqrt(variance + self.eps) * self.scale[...] + self.bias[...]


class EncoderLayer(nnx.Module):
    """Self-attention then a GELU feed-forward block, each followed by add and LayerNorm."""

    def __init__(self, arrays: dict[str, Any], config: EncoderConfig, dtype: Any) -> None:
        eps = config.layer_norm_eps
        self.qkv = Dense(arrays["qkv.w"], arrays["qkv.b"], dtype)
        self.attention_out = Dense(arrays["attention_out.w"], arrays["attention_out.b"], dtype)
        self.attention_norm = LayerNorm(arrays["attention_ln.w"], arrays["attention_ln.b"], eps)
        self.ffn_in = Dense(arrays["ffn_in.w"], arrays["ffn_in.b"], dtype)
        self.ffn_out = Dense(arrays["ffn_out.w"], arrays["ffn_out.b"], dtype)
        self.ffn_norm = LayerNorm(arrays["ffn_ln.w"], arrays["ffn_ln.b"], eps)
        self.num_heads = config.num_heads
        self.activation = config.activation

    def __call__(self, x: Array, mask_bias: Array) -> Array:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, d // self.num_heads)
        # (3, b, heads, t, c): plain batched matmuls below, about 2.5x faster on XLA CPU than
        # contracting in the (b, t, heads, c) layout.
        q, k, v = jnp.transpose(qkv, (2, 0, 3, 1, 4))
        scores = jnp.einsum("bhqc,bhkc->bhqk", q, k) + mask_bias
        weights = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
        # Softmax normalisation after the product: divides (t, c) values instead of (t, t).
        context = jnp.einsum("bhqk,bhkc->bhqc", weights, v) / jnp.sum(weights, axis=-1)[..., None]
        context = jnp.transpose(context, (0, 2, 1, 3)).reshape(b, t, d)
        x = self.attention_norm(x + self.attention_out(context))
        hidden = ACTIVATIONS[self.activation](self.ffn_in(x))
        return self.ffn_norm(x + self.ffn_out(hidden))


class SentenceEncoder(nnx.Module):
    """BERT embeddings, encoder layers, pooling over the attention mask, optional L2 norm."""

    def __init__(self, weights: dict[str, np.ndarray], config: EncoderConfig, dtype: Any) -> None:
        self.word_embeddings = nnx.Param(jnp.asarray(weights["word_embeddings"], jnp.float32))
        self.position_embeddings = nnx.Param(
            jnp.asarray(weights["position_embeddings"], jnp.float32)
        )
        # Every token has type 0 for single sentences: keep only that row.
        self.token_type_embedding = nnx.Param(
            jnp.asarray(weights["token_type_embeddings"][0], jnp.float32)
        )
        self.embedding_norm = LayerNorm(
            weights["embedding_ln.w"], weights["embedding_ln.b"], config.layer_norm_eps
        )
        # One layer module whose parameters carry a leading layer axis, run by a scan: XLA
        # compiles one layer instead of num_layers, which makes each new batch shape cheap.
        per_layer = [layer_arrays(weights, i, config) for i in range(config.num_layers)]
        stacked = {name: np.stack([arrays[name] for arrays in per_layer]) for name in LAYER_ARRAYS}
        self.layers = nnx.vmap(lambda a: EncoderLayer(a, config, dtype), in_axes=0, out_axes=0)(
            stacked
        )
        self.pooling_modes = config.pooling_modes
        self.normalize = config.normalize

    def __call__(self, ids: Array, mask: Array) -> Array:
        t = ids.shape[1]
        x = self.word_embeddings[...][ids] + self.position_embeddings[...][:t]
        x = self.embedding_norm(x + self.token_type_embedding[...])
        # A large negative bias, not -inf, so that padding rows (all masked) stay finite.
        mask_bias = jnp.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(jnp.float32)
        x = nnx.scan(_apply_layer, in_axes=(0, nnx.Carry, None), out_axes=nnx.Carry)(
            self.layers, x, mask_bias
        )
        pooled = jnp.concatenate([_pool(mode, x, mask) for mode in self.pooling_modes], axis=-1)
        if self.normalize:
            norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
            pooled = pooled / jnp.maximum(norm, 1e-12)
        return pooled


def _apply_layer(layer: EncoderLayer, x: Array, mask_bias: Array) -> Array:
    return layer(x, mask_bias)


def _pool(mode: str, x: Array, mask: Array) -> Array:
    """One sentence-transformers pooling mode over the tokens where mask is 1."""
    weights = mask[:, :, None].astype(x.dtype)
    count = jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
    if mode == "cls_token":
        return x[:, 0]
    if mode == "max_tokens":
        return jnp.max(jnp.where(weights > 0, x, -1e9), axis=1)
    total = jnp.sum(x * weights, axis=1)
    return total / (count if mode == "mean_tokens" else jnp.sqrt(count))


# --- weights ---------------------------------------------------------------------------------

_LAYER_NAMES = {
    "query.w": "attention.self.query.weight",
    "query.b": "attention.self.query.bias",
    "key.w": "attention.self.key.weight",
    "key.b": "attention.self.key.bias",
    "value.w": "attention.self.value.weight",
    "value.b": "attention.self.value.bias",
    "attention_out.w": "attention.output.dense.weight",
    "attention_out.b": "attention.output.dense.bias",
    "attention_ln.w": "attention.output.LayerNorm.weight",
    "attention_ln.b": "attention.output.LayerNorm.bias",
    "ffn_in.w": "intermediate.dense.weight",
    "ffn_in.b": "intermediate.dense.bias",
    "ffn_out.w": "output.dense.weight",
    "ffn_out.b": "output.dense.bias",
    "ffn_ln.w": "output.LayerNorm.weight",
    "ffn_ln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "word_embeddings": "embeddings.word_embeddings.weight",
    "position_embeddings": "embeddings.position_embeddings.weight",
    "token_type_embeddings": "embeddings.token_type_embeddings.weight",
    "embedding_ln.w": "embeddings.LayerNorm.weight",
    "embedding_ln.b": "embeddings.LayerNorm.bias",
}


LAYER_ARRAYS = (
    "qkv.w",
    "qkv.b",
    "attention_out.w",
    "attention_out.b",
    "attention_ln.w",
    "attention_ln.b",
    "ffn_in.w",
    "ffn_in.b",
    "ffn_out.w",
    "ffn_out.b",
    "ffn_ln.w",
    "ffn_ln.b",
)


def layer_arrays(
    weights: dict[str, np.ndarray], index: int, config: EncoderConfig
) -> dict[str, np.ndarray]:
    """Layer `index`'s arrays as EncoderLayer takes them: kernels (in, out), Q, K, V fused."""
    w = {short: weights[f"layer.{index}.{short}"] for short in _LAYER_NAMES}
    scale = 1.0 / math.sqrt(config.hidden_size // config.num_heads)  # folded into the query
    arrays = {
        "qkv.w": np.concatenate([w["query.w"].T * scale, w["key.w"].T, w["value.w"].T], axis=1),
        "qkv.b": np.concatenate([w["query.b"] * scale, w["key.b"], w["value.b"]]),
    }
    for name in ("attention_out", "ffn_in", "ffn_out"):
        arrays[f"{name}.w"], arrays[f"{name}.b"] = w[f"{name}.w"].T, w[f"{name}.b"]
    for name in ("attention_ln", "ffn_ln"):
        arrays[f"{name}.w"], arrays[f"{name}.b"] = w[f"{name}.w"], w[f"{name}.b"]
    return arrays


def load_weights(folder: Path, config: EncoderConfig) -> dict[str, np.ndarray]:
    """The HF BERT tensors of model.safetensors under short names, with their shapes checked."""
    try:
        raw = load_file(str(folder / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise _fail(folder, f"model.safetensors cannot be read ({exc})") from exc
    # Checkpoints saved from task models (BertForX) prefix every name with "bert.".
    raw = {name.removeprefix("bert."): tensor for name, tensor in raw.items()}
    wanted = dict(_EMBEDDING_NAMES)
    for i in range(config.num_layers):
        wanted |= {f"layer.{i}.{s}": f"encoder.layer.{i}.{hf}" for s, hf in _LAYER_NAMES.items()}
    missing = [hf for hf in wanted.values() if hf not in raw]
    if missing:
        raise _fail(folder, f"model.safetensors lacks {len(missing)} tensors, e.g. {missing[0]}")
    weights = {short: np.asarray(raw[hf], np.float32) for short, hf in wanted.items()}
    d = config.hidden_size
    expected = {
        "word_embeddings": (config.vocab_size, d),
        "position_embeddings": (config.max_positions, d),
        "layer.0.ffn_in.w": (config.intermediate_size, d),
    }
    for short, shape in expected.items():
        if weights[short].shape != shape:
            raise _fail(folder, f"{wanted[short]} has shape {weights[short].shape}, not {shape}")
    return weights


# --- the embedder ----------------------------------------------------------------------------


TokenArray = npt.NDArray[np.int32]


def _encode_fn(
    graphdef: nnx.GraphDef[SentenceEncoder],
) -> Callable[[Any, TokenArray, TokenArray], Array]:
    """The jitted forward of one network; jax compiles it once per input shape."""

    def encode(state: Any, ids: TokenArray, mask: TokenArray) -> Array:
        return nnx.merge(graphdef, state)(jnp.asarray(ids), jnp.asarray(mask))

    return jax.jit(encode)


def bucket_length(length: int, max_length: int) -> int:
    """The padded length of a batch whose longest row has `length` tokens."""
    for bucket in LENGTH_BUCKETS:
        if bucket >= length:
            return min(bucket, max_length)
    return max_length


def plan_batches(
    lengths: npt.NDArray[np.int64], batch_size: int, max_length: int
) -> list[tuple[npt.NDArray[np.int64], int]]:
    """(row indices, padded length) per batch: rows sorted by length, batches of similar length.

    A batch holds at most `batch_size` rows and `batch_size * 128` padded tokens (long texts go
    in smaller batches, which bounds the attention's memory), and it closes early rather than
    grow its padded length so far that padding exceeds the real tokens: a few long texts never
    pad many short ones.
    """
    order = np.argsort(lengths, kind="stable")
    token_budget = batch_size * 128
    batches: list[tuple[npt.NDArray[np.int64], int]] = []
    start = 0
    while start < len(order):
        stop, tokens = start + 1, int(lengths[order[start]])
        current = bucket_length(tokens, max_length)
        while stop < len(order) and stop - start < batch_size:
            length = int(lengths[order[stop]])
            padded = bucket_length(length, max_length)
            rows = stop - start + 1
            wasteful = padded > current and rows * padded > 2 * (tokens + length)
            if rows * padded > token_budget or wasteful:
                break
            stop, tokens, current = stop + 1, tokens + length, padded
        rows_here = order[start:stop]
        batches.append((rows_here, bucket_length(int(lengths[rows_here[-1]]), max_length)))
        start = stop
    return batches


def padded_rows(count: int, batch_size: int) -> int:
    """Rows of the compiled batch: the next power of two, at most batch_size (fewer shapes)."""
    return count if count >= batch_size else min(batch_size, 1 << (count - 1).bit_length())


class MiniLmEmbedder:
    """Sentence vectors from a local sentence-transformers BERT folder, computed in JAX."""

    def __init__(
        self,
        folder: Path,
        batch_size: int = 64,
        max_length: int | None = None,
        compute_dtype: str = "float32",
    ) -> None:
        if batch_size < 1:
            raise DataError(f"embedder batch size {batch_size} must be at least 1")
        if compute_dtype not in COMPUTE_DTYPES:
            raise DataError(
                f"embedder compute dtype {compute_dtype!r} is not one of {sorted(COMPUTE_DTYPES)}"
            )
        self.compute_dtype = compute_dtype
        self.folder = Path(folder)
        self.config = read_config(self.folder, max_length)
        self.batch_size = batch_size
        self.tokenizer = _read_tokenizer(self.folder)
        # tokenizer.json may carry fixed padding and truncation; ours pads per batch instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.config.max_length)
        weights = load_weights(self.folder, self.config)
        network = SentenceEncoder(weights, self.config, COMPUTE_DTYPES[compute_dtype])
        graphdef, self._state = nnx.split(network)
        self._encode = _encode_fn(graphdef)
        self._fingerprint: str | None = None

    @property
    def dimension(self) -> int:
        """Hidden size times the number of pooling modes."""
        return self.config.hidden_size * len(self.config.pooling_modes)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text, truncated to the folder's max sequence length."""
        if self.config.do_lower_case:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """A (len(texts), dimension) float32 array; repeated texts are encoded once."""
        unique: dict[str, int] = {}
        where = np.array([unique.setdefault(t, len(unique)) for t in texts], np.int64)
        out = np.zeros((len(unique), self.dimension), np.float32)
        if not unique:
            return out[where]
        ids = self.token_ids(list(unique))
        lengths = np.array([len(row) for row in ids], np.int64)
        for rows, padded_length in plan_batches(lengths, self.batch_size, self.config.max_length):
            count = padded_rows(len(rows), self.batch_size)
            token_ids = np.zeros((count, padded_length), np.int32)
            mask = np.zeros((count, padded_length), np.int32)
            for slot, row in enumerate(rows):
                token_ids[slot, : lengths[row]] = ids[row]
                mask[slot, : lengths[row]] = 1
            vectors = self._encode(self._state, token_ids, mask)
            out[rows] = np.asarray(vectors)[: len(rows)]
        return out[where]

    def fingerprint(self) -> str:
        """sha256 of the folder's weights, tokenizer and configuration files and max_length."""
        if self._fingerprint is None:
            digest = hashlib.sha256(b"minilm-jax-1")
            settings = {**attrs.asdict(self.config), "compute_dtype": self.compute_dtype}
            digest.update(json.dumps(settings, sort_keys=True).encode())
            for name in ("tokenizer.json", "model.safetensors"):
                digest.update(_file_sha256(self.folder / name).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def _read_tokenizer(folder: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # the tokenizers package raises plain Exception on a bad file
        raise _fail(folder, f"tokenizer.json cannot be read ({exc})") from exc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
