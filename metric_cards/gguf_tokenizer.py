"""Build a Hugging Face tokenizer from the tokenizer a GGUF file embeds, with no hub access.

The env tokenizes prompts and completions for the trainer with
`transformers.AutoTokenizer.from_pretrained(config.tokenizer_name)`; for the embedded llama.cpp
model those tokens must be the ones the server itself uses. transformers' own GGUF loader needs
torch, so this module reads the GGUF metadata with the `gguf` package, rebuilds the same byte-level
BPE with `tokenizers`, and saves it with `save_pretrained` to a cache directory that
`AutoTokenizer.from_pretrained(<dir>)` loads offline.

Only byte-level BPE vocabularies (`tokenizer.ggml.model == "gpt2"`) with a pre-tokenizer that is
known here (see `_PRE_TOKENIZERS`) are supported; anything else raises `GGUFTokenizerError` so a
mismatched tokenizer never silently produces wrong training tokens. `check_tokenizer_matches_server`
compares a tokenizer with a running llama.cpp server token-for-token, for a fast start-up check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Bump when the conversion changes, so stale cached tokenizers are rebuilt rather than reused.
BUILDER_VERSION = 1
# The tokenizer metadata lives in the GGUF header, before the tensor data; hashing this much of
# the file (plus its size) identifies the tokenizer without reading a multi-GB model whole.
_HASH_PREFIX_BYTES = 16 * 1024 * 1024
CACHE_ENV_VAR = "METRIC_CARDS_TOKENIZER_CACHE"

# GGUF token types (llama.cpp's llama_token_type).
_TOKEN_NORMAL = 1
_TOKEN_UNKNOWN = 2
_TOKEN_CONTROL = 3
_TOKEN_USER_DEFINED = 4
_TOKEN_UNUSED = 5
_TOKEN_BYTE = 6

# GPT-2's split pattern, as HF's ByteLevel(use_regex=True) applies it.
_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Llama-3 / Qwen-2 split patterns (llama-vocab.cpp), applied with an explicit Split step.
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# GGUF `tokenizer.ggml.pre` -> (pre-tokenizer kind, ignore_merges), mirroring the pre-type table
# in llama.cpp's llama-vocab.cpp. "digits+gpt2" is llama.cpp's `\p{N}` split followed by the GPT-2
# pattern: each digit becomes its own word (SmolLM, StarCoder).
_PRE_TOKENIZERS: dict[str, tuple[str, bool]] = {
    "smollm": ("digits+gpt2", False),
    "starcoder": ("digits+gpt2", False),
    "refact": ("digits+gpt2", False),
    "codeshell": ("digits+gpt2", False),
    "gpt-2": ("gpt2", False),
    "phi-2": ("gpt2", False),
    "mpt": ("gpt2", False),
    "olmo": ("gpt2", False),
    "llama-bpe": ("llama3", True),
    "llama3": ("llama3", True),
    "qwen2": ("qwen2", False),
}


class GGUFTokenizerError(RuntimeError):
    """The GGUF's tokenizer cannot be rebuilt faithfully (or the file is not a usable GGUF)."""


