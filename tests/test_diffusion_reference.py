"""Our numbers against the reference implementations, run outside the repository on the same inputs.

The reference values were produced by running the original functions — ``adjust_gradient`` of
justinhylee135/CUIG ``UnlearningMethods/DoCo/src/utils.py`` (followed by ``train_doco.py``'s final
``clip_grad_norm_(..., 1.0)``) and ``TextGrad.projection`` (bisection) of OPTML-Group/Diffusion-MU-Attack
``src/attackers/text_grad_.py`` — with torch 2.13 on the inputs below, and printing the results."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from unlearnkit.diffusion.attacks import project_simplex
from unlearnkit.diffusion.methods.concept_correction import GradientSurgeryHook

# reference p.grad after adjust_gradient(model, opt, acc, norm_grad(max 1.0), loss_a, loss_b) + final clip
REF_DOCO = {
    "attn2.to_k.weight": [[-0.04931478202342987, 0.6295393705368042, -0.5366061329841614],
                          [0.133681982755661, -0.328183114528656, 0.1254880428314209]],
    "attn2.to_v.weight": [[-0.1400425285100937, 0.1292700320482254, 0.07540751993656158],
                          [-0.1400425285100937, 0.1292700320482254, 0.07540751993656158]],
}  # fmt: skip
# reference TextGrad.projection of the rows below
REF_SIMPLEX = [
    [0.0, 1.0, 0.0, 0.0],
    [0.07500116527080536, 0.07500116527080536, 0.07500116527080536, 0.7750011682510376],
    [0.3333406448364258, 0.3333406448364258, 0.3333406448364258, 0.0],
]


def test_doco_gradient_surgery_matches_adjust_gradient():
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {"attn2": nn.ModuleDict({"to_k": nn.Linear(3, 2, bias=False), "to_v": nn.Linear(3, 2, bias=False)})}
    )
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2]])
    k, v = model["attn2"]["to_k"], model["attn2"]["to_v"]
    loss_a = (k(x) ** 2).sum() * 3.0 - v(x).sum() * 2.0  # the generator loss (unlearning)
    loss_b = (k(x) * 1.5).sum() + (v(x) ** 2).sum()  # the retention loss
    loss_a.backward()
    hook = GradientSurgeryHook(SimpleNamespace(retention=loss_b), weight=1.0, max_norm=1.0)
    hook.after_backward(SimpleNamespace(params=list(model.parameters())))
    assert hook.adjusted >= 1, "the inputs must make at least one tensor conflict"
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, torch.tensor(REF_DOCO[name]), atol=1e-6), name


def test_simplex_projection_matches_the_bisection_of_unlearndiffatk():
    v = torch.tensor([[0.3, 2.0, -1.0, 0.7], [0.2, 0.2, 0.2, 0.9], [5.0, 5.0, 5.0, -3.0]])
    # the reference bisects to 1e-5, so agreement is to that tolerance
    assert torch.allclose(project_simplex(v), torch.tensor(REF_SIMPLEX), atol=5e-5)
