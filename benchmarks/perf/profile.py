"""PyTorch-profiler summary of one training step (SchNet, GemNet-OC): top operators and, on CUDA, the GPU-busy fraction.

    cd benchmarks && OMP_NUM_THREADS=1 PYTHONPATH=.. python -m perf.profile   # prints the tables (bench_all.py writes them to RESULTS.md)
"""
from __future__ import annotations
import time
import torch
from torch.profiler import ProfilerActivity, profile
from .common import build, molecule_batches, slab_batches, sync, train_step

CASES = {'schnet': (molecule_batches, 32), 'gemnet_oc': (slab_batches, 4)}


def _device_time_us(e) -> float:
    return float(getattr(e, 'self_device_time_total', getattr(e, 'self_cuda_time_total', 0.0)))


def _busy_us(prof) -> float:
    "Length of the union of the GPU kernel intervals (µs): time the GPU is busy, overlaps counted once."
    from torch.autograd import DeviceType
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == DeviceType.CUDA)
    busy, end = 0.0, float('-inf')
    for a, b in spans:
        if b > end: busy, end = busy + b - max(a, end), b
    return busy


def count_syncs(fn) -> int:
    "Host-device synchronisations during `fn()` (CUDA sync debug mode: one warning per synchronising call)."
    import warnings
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try: fn()
        finally: torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return sum('synchroniz' in str(x.message) for x in w)


def profile_step(name: str, device: str = 'cpu', schnet_preset: str = 'qm9_5A', batch_size: int | None = None,
                 warmup: int = 2, top: int = 10, slab_size: tuple = (3, 3, 4)) -> dict:
    "Profile one energy + forces training step after warm-up; the top operators by self CPU time (and by GPU time on CUDA)."
    make, bs = CASES[name]
    bs = batch_size or bs
    batches = [x.to(device) for x in (make(2, bs, 11) if make is molecule_batches else make(2, bs, 11, slab_size))]
    step = train_step(build(name, schnet_preset).to(device), 'fp32', device)
    for k in range(warmup): step(batches[k % 2])
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith('cuda') else [])
    with profile(activities=acts) as prof:
        t0 = time.perf_counter(); step(batches[0]); sync(device); wall = time.perf_counter() - t0
    ka = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in ka) or 1.0
    rows = sorted(ka, key=lambda e: -e.self_cpu_time_total)[:top]
    out = {'model': name, 'device': device, 'batch': bs, 'atoms': batches[0].num_nodes, 'step_ms_profiled': 1e3 * wall,
           'op_calls': int(sum(e.count for e in ka)), 'distinct_ops': len(ka),
           'top_cpu': [{'op': e.key, 'self_cpu_ms': e.self_cpu_time_total / 1e3, 'share': e.self_cpu_time_total / total_self,
                        'calls': e.count} for e in rows]}
    if device.startswith('cuda'):
        from torch.autograd import DeviceType
        kernels = [e for e in ka if e.device_type == DeviceType.CUDA]
        out['gpu_busy_fraction'] = _busy_us(prof) / 1e6 / wall
        out['host_syncs'] = count_syncs(lambda: step(batches[1]))
        out['top_gpu'] = [{'op': e.key, 'self_gpu_ms': _device_time_us(e) / 1e3, 'calls': e.count}
                          for e in sorted(kernels, key=lambda e: -_device_time_us(e))[:top]]
    return out


def markdown(p: dict) -> str:
    "One profile as a markdown table."
    head = (f"**{p['model']}**, {p['device']}, batch {p['batch']} ({p['atoms']} atoms): profiled step {p['step_ms_profiled']:.1f} ms, "
            f"{p['op_calls']} operator calls ({p['distinct_ops']} distinct)")
    if 'gpu_busy_fraction' in p: head += f", GPU busy {100 * p['gpu_busy_fraction']:.0f} % of the step"
    if 'host_syncs' in p: head += f", {p['host_syncs']} host-device synchronisations per step (incl. the optimiser step's gradient norm)"
    lines = [head, '', '| operator | self CPU ms | share | calls |', '| --- | --- | --- | --- |']
    lines += [f"| `{r['op']}` | {r['self_cpu_ms']:.2f} | {100 * r['share']:.1f} % | {r['calls']} |" for r in p['top_cpu']]
    if p.get('top_gpu'):
        lines += ['', '| kernel / op (GPU) | self GPU ms | calls |', '| --- | --- | --- |']
        lines += [f"| `{r['op'][:80]}` | {r['self_gpu_ms']:.2f} | {r['calls']} |" for r in p['top_gpu']]
    return '\n'.join(lines)


if __name__ == '__main__':
    from .common import apply_settings
    apply_settings()
    devs = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for d in devs:
        for n in CASES: print(markdown(profile_step(n, d)), '\n')
