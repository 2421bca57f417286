"""The check of lesson 05's exercise gives the right verdict, and the hint names the mistake."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cbam.checks.training import check_training_step


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def right(model, images, labels, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_a_correct_step_passes_every_line(capsys):
    assert check_training_step(right)
    lines = _lines(capsys)
    assert len(lines) == 3 and all(line.startswith("✓") for line in lines)


def test_a_step_returning_a_detached_tensor_is_told_to_return_a_number(capsys):
    def detached(model, images, labels, optimizer):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    assert not check_training_step(detached)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert len(failed) == 1 and "returned a tensor (loss.detach() is still a tensor)" in failed[0]
    assert "loss.item()" in failed[0]


def test_stepping_before_backward_names_the_order(capsys):
    def step_first(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        optimizer.step()
        loss.backward()
        return loss.item()

    assert not check_training_step(step_first)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert failed and all(
        "the order was optimizer.zero_grad(), then optimizer.step(), then loss.backward()" in line
        and "call backward first" in line for line in failed)
    assert not any("did not change" in line or "zero the gradients first" in line
                   for line in failed)


def test_forgetting_zero_grad_is_named(capsys):
    def piles_up(model, images, labels, optimizer):
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    assert not check_training_step(piles_up)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert len(failed) == 1 and "zero the gradients" in failed[0]


def test_returning_the_graph_is_named(capsys):
    def keeps_graph(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    assert not check_training_step(keeps_graph)
    assert "autograd graph" in capsys.readouterr().out


def test_a_step_without_update_or_with_its_own_optimizer_fails(capsys):
    def no_step(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss.item()

    def own_optimizer(model, images, labels, _optimizer):
        return right(model, images, labels, torch.optim.SGD(model.parameters(), lr=0.5))

    assert not check_training_step(no_step)
    assert "optimizer.step() was never called" in capsys.readouterr().out
    assert not check_training_step(own_optimizer)
    assert "optimizer.step() was never called" in capsys.readouterr().out


def test_a_stub_gives_one_line_and_the_generator_is_untouched(capsys):
    def stub(*_args):
        raise NotImplementedError("exercise training-step")

    state = torch.random.get_rng_state()
    assert not check_training_step(stub)
    assert len(_lines(capsys)) == 1
    check_training_step(right)
    assert torch.equal(state, torch.random.get_rng_state())
