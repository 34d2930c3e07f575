"""HML importance state: Fisher, Omega path integral, loss gate, MR penalty, kernels, resume."""
import copy
import io
import logging
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from hml_patch.importance import ImportanceState, forced_backend, kernels, reference, select_parameters

MR_FILTER = ["context_layer", "post", "rel", "ctx"]


def require_native(device: str = "cpu") -> None:
    """Skip when the compiled kernels cannot serve `device` (on CI a missing CPU build fails)."""
    reason = kernels.native_unavailable_reason(torch.device(device))
    if reason is not None:
        if os.environ.get("CI") and device == "cpu":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["torch", "native"])
def backend(request):
    if request.param == "native":
        require_native()
    with forced_backend(request.param):
        yield request.param


class Toy(nn.Module):
    """Predictor-like names: four selected tensors groups, one of them never used, one not selected."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.context_layer = nn.Linear(6, 5)
        self.post_emb = nn.Linear(5, 4)
        self.rel_compress = nn.Linear(4, 3)
        self.ctx_unused = nn.Linear(3, 2)
        self.freq_bias = nn.Embedding(4, 3)

    def forward(self, x):
        h = torch.tanh(self.post_emb(torch.tanh(self.context_layer(x))))
        return self.rel_compress(h) + self.freq_bias.weight[0]


def batches(num: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 6, generator=g), torch.randn(8, 3, generator=g)) for _ in range(num)]


def train(model, state, opt, data, mr_weight=None, distance="l2", fused=False, clip=None, grads=None):
    """Plain training loop with the importance hooks (MR through autograd, or fused: value only,
    gradient added after the backward; optional clipping); returns the recorded losses.
    grads: a list that receives every step's gradients as the optimizer sees them."""
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        if mr_weight is not None:
            penalty = state.fused_mr_penalty if fused else state.mr_penalty
            loss = loss + penalty(mr_weight, distance)
        loss.backward()
        state.add_mr_gradient()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip)
        if grads is not None:
            grads.append([None if p.grad is None else p.grad.clone() for p in model.parameters()])
        state.before_step()
        opt.step()
        state.after_step(loss.item(), True)
        losses.append(loss.item())
    return losses


def flat_views(state, flat):
    return {n: flat[o:o + math.prod(s)].view(s) for n, o, s in zip(state.names, state.offsets, state.shapes)}


def test_select_parameters_uses_the_authors_substring_filter():
    model = Toy()
    names = [n for n, _ in select_parameters(model, MR_FILTER)]
    assert names == ["context_layer.weight", "context_layer.bias", "post_emb.weight", "post_emb.bias",
                     "rel_compress.weight", "rel_compress.bias", "ctx_unused.weight", "ctx_unused.bias"]
    wrapped = [("module." + n, p) for n, p in select_parameters(model, MR_FILTER)]
    assert ImportanceState(wrapped).names == names


@pytest.mark.parametrize("mode,fisher", [("paper", None), ("official", None), ("paper", "ema"), ("official", "mean")])
def test_fisher_follows_the_rule_over_a_recorded_run(backend, mode, fisher):
    model = Toy()
    state = ImportanceState.from_module(model, MR_FILTER, mode=mode, fisher=fisher)
    rule = fisher or ("mean" if mode == "paper" else "ema")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    recorded = {n: [] for n in state.names}
    for x, y in batches(12):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        for n, p in select_parameters(model, MR_FILTER):
            recorded[n].append(np.zeros(p.shape) if p.grad is None else p.grad.double().numpy().copy())
        state.before_step()
        opt.step()
        state.after_step(loss.item())
    for name, got in flat_views(state, state.fisher).items():
        g2 = np.stack(recorded[name]) ** 2
        if mode == "official":  # the authors' code discards the first step
            g2 = g2[1:]
        if rule == "mean":
            expected = g2.mean(axis=0)
        else:
            expected = np.zeros(g2.shape[1:])
            for current in np.clip(g2, 1e-20, 1.0):  # EMA from zero
                expected = 0.5 * current + 0.5 * expected
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=2e-5, atol=0, err_msg=name)
    if rule == "mean":  # a parameter that never gets a gradient keeps F = 0
        assert not flat_views(state, state.fisher)["ctx_unused.weight"].any()


