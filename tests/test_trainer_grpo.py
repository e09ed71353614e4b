"""The GRPO trainer's maths: advantages and the loss on hand-computed groups, completion
log-probs with the shared prompt prefix against a plain forward pass, and one update of a tiny
model moving probability toward the better completion."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from metric_cards.trainer.grpo import (  # noqa: E402
    TrainSequence,
    common_prefix_length,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    sequences_from_group,
)
from metric_cards.trainer.policy import Policy  # noqa: E402


def tiny_model(vocab: int = 40):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def test_group_advantages_by_hand() -> None:
    # mean 0.5, population std sqrt(0.125)
    got = group_advantages([1.0, 0.0, 0.5, 0.5])
    assert got == pytest.approx([math.sqrt(2), -math.sqrt(2), 0.0, 0.0])
    assert group_advantages([1.0, 0.0, 0.5, 0.5], scale_by_std=False) == [0.5, -0.5, 0.0, 0.0]
    assert group_advantages([0.3, 0.3, 0.3]) == [0.0, 0.0, 0.0]  # no spread, no signal
    # a near-tie: std 0.0043 would make it +-1.7; the floor keeps it small
    near_tie = [0.05, 0.05, 0.05, 0.04]
    assert group_advantages(near_tie)[3] == pytest.approx(-math.sqrt(3))
    assert group_advantages(near_tie, min_std=0.05) == pytest.approx([0.05, 0.05, 0.05, -0.15])
    # a real difference is untouched by the floor
    assert group_advantages([1.0, 0.0, 0.5, 0.5], min_std=0.05)[0] == pytest.approx(math.sqrt(2))
    assert group_advantages([]) == []


def test_sequences_from_an_atropos_group() -> None:
    group = {
        "tokens": [[5, 6, 7, 8, 9], [5, 6, 7, 3]],
        "masks": [[-100, -100, -100, 8, 9], [-100, -100, -100, 3]],
        "scores": [0.9, 0.1],
        "generation_params": {"temperature": 0.7, "max_tokens": 10},
    }
    first, second = sequences_from_group(group)
    assert first.trained == [False, False, False, True, True]
    assert second.trained == [False, False, False, True]
    assert (first.advantage, second.advantage) == pytest.approx((1.0, -1.0))
    assert first.temperature == second.temperature == 0.7
    assert first.first_trained == 3 and first.n_trained == 2
    # the shared prefix stops before the first trained token's predictor (position 2)
    assert common_prefix_length([first, second]) == 2
    greedy = sequences_from_group({**group, "generation_params": {"temperature": 0}})
    assert greedy[0].temperature == 1.0  # greedy samples: logits are not rescaled
    with pytest.raises(ValueError, match="differ in length"):
        sequences_from_group({**group, "masks": [[-100, 8], [-100, 3]]})


def test_loss_by_hand() -> None:
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    trained = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    advantages = torch.tensor([2.0, -1.0])
    parts = grpo_loss(logprobs, logprobs.detach(), advantages, trained)
    # ratio 1: -(2 + 2) + (1 + 1 + 1) over 5 trained tokens
    assert float(parts.loss.detach()) == pytest.approx(-0.2)
    parts.loss.backward()
    expected = torch.tensor([[-0.4, -0.4, 0.0], [0.2, 0.2, 0.2]])
    assert torch.allclose(logprobs.grad, expected)
    assert parts.clipped_fraction == 0.0 and parts.mean_ratio == pytest.approx(1.0)

    # A ratio outside [0.8, 1.2] is clipped: its token gives the clipped value and no gradient
    logprobs = torch.tensor([[math.log(1.5), 0.0], [math.log(0.5), 0.0]], requires_grad=True)
    parts = grpo_loss(logprobs, torch.zeros(2, 2), advantages, torch.ones(2, 2), clip_eps=0.2)
    # tokens: -min(1.5*2, 1.2*2) = -2.4; -(1*2) = -2; -min(0.5*-1, 0.8*-1) = 0.8; -(1*-1) = 1
    assert float(parts.loss.detach()) == pytest.approx((-2.4 - 2.0 + 0.8 + 1.0) / 4)
    parts.loss.backward()
    assert logprobs.grad[0, 0] == 0.0 and logprobs.grad[1, 0] == 0.0
    assert float(logprobs.grad[0, 1]) == pytest.approx(-2.0 / 4)
    assert parts.clipped_fraction == pytest.approx(0.5)

    # KL to a reference (k3): exp(0.1) - 0.1 - 1 per token, weighted by kl_coef
    logprobs = torch.zeros(1, 2)
    parts = grpo_loss(
        logprobs, logprobs, torch.tensor([0.0]), torch.ones(1, 2),
        ref_logprobs=torch.full((1, 2), 0.1), kl_coef=0.5,
    )  # fmt: skip
    assert parts.kl == pytest.approx(math.exp(0.1) - 1.1, rel=1e-5)
    assert float(parts.loss.detach()) == pytest.approx(0.5 * (math.exp(0.1) - 1.1), rel=1e-5)
    # token_normaliser: the whole batch's count when micro-batches are accumulated
    parts = grpo_loss(
        torch.full((1, 2), -1.0), torch.full((1, 2), -1.0), torch.tensor([1.0]),
        torch.ones(1, 2), token_normaliser=8.0,
    )  # fmt: skip
    assert float(parts.loss.detach()) == pytest.approx(-2.0 / 8)


@pytest.mark.parametrize("shared", [True, False])
def test_completion_logprobs_match_a_plain_forward(shared: bool) -> None:
    model = tiny_model()
    prompt = [1, 2, 3, 4, 5, 6, 7] if shared else None
    shapes = [(9, 5), (12, 3), (10, 7)]
    sequences = []
    for i, (n_prompt, n_completion) in enumerate(shapes):
        head = prompt + [10 + i] * (n_prompt - 7) if prompt else [20 + i] * n_prompt
        tokens = head + [(3 * t + i) % 40 for t in range(n_completion)]
        trained = [False] * n_prompt + [True] * n_completion
        sequences.append(TrainSequence(tokens, trained, 1.0, 0.7, 0.0))
    assert (common_prefix_length(sequences) > 0) == shared
    with torch.no_grad():
        logprobs, mask = completion_logprobs(model, sequences)
        for i, seq in enumerate(sequences):
            full = torch.log_softmax(model(torch.tensor([seq.tokens])).logits[0] / 0.7, -1)
            expected = [
                full[t - 1, seq.tokens[t]] for t in range(len(seq.tokens)) if seq.trained[t]
            ]
            got = logprobs[i][mask[i] > 0]
            assert len(got) == len(expected) == seq.n_trained
            assert torch.allclose(got, torch.stack(expected), atol=1e-5)


def test_an_update_moves_probability_toward_the_better_completion(tmp_path) -> None:
    model = tiny_model()
    prompt = [1, 2, 3, 4, 5, 6]
    good, bad = [30, 31, 32, 33], [20, 21, 22, 23]
    group = {
        "tokens": [prompt + good, prompt + bad],
        "masks": [[-100] * 6 + good, [-100] * 6 + bad],
        "scores": [0.9, 0.2],
        "generation_params": {"temperature": 1.0},
    }
    sequences = sequences_from_group(group)

    def logprob_sums() -> list[float]:
        with torch.no_grad():
            logprobs, _ = completion_logprobs(model, sequences)
        return [float(x) for x in logprobs.sum(-1)]

    before = logprob_sums()
    policy = Policy(model, lr=1e-2, micro_batch=1, bf16=False)
    for _ in range(3):
        stats = policy.update([group])
    after = logprob_sums()
    assert after[0] > before[0] + 0.5 and after[1] < before[1] - 0.5
    assert stats.trained_tokens == 8 and stats.sequences == 2 and stats.grad_norm > 0
    # a group without spread changes nothing
    flat = {**group, "scores": [0.5, 0.5]}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert policy.update([flat]).sequences == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())

    # checkpoint round trip: weights, optimizer state and step
    policy.save(tmp_path / "ckpt", step=3, extra={"note": "x"})
    fresh = Policy(tiny_model(), lr=1e-2, micro_batch=1, bf16=False)
    restored = fresh.load(tmp_path / "ckpt")
    assert restored == {"step": 3, "extra": {"note": "x"}}
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in state.items())
    assert (
        fresh.optimizer.state_dict()["state"].keys()
        == policy.optimizer.state_dict()["state"].keys()
    )
    assert not list(tmp_path.glob("ckpt/.*tmp*"))
