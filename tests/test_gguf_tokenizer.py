"""The tokenizer rebuilt from the GGUF is the server's tokenizer, token for token, offline."""

from __future__ import annotations

import json
import random
import urllib.request
from pathlib import Path

import pytest
from embedded import require_embedded_model, shared_server
from transformers import AutoTokenizer

from metric_cards.catalog import SYSTEM_PROMPT, TEMPLATES
from metric_cards.gguf_tokenizer import (
    CACHE_ENV_VAR,
    SAMPLE_TEXTS,
    GGUFTokenizerError,
    build_tokenizer,
    chat_prompt_ids,
    check_tokenizer_matches_server,
    default_cache_root,
    gguf_fingerprint,
    server_tokenize,
    tokenizer_dir_for_gguf,
)

USER_PROMPTS = [
    TEMPLATES[0].format(metric="revenue", domain="finance", period="Q1 2023"),
    TEMPLATES[3].format(metric="conversion rate", domain="e-commerce", period="last 7 days"),
    "Montre-moi le chiffre d'affaires — 1 234 567 € — pour « Q4 2024 » 📈",
]


@pytest.fixture(scope="module")
def gguf_path() -> str:
    return require_embedded_model()


@pytest.fixture(scope="module")
def tokenizer_dir(gguf_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return tokenizer_dir_for_gguf(gguf_path, cache_root=tmp_path_factory.mktemp("tok-cache"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: str):
    # Exactly how atroposlib's BaseEnv loads config.tokenizer_name.
    return AutoTokenizer.from_pretrained(tokenizer_dir)


# ------------------------------------------------------------------------- build and cache


def test_saved_tokenizer_has_the_ggufs_vocabulary_and_specials(tokenizer, tokenizer_dir):
    assert len(tokenizer) == 49152
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 2)
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|im_start|>", 1)
    assert tokenizer.pad_token_id == 2
    assert tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == 1
    assert tokenizer.model_max_length == 8192
    assert "<|im_start|>" in tokenizer.chat_template
    config = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    assert config["gguf_source"] == {"file": "SmolLM2-135M-Instruct.Q4_1.gguf", "pre": "smollm"}
    # No BOS/EOS added around plain text (GGUF: add_bos_token = false), like llama.cpp.
    plain = tokenizer.encode("hello world", add_special_tokens=False)
    assert tokenizer.encode("hello world") == plain


def test_cache_is_reused_and_keyed_by_the_file(gguf_path, tokenizer_dir, tmp_path):
    again = tokenizer_dir_for_gguf(gguf_path, cache_root=Path(tokenizer_dir).parent)
    assert again == tokenizer_dir
    assert Path(tokenizer_dir).name == gguf_fingerprint(gguf_path)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + b"\0" * 64)
    assert gguf_fingerprint(other) != gguf_fingerprint(gguf_path)
    # No half-built directories are left behind.
    assert not [p for p in Path(tokenizer_dir).parent.iterdir() if p.name.startswith(".building")]


def test_cache_root_respects_env_vars(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "metric_cards" / "tokenizers"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine"


def test_unusable_ggufs_are_refused_clearly(tmp_path):
    import gguf

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"definitely not gguf" * 10)
    with pytest.raises(GGUFTokenizerError, match="not a readable GGUF"):
        build_tokenizer(junk)

    def write(name: str, model: str, pre: str) -> Path:
        path = tmp_path / name
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_tokenizer_model(model)
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(["a", "b", "ab"])
        writer.add_token_merges(["a b"])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    with pytest.raises(GGUFTokenizerError, match="only byte-level BPE"):
        build_tokenizer(write("spm.gguf", "llama", "default"))
    with pytest.raises(GGUFTokenizerError, match="tokenizer.ggml.pre is 'mystery'"):
        build_tokenizer(write("pre.gguf", "gpt2", "mystery"))
    with pytest.raises(GGUFTokenizerError, match="not found"):
        tokenizer_dir_for_gguf(tmp_path / "absent.gguf", cache_root=tmp_path)


# ---------------------------------------------------- against llama.cpp's tokenizer in-process


def test_random_texts_match_llama_cpp_token_for_token(tokenizer, gguf_path):
    """Many cheap comparisons with llama.cpp's own tokenizer (vocab only, no weights)."""
    from llama_cpp import Llama

    llama = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    rng = random.Random(1234)
    pieces = list("abcXYZ0189 '\"\n\t\r{}[]:,.$%-_") + [
        "  ", "\n\n", "é", "ß", "日本", "📈", "\u00a0", "\u2028", "'s", "'ll", "\u0301",
        "<|im_end|>", "<|im_start|>", "12,345.67", "metricCard", " trend", "Ⅻ", "٣",
    ]  # fmt: skip
    texts = (
        list(SAMPLE_TEXTS)
        + [SYSTEM_PROMPT]
        + ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) for _ in range(400)]
    )
    for text in texts:
        ours = tokenizer.encode(text)
        theirs = llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        assert ours == theirs, text
        assert tokenizer.decode(ours) == text  # byte-level BPE round-trips exactly


# ------------------------------------------------------------- against the running server


@pytest.mark.slow
def test_prompt_tokens_are_the_servers(tokenizer):
    """The prompt the env puts in front of each completion is what the server fed the model."""
    import openai

    from metric_cards.tokenization import ChatTokenizer

    server = shared_server()
    client = openai.OpenAI(base_url=server.base_url, api_key="x")
    chat = ChatTokenizer(tokenizer)
    for user in USER_PROMPTS:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ]
        prompt_text, env_prompt_ids = chat.prompt(messages)
        assert prompt_text.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert env_prompt_ids == chat_prompt_ids(tokenizer, messages)
        assert env_prompt_ids == server_tokenize(server.base_url, prompt_text)

        reply = client.chat.completions.create(
            model=server.model_name, messages=messages, max_tokens=48, temperature=0.7
        )
        assert reply.usage.prompt_tokens == len(env_prompt_ids)
        content = reply.choices[0].message.content
        finish = reply.choices[0].finish_reason
        rollout = chat.tokenize([*messages, {"role": "assistant", "content": content}], finish)
        assert rollout.tokens[: len(env_prompt_ids)] == env_prompt_ids
        completion_ids = rollout.tokens[len(env_prompt_ids) :]
        turn = content if finish == "length" else content + "<|im_end|>\n"
        assert completion_ids == server_tokenize(server.base_url, turn)
        assert tokenizer.decode(completion_ids) == turn


@pytest.mark.slow
def test_texts_match_the_servers_tokenize_endpoint(tokenizer):
    server = shared_server()
    check_tokenizer_matches_server(tokenizer, server.base_url)  # raises on any difference
    texts = [*SAMPLE_TEXTS, SYSTEM_PROMPT, "naïve 東京 🚀 ∑ – “quoted” \u200b zero-width"]
    for text in texts:
        assert tokenizer.encode(text) == server_tokenize(server.base_url, text), text


@pytest.mark.slow
def test_a_mismatched_tokenizer_is_detected(tiny_tokenizer_dir):
    server = shared_server()
    wrong = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    with pytest.raises(GGUFTokenizerError, match="does not match the server"):
        check_tokenizer_matches_server(wrong, server.base_url)


@pytest.mark.slow
def test_server_tokenize_accepts_root_or_v1_url():
    server = shared_server()
    root = server.base_url.removesuffix("/v1")
    assert server_tokenize(root, "hello") == server_tokenize(server.base_url, "hello")
    with urllib.request.urlopen(f"{root}/v1/models", timeout=5) as resp:
        assert resp.status == 200