def quadratic_run(state, param, a, centres, lr):
    """SGD on L_t(theta) = 0.5 sum a (theta - c_t)^2; records theta before each step, g, loss."""
    thetas, grads, losses = [], [], []
    opt = torch.optim.SGD([param], lr=lr)
    for c in centres:
        opt.zero_grad()
        loss = 0.5 * (a * (param - c) ** 2).sum()
        loss.backward()
        thetas.append(param.detach().double().numpy().copy())
        grads.append(param.grad.double().numpy().copy())
        losses.append(loss.item())
        state.before_step()
        opt.step()
        state.after_step(loss.item())
    thetas.append(param.detach().double().numpy().copy())
    return np.stack(thetas), np.stack(grads), losses


def test_omega_equals_the_gated_path_integral_on_a_noisy_quadratic(backend):
    torch.manual_seed(0)
    n, steps, eps = 40, 25, 1e-8
    a = torch.rand(n) * 2 + 0.1
    centres = [torch.randn(n) * 0.3 + 1.0 for _ in range(steps)]  # minibatch noise: the loss can rise
    param = nn.Parameter(torch.zeros(n))
    state = ImportanceState([("theta", param)], mode="paper", eps=eps)
    thetas, grads, losses = quadratic_run(state, param, a, centres, lr=0.2)

    fisher = np.zeros(n)
    omega = np.zeros(n)
    for t in range(steps):
        fisher = (grads[t] ** 2 + t * fisher) / (t + 1)
        d = thetas[t + 1] - thetas[t]
        contribution = -grads[t] * d / (0.5 * fisher * d * d + eps)
        if t + 1 < steps and losses[t + 1] < losses[t]:
            omega += contribution
    decreases = sum(losses[t + 1] < losses[t] for t in range(steps - 1))
    assert 0 < decreases < steps - 1  # both branches of the gate were taken
    np.testing.assert_allclose(state.fisher.double().numpy(), fisher, rtol=1e-5)
    np.testing.assert_allclose(state.omega_raw.double().numpy(), omega, rtol=1e-4, atol=1e-6 * np.abs(omega).max())
    assert state.committed_steps == decreases

    state.finalize_stage()
    r = np.maximum(omega, np.finfo(np.float32).tiny)
    expected = 1 / (1 + np.exp(-np.log10(n * r / r.sum())))
    np.testing.assert_allclose(state.parent_omega.double().numpy(), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(state.parent_theta.numpy(), thetas[-1].astype(np.float32))


def test_omega_numerators_integrate_the_loss_drop_on_a_quadratic(backend):
    """With eps dominating the denominator, eps * sum_i Omega_i = sum_t -g.dtheta, which on a
    quadratic equals L(theta_0) - L(theta_last) + sum_t 0.5 dtheta^T A dtheta exactly."""
    torch.manual_seed(1)
    n, steps, eps = 30, 15, 1e5
    a = torch.rand(n) + 0.5
    centre = torch.randn(n)
    param = nn.Parameter(torch.zeros(n))
    state = ImportanceState([("theta", param)], mode="paper", eps=eps)
    thetas, _, losses = quadratic_run(state, param, a, [centre] * steps, lr=0.1)
    assert all(losses[t + 1] < losses[t] for t in range(steps - 1))  # every step but the last commits
    a64, c64 = a.double().numpy(), centre.double().numpy()

    def loss(theta):
        return 0.5 * float((a64 * (theta - c64) ** 2).sum())

    moves = np.diff(thetas[:steps], axis=0)  # the committed steps 0 .. steps-2
    curvature = 0.5 * float((a64 * moves ** 2).sum())
    path_integral = loss(thetas[0]) - loss(thetas[steps - 1]) + curvature
    assert eps * float(state.omega_raw.double().sum()) == pytest.approx(path_integral, rel=1e-4)


def test_loss_gate_commits_the_previous_step_only_when_the_loss_fell(backend):
    param = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    state = ImportanceState([("theta", param)], mode="paper", eps=1e-3)
    losses = [5.0, 4.0, 6.0, 3.0, 3.0]
    rng = np.random.default_rng(0)
    fisher = np.zeros(3)
    pending, omega = [], np.zeros(3)
    for t, loss in enumerate(losses):
        g = rng.normal(size=3).astype(np.float32)
        step = rng.normal(size=3).astype(np.float32) * 0.1
        param.grad = torch.from_numpy(g)
        before = param.detach().double().numpy().copy()
        state.before_step()
        with torch.no_grad():
            param.add_(torch.from_numpy(step))
        state.after_step(loss)
        if t >= 1 and losses[t] < losses[t - 1]:
            omega += pending[-1]
        fisher = (g.astype(np.float64) ** 2 + t * fisher) / (t + 1)
        d = param.detach().double().numpy() - before
        pending.append(-g * d / (0.5 * fisher * d * d + 1e-3))
        np.testing.assert_allclose(state.omega_raw.double().numpy(), omega, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(state.pending.double().numpy(), pending[-1], rtol=1e-5)
    # committed: step 0 (4 < 5) and step 2 (3 < 6); step 1 (6 > 4), step 3 (3 == 3) and the last are not
    np.testing.assert_allclose(state.omega_raw.double().numpy(), pending[0] + pending[2], rtol=1e-5)
    assert state.committed_steps == 2


def _snapshot(state):
    return copy.deepcopy({k: (v.clone() if torch.is_tensor(v) else v) for k, v in state.__dict__.items()
                          if k not in ("_params",)})


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_a_step_skipped_by_the_grad_scaler_leaves_the_state_untouched(backend, mode):
    def run(with_bad_step: bool):
        model = Toy()
        state = ImportanceState.from_module(model, MR_FILTER, mode=mode)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=1000)
        data = batches(6)
        for i, (x, y) in enumerate(data):
            attempts = [True, False] if (with_bad_step and i == 3) else [False]
            for poisoned in attempts:
                opt.zero_grad()
                loss = ((model(x) - y) ** 2).mean()
                scaler.scale(loss).backward()
                if poisoned:
                    model.post_emb.weight.grad[0, 0] = float("inf")
                scaler.unscale_(opt)
                state.before_step()
                before = _snapshot(state) if poisoned else None
                scale = scaler.get_scale()
                scaler.step(opt)
                scaler.update()
                applied = scaler.get_scale() >= scale
                assert applied != poisoned
                state.after_step(loss.item(), applied)
                if poisoned:
                    after = _snapshot(state)
                    after["_in_step"] = True  # the only flag after_step() clears
                    for key, value in before.items():
                        assert (torch.equal(value, after[key]) if torch.is_tensor(value)
                                else value == after[key]), key
        return state, model

    clean_state, clean_model = run(False)
    skipped_state, skipped_model = run(True)
    for key in ("fisher", "omega_raw") + (("pending",) if mode == "paper" else ()):
        assert torch.equal(getattr(clean_state, key), getattr(skipped_state, key)), key
    for p, q in zip(clean_model.parameters(), skipped_model.parameters()):
        assert torch.equal(p, q)
    assert clean_state.step_count == skipped_state.step_count == 6


def _random_case(device, seed=0, sizes=((33, 7), (5,), (), (1000, 3), (0,), (70001,))):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g).to(device) for s in sizes]
    grads = []
    for s in sizes:
        magnitude = 10.0 ** torch.randint(-12, 3, s, generator=g).float()
        grads.append((torch.randn(s, generator=g) * magnitude).to(device))
    grads[1] = None  # a parameter without gradient
    grads[0].view(-1)[:4] = torch.tensor([float("nan"), float("inf"), 0.0, -float("inf")])
    offsets, total = [], 0
    for p in params:
        offsets.append(total)
        total += p.numel()
    return params, grads, offsets, total


