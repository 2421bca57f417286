"""cbam.insertion: attention put into a trained network computes what the network computed."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

import cbam
from cbam.experiments import store
from cbam.insertion import Blended, insert_attention


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def stored_baseline(seed: int = 0) -> nn.Module:
    """A plain network the course trained (the attention experiment's baseline)."""
    state = store.load_model_state("attention", "baseline", seed)
    model = cbam.resnet_cifar(8, state["fc.weight"].shape[0], width=16)
    model.load_state_dict(state)
    return model.eval()


def test_blended_is_the_identity_at_zero_and_the_attention_at_one():
    block = cbam.CBAM(16)
    x = torch.randn(2, 16, 6, 6)
    assert torch.equal(Blended(block)(x), x)
    torch.testing.assert_close(Blended(block, initial=1.0)(x), block(x))


@pytest.mark.parametrize("attention", ["cbam", "se", partial(cbam.CBAM, reduction=4)])
def test_a_trained_network_computes_exactly_what_it_did(attention):
    model = stored_baseline()
    x = torch.randn(32, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        insert_attention(model, attention)
        after = model(x)
    assert torch.equal(after, before)
    inserted = [m for m in model.modules() if isinstance(m, Blended)]
    assert len(inserted) == 3 and all(m.blend.item() == 0 for m in inserted)


def test_plain_cbam_inserted_the_usual_way_destroys_the_function():
    """Why Blended exists: the trained network with a fresh CBAM in every block."""
    model = stored_baseline()
    x = torch.randn(64, 3, 16, 16)
    with torch.no_grad():
        before = model(x).argmax(1)
        for block in model.modules():
            if isinstance(block, cbam.BasicBlock):
                block.attention = cbam.CBAM(block.bn2.num_features, reduction=4).eval()
        after = model(x).argmax(1)
    assert (after == before).float().mean() < 0.9


def test_fine_tuning_moves_the_blend_and_then_the_attention():
    model = insert_attention(stored_baseline().train(), partial(cbam.CBAM, reduction=4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, labels = torch.randn(16, 3, 16, 16), torch.randint(0, 2, (16,))
    blended = next(m for m in model.modules() if isinstance(m, Blended))
    first_mlp = blended.attention.channel.mlp[0].weight
    before = first_mlp.detach().clone()
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()
    assert blended.blend.item() != 0
    assert not torch.equal(first_mlp, before)  # from the second step, the blend is not 0


def test_modules_are_made_where_the_network_lives():
    model = insert_attention(cbam.resnet_cifar(8, dtype=torch.float64))
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_blocks_that_have_attention_keep_it():
    model = cbam.resnet_cifar(8, attention="se")
    kept = [m.attention for m in model.modules() if isinstance(m, cbam.BasicBlock)]
    insert_attention(model, "cbam")
    assert [m.attention for m in model.modules() if isinstance(m, cbam.BasicBlock)] == kept


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: insert_attention(nn.Linear(2, 2)), ValueError, "cbam.resnet networks"),
        (lambda: insert_attention(cbam.resnet_cifar(8), None), ValueError, "got None"),
        (lambda: Blended("cbam"), TypeError, "got str"),
    ],
    ids=["not a resnet", "no attention", "not a module"],
)
def test_bad_calls_say_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()
