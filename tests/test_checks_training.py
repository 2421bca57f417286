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


def softmax_first(model, images, labels, optimizer):
    optimizer.zero_grad()
    logits = model(images)
    loss = F.cross_entropy(F.softmax(logits, dim=1), labels)
    loss.backward()
    optimizer.step()
    return F.cross_entropy(logits, labels).item()  # the loss it returns is the right one


def test_softmax_before_cross_entropy_is_named_not_blamed_on_zeroing(capsys):
    assert not check_training_step(softmax_first)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert len(failed) == 2
    assert all("softmax was applied before F.cross_entropy" in line for line in failed)
    assert not any("zero the gradients" in line for line in failed)


def test_a_returned_loss_of_probabilities_names_softmax(capsys):
    def returns_it_too(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.cross_entropy(F.softmax(model(images), dim=-1), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    assert not check_training_step(returns_it_too)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert len(failed) == 3 and all("softmax was applied before" in line for line in failed)


def test_a_first_step_that_differs_otherwise_is_not_called_a_zeroing_problem(capsys):
    def doubled_logits(model, images, labels, optimizer):
        optimizer.zero_grad()
        logits = model(images)
        F.cross_entropy(2 * logits, labels).backward()
        optimizer.step()
        return F.cross_entropy(logits, labels).item()

    assert not check_training_step(doubled_logits)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert len(failed) == 2 and "the first step already differs" in failed[1]
    assert not any("zero the gradients first" in line or "softmax" in line for line in failed)