def _state_buffers(total, device, seed):
    g = torch.Generator().manual_seed(seed)
    fisher = torch.rand(total, generator=g) * 10.0 ** torch.randint(-10, 0, (total,), generator=g).float()
    theta_prev = torch.randn(total, generator=g)
    theta_prev[::7] = 0.0
    return [t.to(device) for t in (fisher, torch.randn(total, generator=g), theta_prev,
                                   torch.randn(total, generator=g))]


def _same(x, y):
    return bool(((x == y) | (torch.isnan(x) & torch.isnan(y))).all())


def _compare_kernels(device):
    native = kernels.native_module()
    params, grads, offsets, total = _random_case(device)
    fisher_rules = ((1 / 5, 4 / 5, False), (0.5, 0.5, True))  # running mean at t = 5, clamped EMA
    for commit, scale, fisher in ((False, 1.0, fisher_rules[0]), (True, 0.37, fisher_rules[0]),
                                  (True, 1.0, fisher_rules[1])):
        a, b = _state_buffers(total, device, 3), _state_buffers(total, device, 3)
        args = (commit, scale, *fisher, 1e-8)
        reference.paper_step(params, grads, offsets, *a, *args)
        native.paper_step(params, grads, offsets, *b, *args)
        assert all(_same(x, y) for x, y in zip(a, b)), f"paper commit={commit} fisher={fisher}"
    for fisher in fisher_rules:
        a, b = _state_buffers(total, device, 4)[:3], _state_buffers(total, device, 4)[:3]
        for _ in range(2):
            reference.official_step(params, grads, offsets, *a, 0.8, *fisher)
            native.official_step(params, grads, offsets, *b, 0.8, *fisher)
        assert all(_same(x, y) for x, y in zip(a, b)), f"official fisher={fisher}"
    pf, po = (t.abs() for t in _state_buffers(total, device, 5)[:2])
    pt = _state_buffers(total, device, 6)[2]
    for l2 in (True, False):
        outs_ref = [torch.empty(p.shape, device=device) for p in params]
        outs_nat = [torch.empty(p.shape, device=device) for p in params]
        outs_ref[2] = outs_nat[2] = None  # a parameter that needs no gradient
        expected = reference.mr_forward(params, outs_ref, offsets, pf, po, pt, l2, 0.25)
        got = native.mr_forward(params, outs_nat, offsets, pf, po, pt, l2, 0.25)
        assert got.dtype == torch.float64 and float(got) == pytest.approx(float(expected), rel=1e-12)
        assert all((x is None and y is None) or torch.equal(x, y) for x, y in zip(outs_ref, outs_nat)), f"l2={l2}"
        value_only = native.mr_forward(params, [], offsets, pf, po, pt, l2, 0.0)
        assert float(value_only) == float(got)
    _compare_fused_steps(native, params, grads, offsets, total, device, (pf, po, pt))