def default_cache_root() -> Path:
    """`$METRIC_CARDS_TOKENIZER_CACHE`, else `$XDG_CACHE_HOME/metric_cards/tokenizers`."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "metric_cards" / "tokenizers"


def gguf_fingerprint(gguf_path: str | os.PathLike[str]) -> str:
    """A short, stable id of the GGUF's header (where its tokenizer is) and of this builder."""
    path = Path(gguf_path)
    digest = hashlib.sha256()
    digest.update(f"builder={BUILDER_VERSION};size={path.stat().st_size};".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(_HASH_PREFIX_BYTES))
    return digest.hexdigest()[:32]


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _pre_tokenizer(kind: str) -> Any:
    from tokenizers import Regex, pre_tokenizers

    byte_level_regex = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind == "gpt2":
        return byte_level_regex
    if kind == "digits+gpt2":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level_regex]
        )
    pattern = {"llama3": _LLAMA3_PATTERN, "qwen2": _QWEN2_PATTERN}[kind]
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def build_tokenizer(gguf_path: str | os.PathLike[str]) -> Any:
    """Rebuild the GGUF's tokenizer as a `transformers.PreTrainedTokenizerFast` (in memory)."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    try:
        reader = GGUFReader(str(gguf_path))
    except Exception as exc:  # the gguf package raises ValueError/struct errors on junk input
        raise GGUFTokenizerError(f"{gguf_path}: not a readable GGUF file ({exc})") from exc

    model_kind = _field(reader, "tokenizer.ggml.model")
    if model_kind != "gpt2":
        raise GGUFTokenizerError(
            f"{gguf_path}: tokenizer.ggml.model is {model_kind!r}; only byte-level BPE ('gpt2') "
            "GGUFs can be converted here. Pass a matching Hugging Face tokenizer directory instead."
        )
    pre = _field(reader, "tokenizer.ggml.pre") or "default"
    if pre not in _PRE_TOKENIZERS:
        raise GGUFTokenizerError(
            f"{gguf_path}: tokenizer.ggml.pre is {pre!r}, which this converter does not know "
            f"(known: {', '.join(sorted(_PRE_TOKENIZERS))}). Pass a matching Hugging Face "
            "tokenizer directory instead."
        )
    pre_kind, ignore_merges = _PRE_TOKENIZERS[pre]

    tokens: list[str] = list(_field(reader, "tokenizer.ggml.tokens") or [])
    token_types: list[int] = list(_field(reader, "tokenizer.ggml.token_type") or [])
    merges_raw: list[str] = list(_field(reader, "tokenizer.ggml.merges") or [])
    if not tokens or not merges_raw:
        raise GGUFTokenizerError(f"{gguf_path}: GGUF has no tokenizer vocabulary or merges")
    if len(token_types) != len(tokens):
        token_types = [_TOKEN_NORMAL] * len(tokens)

    vocab = {tok: i for i, tok in enumerate(tokens)}
    # Byte-level tokens never contain a raw space, so the single space separates the pair.
    merges: list[tuple[str, str]] = []
    for merge in merges_raw:
        left, _, right = merge.partition(" ")
        merges.append((left, right))
    bpe = models.BPE(
        vocab=vocab,
        merges=merges,
        fuse_unk=False,
        byte_fallback=False,
        ignore_merges=ignore_merges,
    )
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = _pre_tokenizer(pre_kind)
    tok.decoder = decoders.ByteLevel()
    # Offsets only: llama.cpp adds no BOS/EOS around encoded text unless the GGUF asks for one.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)

    # Control tokens (<|im_start|> ...) are matched in text the way llama.cpp does with
    # parse_special=True (the server's chat path and /extras/tokenize); user-defined ones too.
    added = [
        AddedToken(tokens[i], special=token_types[i] == _TOKEN_CONTROL, normalized=False)
        for i in range(len(tokens))
        if token_types[i] in (_TOKEN_CONTROL, _TOKEN_USER_DEFINED)
    ]
    tok.add_tokens(added)

    def token_text(key: str) -> str | None:
        idx = _field(reader, key)
        return tokens[int(idx)] if idx is not None and 0 <= int(idx) < len(tokens) else None

    add_bos = bool(_field(reader, "tokenizer.ggml.add_bos_token"))
    bos = token_text("tokenizer.ggml.bos_token_id")
    eos = token_text("tokenizer.ggml.eos_token_id")
    if add_bos and bos is not None:
        # Keep llama.cpp's "prepend BOS to every encoded text" behaviour for GGUFs that ask for it.
        bos_id = vocab[bos]
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
                ),
            ]
        )

    context_length = None
    arch = _field(reader, "general.architecture")
    if arch:
        context_length = _field(reader, f"{arch}.context_length")

    kwargs: dict[str, Any] = {
        "tokenizer_object": tok,
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": token_text("tokenizer.ggml.unknown_token_id"),
        "pad_token": token_text("tokenizer.ggml.padding_token_id") or eos,
        # The server returns text exactly as decoded from the pieces; so must we.
        "clean_up_tokenization_spaces": False,
        "chat_template": _field(reader, "tokenizer.chat_template"),
    }
    if context_length:
        kwargs["model_max_length"] = int(context_length)
    hf = PreTrainedTokenizerFast(**{k: v for k, v in kwargs.items() if v is not None})
    # For humans and for the cache check; save_pretrained keeps unknown init kwargs.
    hf.init_kwargs["gguf_source"] = {"file": Path(gguf_path).name, "pre": pre}
    return hf


def tokenizer_dir_for_gguf(
    gguf_path: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None
) -> str:
    """Return a directory holding the GGUF's tokenizer, building and caching it on first use.

    `transformers.AutoTokenizer.from_pretrained(<returned path>)` loads it offline. The directory
    is `<cache_root>/<fingerprint>`; concurrent callers are safe (each builds into a temporary
    directory and renames it into place; the loser of the race drops its copy).
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise GGUFTokenizerError(f"GGUF file not found: {gguf_path}")
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / gguf_fingerprint(gguf_path)
    if (target / "tokenizer.json").is_file() and (target / "tokenizer_config.json").is_file():
        return str(target)

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        build_tokenizer(gguf_path).save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else finished first (target exists and is non-empty): use theirs.
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def load_tokenizer(gguf_path: str | os.PathLike[str]) -> Any:
    """The GGUF's tokenizer loaded the way BaseEnv loads `tokenizer_name` (AutoTokenizer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir_for_gguf(gguf_path))


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of the chat prompt (with the generation prompt) for `messages`.

    Rendered to text first and then encoded, which is what llama-cpp-python's server does (Jinja2
    render, then tokenize with special tokens parsed, plus BOS only if the GGUF's add_bos_token
    says so, as our post-processor does); this also sidesteps transformers 5 returning a
    BatchEncoding from `apply_chat_template(tokenize=True)`.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(text, add_special_tokens=True))


def server_tokenize(base_url: str, text: str, timeout: float = 30.0) -> list[int]:
    """Tokens of `text` by a llama-cpp-python server (`/extras/tokenize`, special tokens parsed).

    `base_url` is the OpenAI base (`http://127.0.0.1:PORT/v1`) or the server root.
    """
    root = base_url.rstrip("/").removesuffix("/v1")
    req = urllib.request.Request(
        f"{root}/extras/tokenize",
        data=json.dumps({"input": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback URL)
        return list(json.load(resp)["tokens"])


# Texts that exercise the pre-tokenizer's corners: digits, JSON, whitespace runs, newlines,
# contractions, non-ASCII letters, emoji (multi-byte), and the chat control tokens.
SAMPLE_TEXTS: tuple[str, ...] = (
    '{"componentType": "metricCard", "props": {"title": "Revenue", "value": "$12,345.67"}}',
    "It's 2024-03-15; we've grown 12.5% in Q1 2023 (1234567 users).",
    "  indented\n\n\tline\r\nend   ",
    "Ünïcödé naïve café — 日本語 テキスト, emoji 📈🚀 and ∑≥±.",
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
)


def check_tokenizer_matches_server(
    tokenizer: Any, base_url: str, texts: Iterable[str] = SAMPLE_TEXTS
) -> None:
    """Raise `GGUFTokenizerError` on the first text `tokenizer` and the server encode differently.

    Cheap (a few HTTP calls); run it once at start-up when serving a GGUF other than the default.
    """
    for text in texts:
        ours = list(tokenizer.encode(text, add_special_tokens=True))
        theirs = server_tokenize(base_url, text)
        if ours != theirs:
            first = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                min(len(ours), len(theirs)),
            )
            raise GGUFTokenizerError(
                f"tokenizer does not match the server for {text!r}: first difference at token "
                f"{first} (ours {ours[first : first + 5]}, server {theirs[first : first + 5]})"
            )
