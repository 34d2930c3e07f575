"""Time HML's per-step importance update at the MOTIFS MR size (P = 65,274,234 parameters).

Three ways to do the same update of Fisher, Omega and the pending term each step:
- fused: ImportanceState with the compiled kernel (one pass over persistent buffers);
- torch: ImportanceState with the PyTorch reference (per-parameter element-wise ops);
- cat:   the authors' approach: torch.cat of all parameters before the step and of all
         gradients and parameters after it, then the same arithmetic on the new tensors.
Only the update is timed (the simulated optimizer step is not). The MR penalty
(forward + backward) is timed for fused and torch too. The last output line is one JSON
object: fused_ms, torch_ms, cat_ms, cat_over_fused, cat_over_torch, mr_fused_ms,
mr_torch_ms, threads, num_params, mode, device.
"""
import argparse
import json
import os
import statistics
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-params", type=int, default=65_274_234)
    parser.add_argument("--num-tensors", type=int, default=64, help="P is split into this many tensors")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenMP threads (CPU)")
    parser.add_argument("--mode", choices=["paper", "official"], default="paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-mr", action="store_true", help="do not time the MR penalty")
    return parser.parse_args(argv)


def make_problem(num_params: int, num_tensors: int, device):
    """Parameters (with gradients) of P elements in `num_tensors` tensors; deterministic values."""
    import torch

    sizes = [num_params // num_tensors] * num_tensors
    sizes[-1] += num_params - sum(sizes)
    gen = torch.Generator().manual_seed(0)
    params = []
    for n in sizes:
        p = torch.nn.Parameter(torch.randn(n, generator=gen).to(device))
        p.grad = (torch.randn(n, generator=gen) * 1e-3).to(device)
        params.append(p)
    return params


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _optimizer_step(params, lr=1e-3):
    import torch

    with torch.no_grad():
        torch._foreach_add_(params, [p.grad for p in params], alpha=-lr)


def time_state(params, backend: str, mode: str, steps: int, warmup: int, device) -> float:
    """Median ms of before_step + after_step with the given kernel backend."""
    from hml_patch.importance import ImportanceState, forced_backend

    with forced_backend(backend):
        state = ImportanceState([(f"p{k}", p) for k, p in enumerate(params)], mode=mode)
        times = []
        for step in range(warmup + steps):
            _sync(device)
            start = time.perf_counter()
            state.before_step()
            _sync(device)
            elapsed = time.perf_counter() - start
            _optimizer_step(params)
            _sync(device)
            start = time.perf_counter()
            state.after_step(100.0 - step)  # a falling loss: every pending term is committed
            _sync(device)
            elapsed += time.perf_counter() - start
            if step >= warmup:
                times.append(elapsed * 1e3)
    return statistics.median(times)


def time_cat(params, mode: str, steps: int, warmup: int, device, eps: float = 1e-8, alpha: float = 0.5) -> float:
    """Median ms of the authors' style: concatenate everything every step, then compute."""
    import torch

    total = sum(p.numel() for p in params)
    fisher = torch.zeros(total, device=device)
    omega = torch.zeros(total, device=device)
    pending = torch.zeros(total, device=device)
    times = []
    with torch.no_grad():
        for step in range(warmup + steps):
            t = step + 1
            _sync(device)
            start = time.perf_counter()
            theta_before = torch.cat([p.view(-1) for p in params])
            _sync(device)
            elapsed = time.perf_counter() - start
            _optimizer_step(params)
            _sync(device)
            start = time.perf_counter()
            grad = torch.cat([p.grad.view(-1) for p in params])
            theta_now = torch.cat([p.view(-1) for p in params])
            dtheta = theta_now - theta_before
            if mode == "paper":
                if step > 0:
                    omega = omega + pending
                fisher = (grad * grad + fisher * (t - 1)) / t
                pending = -grad * dtheta / (0.5 * fisher * dtheta ** 2 + eps)
            else:
                current = (grad ** 2).nan_to_num(0.0).clamp(1e-20, 1.0)
                fisher = alpha * current + (1 - alpha) * fisher
                contribution = 2 * (grad * dtheta).clamp_min(1e-15) / (fisher * dtheta ** 2).clamp_min(1e-20)
                omega = omega + contribution.nan_to_num(0.0)
            del grad, theta_now, dtheta, theta_before
            _sync(device)
            elapsed += time.perf_counter() - start
            if step >= warmup:
                times.append(elapsed * 1e3)
    return statistics.median(times)


def time_mr(params, backend: str, steps: int, warmup: int, device) -> float:
    """Median ms of the MR penalty forward + backward (the parent: params after one step)."""
    from hml_patch.importance import ImportanceState, forced_backend

    with forced_backend(backend):
        state = ImportanceState([(f"p{k}", p) for k, p in enumerate(params)])
        state.before_step()
        state.after_step(1.0)
        state.finalize_stage()
        times = []
        for step in range(warmup + steps):
            for p in params:
                p.grad = None
            _sync(device)
            start = time.perf_counter()
            state.mr_penalty(0.5).backward()
            _sync(device)
            if step >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
            _optimizer_step(params)
    return statistics.median(times)


def run_benchmark(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = make_problem(args.num_params, args.num_tensors, device)
    result = {"num_params": args.num_params, "mode": args.mode, "device": str(device),
              "threads": torch.get_num_threads()}
    result["fused_ms"] = time_state(params, "native", args.mode, args.steps, args.warmup, device)
    result["torch_ms"] = time_state(params, "torch", args.mode, args.steps, args.warmup, device)
    result["cat_ms"] = time_cat(params, args.mode, args.steps, args.warmup, device)
    result["cat_over_fused"] = result["cat_ms"] / result["fused_ms"]
    result["cat_over_torch"] = result["cat_ms"] / result["torch_ms"]
    if not args.skip_mr:
        grads = [p.grad for p in params]
        result["mr_fused_ms"] = time_mr(params, "native", args.steps, args.warmup, device)
        result["mr_torch_ms"] = time_mr(params, "torch", args.steps, args.warmup, device)
        for p, g in zip(params, grads):
            p.grad = g
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    result = run_benchmark(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