def _compare_fused_steps(native, params, grads, offsets, total, device, parent):
    """Steps fused with the MR gradient: the state as without fusion, the factors and the MR sum
    as mr_forward at the updated parameters (equal bits within a backend), native = reference."""
    for rule in ("paper", "official"):
        for l2 in (True, False):
            results = []
            for impl in (reference, native):
                plain, fused = _state_buffers(total, device, 7), _state_buffers(total, device, 7)
                factor = torch.full((total,), float("nan"), device=device)
                if rule == "paper":
                    args = (True, 0.37, 1 / 5, 4 / 5, False, 1e-8)
                    assert impl.paper_step(params, grads, offsets, *plain, *args) is None
                    got = impl.paper_step(params, grads, offsets, *fused, *args, mr_factor=factor,
                                          parent_fisher=parent[0], parent_omega=parent[1], parent_theta=parent[2],
                                          l2=l2, coef=0.25)
                else:
                    args = (0.8, 0.5, 0.5, True)
                    assert impl.official_step(params, grads, offsets, *plain[:3], *args) is None
                    got = impl.official_step(params, grads, offsets, *fused[:3], *args, mr_factor=factor,
                                             parent_fisher=parent[0], parent_omega=parent[1],
                                             parent_theta=parent[2], l2=l2, coef=0.25)
                assert all(_same(x, y) for x, y in zip(plain, fused)), f"{rule} l2={l2}: fusion changed the state"
                outs = [torch.empty(p.shape, device=device) for p in params]
                expected = impl.mr_forward(params, outs, offsets, *parent, l2, 0.25)
                assert got.dtype == torch.float64 and float(got) == float(expected), f"{rule} l2={l2} sum"
                assert torch.equal(factor, torch.cat([o.reshape(-1) for o in outs])), f"{rule} l2={l2} factors"
                results.append((float(got), factor))
            assert results[1][0] == pytest.approx(results[0][0], rel=1e-12)
            assert torch.equal(results[0][1], results[1][1]), f"{rule} l2={l2}: native factors differ"


