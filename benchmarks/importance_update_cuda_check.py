"""One command on a GPU machine: build the CUDA importance kernels, check them, time them.

    python benchmarks/importance_update_cuda_check.py [--num-params N] [--build-dir DIR]

1. Uses `hml_patch._C` when it was built with CUDA, else compiles the kernels now with
   torch.utils.cpp_extension.load (nvcc + ninja; no pip install needed).
2. Element-wise check on random data (NaN, inf, zero and missing gradients, a tensor
   larger than one work chunk): paper and official steps and the MR penalty with its
   gradient, and both steps fused with the MR gradient (HML.FUSED_MR_GRAD), CUDA kernels vs
   the PyTorch reference on the same GPU and vs the CPU kernels; then a whole ImportanceState
   run (stage 1, finalize, stage 2 with MR through autograd and fused) on the GPU, compiled vs
   reference. Everything must be bit-identical (the MR sum: rel. 1e-12).
3. Times the update at the MOTIFS size on the GPU (benchmarks/importance_update.py).
The last line is one JSON object: "cuda_equal", "mismatches", then the timing keys.
The exit status is 1 when anything differs.
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for a checkout that is not installed

import torch  # noqa: E402

import importance_update  # noqa: E402
from hml_patch.importance import ImportanceState, extension_spec, forced_backend, kernels, reference  # noqa: E402


def load_cuda_kernels(build_dir: str) -> str:
    """Make sure kernels.native_module() has CUDA; returns where it came from."""
    module = kernels.native_module()
    if module is not None and module.has_cuda():
        return "hml_patch._C"
    kernels.use_native_module(extension_spec.build_jit(True, build_dir, verbose=False))
    return f"compiled now in {build_dir}"


def random_case(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sizes = [(33, 7), (5,), (), (1000, 3), (0,), (70001,), (300, 512)]
    params = [torch.randn(s, generator=gen) for s in sizes]
    grads = [torch.randn(s, generator=gen) * 10.0 ** torch.randint(-12, 3, s, generator=gen).float() for s in sizes]
    grads[1] = None
    grads[0].view(-1)[:4] = torch.tensor([float("nan"), float("inf"), 0.0, -float("inf")])
    offsets, total = [], 0
    for p in params:
        offsets.append(total)
        total += p.numel()
    state = [torch.rand(total, generator=gen) * 10.0 ** torch.randint(-10, 0, (total,), generator=gen).float(),
             torch.randn(total, generator=gen), torch.randn(total, generator=gen), torch.randn(total, generator=gen)]
    state[2][::7] = 0.0
    move = (lambda t: None if t is None else t.to(device))
    return [move(p) for p in params], [move(g) for g in grads], offsets, [move(t) for t in state]


def mismatches(a, b) -> int:
    same = (a.cpu() == b.cpu()) | (torch.isnan(a.cpu()) & torch.isnan(b.cpu()))
    return int((~same).sum())


def kernel_mismatches(native) -> dict:
    """CUDA kernels vs the reference on CUDA and vs the CPU kernels; element counts that differ."""
    counts = {}
    runs = {}
    for name, impl, device in (("cuda", native, "cuda"), ("torch_cuda", reference, "cuda"), ("cpu", native, "cpu")):
        params, grads, offsets, state = random_case(device)
        out = {}
        for fisher in ((1 / 5, 4 / 5, False), (0.5, 0.5, True)):  # running mean at t = 5, clamped EMA
            for commit in (False, True):
                bufs = [t.clone() for t in state]
                impl.paper_step(params, grads, offsets, *bufs, commit, 0.37, *fisher, 1e-8)
                out[f"paper_commit{int(commit)}_clamp{int(fisher[2])}"] = bufs
            bufs = [t.clone() for t in state[:3]]
            for _ in range(2):
                impl.official_step(params, grads, offsets, *bufs, 0.8, *fisher)
            out[f"official_clamp{int(fisher[2])}"] = bufs
        pf, po, pt = state[0].abs(), state[1].abs(), state[2]
        for l2 in (True, False):
            outs = [torch.empty(p.shape, device=device) for p in params]
            total = impl.mr_forward(params, outs, offsets, pf, po, pt, l2, 0.25)
            out[f"mr_grad_l2{int(l2)}"] = [o.reshape(-1) for o in outs]
            out[f"mr_value_l2{int(l2)}"] = float(total)
            mr = {"parent_fisher": pf, "parent_omega": po, "parent_theta": pt, "l2": l2, "coef": 0.25}
            bufs, factor = [t.clone() for t in state], torch.empty_like(state[0])
            total = impl.paper_step(params, grads, offsets, *bufs, True, 0.37, 0.5, 0.5, True, 1e-8,
                                    mr_factor=factor, **mr)
            out[f"paper_fused_l2{int(l2)}"] = bufs + [factor]
            out[f"mr_value_paper_fused_l2{int(l2)}"] = float(total)
            bufs, factor = [t.clone() for t in state[:3]], torch.empty_like(state[0])
            total = impl.official_step(params, grads, offsets, *bufs, 0.8, 0.5, 0.5, True, mr_factor=factor, **mr)
            out[f"official_fused_l2{int(l2)}"] = bufs + [factor]
            out[f"mr_value_official_fused_l2{int(l2)}"] = float(total)
        runs[name] = out
    for other in ("torch_cuda", "cpu"):
        for key, value in runs["cuda"].items():
            if key.startswith("mr_value"):
                rel = abs(value - runs[other][key]) / max(abs(value), 1e-300)
                counts[f"{key}_vs_{other}"] = int(rel > 1e-12)
            else:
                counts[f"{key}_vs_{other}"] = sum(mismatches(x, y) for x, y in zip(value, runs[other][key]))
    return counts


def state_run(backend: str, mode: str, fused: bool) -> dict:
    """Stage 1, finalize, stage 2 with MR (autograd or fused), on a small MLP on the GPU."""
    torch.manual_seed(0)
    results = {}
    with forced_backend(backend):
        models = [torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 51)).cuda()
                  for _ in range(2)]
        gen = torch.Generator(device="cuda").manual_seed(1)
        data = [(torch.randn(32, 64, device="cuda", generator=gen),
                 torch.randint(0, 51, (32,), device="cuda", generator=gen)) for _ in range(6)]
        state = ImportanceState(list(models[0].named_parameters()), mode=mode)
        for stage, model in enumerate(models):
            if stage == 1:
                state.finalize_stage()
                state.bind(list(model.named_parameters()))
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for x, y in data:
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                if stage == 1:
                    penalty = state.fused_mr_penalty if fused else state.mr_penalty
                    loss = loss + penalty(0.5, "l2" if mode == "paper" else "abs")
                loss.backward()
                state.add_mr_gradient()
                state.before_step()
                opt.step()
                state.after_step(loss.item())
        for key in ("fisher", "omega_raw", "pending", "parent_fisher", "parent_omega", "parent_theta"):
            if getattr(state, key) is not None:
                results[key] = getattr(state, key).clone()
        results["params"] = torch.cat([p.detach().reshape(-1) for p in models[1].parameters()])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-params", type=int, default=65_274_234)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "hml_importance_build"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible")
    source = load_cuda_kernels(args.build_dir)
    print(f"kernels: {source}; device: {torch.cuda.get_device_name()}", flush=True)
    counts = kernel_mismatches(kernels.native_module())
    for mode in ("paper", "official"):
        native_run, torch_run = state_run("native", mode, False), state_run("torch", mode, False)
        fused_run = state_run("native", mode, True)
        for key in native_run:
            counts[f"state_{mode}_{key}"] = mismatches(native_run[key], torch_run[key])
            counts[f"state_{mode}_fused_{key}"] = mismatches(fused_run[key], native_run[key])
    equal = not any(counts.values())
    print(f"element-wise: {'all equal' if equal else 'MISMATCH'}", flush=True)
    timing = importance_update.run_benchmark(importance_update.parse_args(
        ["--num-params", str(args.num_params), "--steps", str(args.steps), "--device", "cuda"]))
    print(json.dumps({"cuda_equal": equal, "mismatches": {k: v for k, v in counts.items() if v}, **timing}))
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
