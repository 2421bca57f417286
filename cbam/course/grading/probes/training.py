"""Probe of lesson 05: one training step, compared with SGD's on an identical model.

Two steps in a row with momentum: gradients that are not zeroed pile up and change the second
step; a softmax before the cross-entropy changes the loss and every step.
"""

from __future__ import annotations

import torch
from torch import nn

from cbam.checks.training import _reference_step
from cbam.course.grading.probes import Draw, Probe


def _cases(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(2):
        features, hidden, classes, batch = (draw.int(3, 10), draw.int(3, 10), draw.int(2, 6),
                                            draw.int(4, 16))
        cases.append({"about": f"a {features}-{hidden}-{classes} network, batches of {batch}",
                      "sizes": (features, hidden, classes), "seed": draw.seed(),
                      "lr": float(draw.choice((0.05, 0.1, 0.3))),
                      "batches": [(draw.tensor(batch, features),
                                   torch.randint(classes, (batch,), generator=draw.generator))
                                  for _ in range(2)]})
    return cases


def _model(case: dict) -> tuple[nn.Module, torch.optim.Optimizer]:
    features, hidden, classes = case["sizes"]
    generator = torch.Generator().manual_seed(case["seed"])
    model = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return model, torch.optim.SGD(model.parameters(), lr=case["lr"], momentum=0.9)


def _steps(step, case: dict) -> dict:
    model, optimizer = _model(case)
    losses, after = [], []
    for images, labels in case["batches"]:
        loss = step(model, images.clone(), labels.clone(), optimizer)
        losses.append(loss if isinstance(loss, float) else {"type": type(loss).__name__})
        after.append([p.detach().clone() for p in model.parameters()])
    return {"losses": losses, "parameters after each step": after}


LESSON = "05"
PROBES = [
    Probe("training-step", ("train_step",), _cases, _steps,
          lambda case: _steps(_reference_step, case), atol=1e-6, rtol=1e-5),
]