def test_cpp_kernels_equal_the_pytorch_reference_elementwise():
    require_native("cpu")
    _compare_kernels("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_kernels_equal_the_pytorch_reference_elementwise():
    require_native("cuda")
    _compare_kernels("cuda")


def _stage1_then_student(data, student_seed, mode="paper", momentum=0.0):
    """(state, student): a Toy teacher trained on ``data`` and finished as stage 1, then a fresh
    Toy student bound to the state."""
    teacher = Toy(seed=0)
    state = ImportanceState.from_module(teacher, MR_FILTER, mode=mode)
    train(teacher, state, torch.optim.SGD(teacher.parameters(), lr=0.05, momentum=momentum), data)
    state.finalize_stage()
    student = Toy(seed=student_seed)
    state.bind(select_parameters(student, MR_FILTER))
    return state, student


@pytest.mark.parametrize("distance,upstream", [("l2", 1.0), ("abs", 1.0), ("l2", 3.0)])
def test_mr_gradient_equals_the_formula(backend, distance, upstream):
    state, student = _stage1_then_student(batches(5), student_seed=7)
    beta = 0.75
    loss = state.mr_penalty(beta, distance)
    (upstream * loss).backward()
    w = (state.parent_fisher + state.parent_omega).double()
    d = torch.cat([p.detach().reshape(-1) for p in state.parameters]).double() - state.parent_theta.double()
    P = state.num_params
    expected_value = beta * float((w * (d * d if distance == "l2" else d.abs())).sum()) / P
    expected_grad = upstream * (2 * w * d if distance == "l2" else w * torch.sign(d)) * beta / P
    assert float(loss.detach()) == pytest.approx(expected_value, rel=1e-6)
    for name, offset, got in zip(state.names, state.offsets, state.parameters):
        np.testing.assert_allclose(got.grad.reshape(-1).double().numpy(),
                                   expected_grad[offset:offset + got.numel()].numpy(),
                                   rtol=1e-6, atol=1e-12, err_msg=name)
    assert student.freq_bias.weight.grad is None
    with torch.no_grad():
        assert float(state.mr_penalty(beta, distance)) == float(loss.detach())


def test_mr_penalty_survives_a_second_backward(backend):
    state, student = _stage1_then_student(batches(3), student_seed=3)
    loss = state.mr_penalty(1.0)
    loss.backward(retain_graph=True)
    once = [p.grad.clone() for p in state.parameters]
    loss.backward()
    for first, p in zip(once, state.parameters):
        assert torch.equal(p.grad, 2 * first)


class TwoBranch(Toy):
    """A Toy whose ``ctx_unused`` is used on every other call, so the main loss gives some MR
    parameters no gradient in some steps."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = super().forward(x)
        if self.calls % 2:
            out = out + self.ctx_unused(out).sum(dim=1, keepdim=True)
        return out


def _fused_vs_autograd_run(mode, distance, clip, fused, steps=5):
    """(per-step gradients, logged MR values, state, student) of stage 2 on a TwoBranch student."""
    teacher = TwoBranch(seed=0)
    state = ImportanceState.from_module(teacher, MR_FILTER, mode=mode)
    train(teacher, state, torch.optim.SGD(teacher.parameters(), lr=0.05), batches(4))
    state.finalize_stage()
    student = TwoBranch(seed=4)
    state.bind(select_parameters(student, MR_FILTER))
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    values, grads = [], []
    original = state.fused_mr_penalty if fused else state.mr_penalty

    def recording(weight, dist):
        value = original(weight, dist)
        values.append(float(value.detach()))
        return value

    state.fused_mr_penalty = state.mr_penalty = recording
    train(student, state, opt, batches(steps, seed=11), mr_weight=3.0, distance=distance, fused=fused, clip=clip,
          grads=grads)
    return grads, values, state, student


@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("mode,distance", [("paper", "l2"), ("paper", "abs"), ("official", "abs"),
                                           ("official", "l2")])
def test_fused_mr_gradient_equals_autograd_elementwise(backend, mode, distance, clip):
    """Every step's gradient (as the optimizer sees it, after clipping), every logged loss_mr value and
    the resulting parameters and importance buffers are the same bits on both paths."""
    ref_grads, ref_values, ref_state, ref_model = _fused_vs_autograd_run(mode, distance, clip, fused=False)
    grads, values, state, model = _fused_vs_autograd_run(mode, distance, clip, fused=True)
    assert values == ref_values and len(values) == 5 and all(v > 0 for v in values)
    for step, (expected, got) in enumerate(zip(ref_grads, grads)):
        for (name, _), e, g in zip(model.named_parameters(), expected, got):
            assert (e is None) == (g is None), (step, name)
            assert e is None or torch.equal(e, g), (step, name)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(p, q), name
    for key in ("fisher", "omega_raw", "pending"):
        if getattr(ref_state, key) is not None:
            assert torch.equal(getattr(state, key), getattr(ref_state, key)), key
    if clip is not None:  # the clip was active, so the MR gradient was in the clipped total
        unclipped = _fused_vs_autograd_run(mode, distance, None, fused=True)[0]
        assert not all(torch.equal(a, b) for a, b in zip(unclipped[1], grads[1]) if a is not None)


def test_fused_mr_gradient_must_be_added_before_the_step():
    state, student = _stage1_then_student(batches(3), student_seed=3)
    loss = ((student(batches(1)[0][0])) ** 2).mean() + state.fused_mr_penalty(1.0)
    assert not state.fused_mr_penalty(1.0).requires_grad
    loss.backward()
    with pytest.raises(RuntimeError, match="add_mr_gradient"):
        state.before_step()
    state.add_mr_gradient()
    state.before_step()


def _stage_run(mode, total_steps, stop_after=None, resume_from=None, fused=False):
    """Stage 1 (4 steps) then stage 2 with MR; optionally stop/resume in stage 2 through bytes."""
    data1, data2 = batches(4, seed=2), batches(total_steps, seed=3)
    state, student = _stage1_then_student(data1, student_seed=5, mode=mode, momentum=0.9)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    start = 0
    if resume_from is not None:
        checkpoint = torch.load(io.BytesIO(resume_from), weights_only=False)
        student.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["optimizer"])
        state = ImportanceState.from_module(student, MR_FILTER, mode=mode)
        state.load_state_dict(checkpoint["importance"])
        start = checkpoint["step"]
    end = total_steps if stop_after is None else stop_after
    train(student, state, opt, data2[start:end], mr_weight=0.5, distance="l2" if mode == "paper" else "abs",
          fused=fused)
    if stop_after is not None:
        buffer = io.BytesIO()
        torch.save({"model": student.state_dict(), "optimizer": opt.state_dict(),
                    "importance": state.state_dict(), "step": stop_after}, buffer)
        return buffer.getvalue()
    return state, student


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("mode", ["paper", "official"])
def test_state_dict_resume_is_bit_identical(mode, fused):
    """A resumed stage 2 equals an uninterrupted one; the fused MR path (resumed) equals autograd."""
    reference_state, reference_model = _stage_run(mode, 7)
    saved = _stage_run(mode, 7, stop_after=3, fused=fused)
    resumed_state, resumed_model = _stage_run(mode, 7, resume_from=saved, fused=fused)
    for key in ("fisher", "omega_raw", "pending", "parent_fisher", "parent_omega", "parent_theta"):
        if getattr(reference_state, key) is not None:
            assert torch.equal(getattr(reference_state, key), getattr(resumed_state, key)), key
    for (n, p), (_, q) in zip(reference_model.named_parameters(), resumed_model.named_parameters()):
        assert torch.equal(p, q), n
    assert (reference_state.step_count, reference_state.prev_loss, reference_state.committed_steps) == (
        resumed_state.step_count, resumed_state.prev_loss, resumed_state.committed_steps)
    checkpoint = torch.load(io.BytesIO(saved), weights_only=False)["importance"]
    assert set(checkpoint["params"]) == set(reference_state.names)
    assert checkpoint["params"]["context_layer.weight"]["parent_omega"].shape == (5, 6)


def test_finalize_handles_non_positive_raw_importance():
    param = nn.Parameter(torch.zeros(6))
    state = ImportanceState([("theta", param)], mode="paper")
    raw = np.array([-3.0, 0.0, 1e-30, 2.0, 5.0, 7.0])
    state.omega_raw.copy_(torch.tensor(raw))
    state.finalize_stage()
    omega = state.parent_omega.double().numpy()
    assert np.isfinite(omega).all() and (omega >= 0).all() and (omega <= 1).all()
    assert (omega[:3] < 1e-12).all()  # importance ~ 0 for movement that did not lower the loss
    r = raw[3:]
    total = r.sum() + np.finfo(np.float32).tiny * 2 + np.float32(1e-30)
    np.testing.assert_allclose(omega[3:], 1 / (1 + np.exp(-np.log10(6 * r / total))), rtol=1e-5)

    official = ImportanceState([("theta", nn.Parameter(torch.zeros(4)))], mode="official")
    official.fisher.copy_(torch.tensor([0.0, 1e-20, 1e-4, 1.0]))
    official.omega_raw.copy_(torch.tensor([0.0, 2e5, 1.0, 4e5]))
    official.finalize_stage()
    for got, x in ((official.parent_fisher, [np.finfo(np.float32).tiny, 1e-20, 1e-4, 1.0]),
                   (official.parent_omega, [np.finfo(np.float32).tiny, 2e5, 1.0, 4e5])):
        logs = np.log10(np.array(x))
        np.testing.assert_allclose(got.double().numpy(), 1 / (1 + np.exp(-(logs - logs.mean()))), rtol=1e-5)


def test_missing_extension_falls_back_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(kernels._selection, "module", None)
    monkeypatch.setattr(kernels._selection, "tried_import", True)
    monkeypatch.setattr(kernels._selection, "import_error", "simulated")
    monkeypatch.setattr(kernels._selection, "warned", set())
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        for _ in range(3):
            assert kernels.implementation(torch.device("cpu")) is reference
    assert len([r for r in caplog.records if "falls back" in r.getMessage()]) == 1
    with forced_backend("native"), pytest.raises(RuntimeError, match="simulated"):
        kernels.implementation(torch.device("cpu"))
