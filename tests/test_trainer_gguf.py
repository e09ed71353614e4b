"""Weight sync: the GGUF written from updated weights holds those weights (transformers reads them
back) and the real llama.cpp server loads it, generates, and agrees with the torch model."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llama_cpp")

from metric_cards.catalog import eval_requests  # noqa: E402
from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf  # noqa: E402
from metric_cards.groups import prompt_messages  # noqa: E402
from metric_cards.local_server import EmbeddedServer, default_model_path  # noqa: E402
from metric_cards.trainer.evaluation import chat_completion  # noqa: E402
from metric_cards.trainer.gguf_export import (  # noqa: E402
    GGUFExportError,
    permute_for_gguf,
    write_gguf,
)
from metric_cards.trainer.policy import Policy, load_model  # noqa: E402

pytestmark = pytest.mark.slow


def test_permutation_inverts_transformers_reverse_permutation() -> None:
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weights = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)
    reverse = LlamaTensorProcessor()._reverse_permute_weights
    for heads in (1, 2, 3):
        permuted = permute_for_gguf(weights, heads)
        assert not np.array_equal(permuted, weights)
        assert np.array_equal(reverse(permuted, heads, heads), weights)


@pytest.fixture(scope="module")
def updated_model_gguf(tmp_path_factory):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(2)
    source = default_model_path()
    model = load_model(source)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir_for_gguf(source))
    prompt = tokenizer.apply_chat_template(
        prompt_messages(eval_requests(1)[0]), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    good = tokenizer('{"componentType": "metricCard"}', add_special_tokens=False)["input_ids"]
    bad = tokenizer("I cannot help with that.", add_special_tokens=False)["input_ids"]
    group = {
        "tokens": [prompt_ids + good, prompt_ids + bad],
        "masks": [[-100] * len(prompt_ids) + good, [-100] * len(prompt_ids) + bad],
        "scores": [1.0, 0.0],
    }
    original = {k: v.clone() for k, v in model.state_dict().items()}
    Policy(model, lr=1e-4, micro_batch=2, bf16=False).update([group])
    moved = max(float((model.state_dict()[k] - v).abs().max()) for k, v in original.items())
    assert moved > 1e-5, "the update did not change the weights"
    path = write_gguf(model.state_dict(), source, tmp_path_factory.mktemp("gguf") / "policy.gguf")
    return model, tokenizer, path, prompt_ids


def test_the_written_gguf_holds_the_updated_weights(updated_model_gguf) -> None:
    model, _, path, _ = updated_model_gguf
    reread = load_model(str(path)).state_dict()
    for name, tensor in model.state_dict().items():
        # F16 for matrices, F32 for norms: a relative error of at most ~1e-3
        scale = float(tensor.abs().max()) or 1.0
        assert float((reread[name] - tensor).abs().max()) <= 2e-3 * scale, name
    assert not list(path.parent.glob(".*tmp*"))  # written atomically, nothing left behind


def test_llama_cpp_serves_the_written_gguf_like_the_torch_model(updated_model_gguf) -> None:
    model, tokenizer, path, prompt_ids = updated_model_gguf
    with torch.no_grad():
        generated = model.generate(torch.tensor([prompt_ids]), max_new_tokens=16, do_sample=False)[
            0, len(prompt_ids) :
        ].tolist()
    expected = tokenizer.decode(generated, skip_special_tokens=True)
    with EmbeddedServer(path, n_threads=2) as server:
        completion = chat_completion(
            server.base_url,
            server.model_name,
            prompt_messages(eval_requests(1)[0]),
            max_tokens=16,
            temperature=0.0,
        )
    assert completion.content, "llama.cpp generated nothing from the written GGUF"
    assert completion.content == expected


def test_export_refuses_a_model_that_does_not_fit_the_template(
    tmp_path, updated_model_gguf
) -> None:
    model, _, _, _ = updated_model_gguf
    state = dict(model.state_dict())
    state.pop("model.norm.weight")
    with pytest.raises(GGUFExportError, match="output_norm"):
        write_gguf(state, default_model_path(), tmp_path / "broken.gguf")
    assert not list(tmp_path.iterdir())  # no half-written file
