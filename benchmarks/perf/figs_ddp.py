"""DDP figure of `bench_all.py`: weak scaling of the SchNet training step, 1 vs 2 processes (gloo on CPU, NCCL on GPUs)."""
from __future__ import annotations
import json, os, statistics, tempfile, time
from pathlib import Path
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init: str, out: str, preset: str, batch_size: int, steps: int, warmup: int, device: str):
    os.environ['OMP_NUM_THREADS'] = '1'; torch.set_num_threads(1); torch.set_flush_denormal(True)
    from perf.common import build, molecule_batches, train_step
    dev = f'cuda:{rank}' if device == 'cuda' else 'cpu'
    if device == 'cuda': torch.cuda.set_device(rank)
    dist.init_process_group('nccl' if device == 'cuda' else 'gloo', init_method=init, rank=rank, world_size=world)
    model = build('schnet', preset).to(dev)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if device == 'cuda' else None) if world > 1 else model
    batches = [x.to(dev) for x in molecule_batches(4, batch_size, seed=100 + rank)]
    step, times = train_step(ddp, 'fp32', dev), []
    for s in range(warmup + steps):
        if device == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter(); step(batches[s % len(batches)])
        if device == 'cuda': torch.cuda.synchronize()
        if s >= warmup: times.append(time.perf_counter() - t0)
    Path(f'{out}.{rank}').write_text(json.dumps({'median_s': statistics.median(times), 'times': times}))
    dist.barrier(); dist.destroy_process_group()


def _run(world: int, preset: str, batch_size: int, steps: int, warmup: int, device: str) -> float:
    "Median step seconds of the slowest rank (each rank times its own steps)."
    with tempfile.TemporaryDirectory() as tmp:
        out = f'{tmp}/times'
        mp.spawn(_worker, args=(world, f'file://{tmp}/pg', out, preset, batch_size, steps, warmup, device), nprocs=world, join=True)
        return max(json.loads(Path(f'{out}.{r}').read_text())['median_s'] for r in range(world))


def ddp_scaling(preset: str, batch_size: int, steps: int, warmup: int, rounds: int, device: str = 'cpu', world: int = 2) -> dict:
    "Weak scaling: per-rank batch fixed; throughput of `world` processes over one process, rounds alternating."
    t1, tw = [], []
    for r in range(rounds):
        for w in ((1, world) if r % 2 == 0 else (world, 1)):
            (t1 if w == 1 else tw).append(_run(w, preset, batch_size, steps, warmup, device))
    s1, sw = statistics.median(t1), statistics.median(tw)
    thr1, thrw = batch_size / s1, world * batch_size / sw
    return {'device': device, 'backend': 'nccl' if device == 'cuda' else 'gloo', 'world': world, 'per_rank_batch': batch_size,
            'step_ms_1': 1e3 * s1, f'step_ms_{world}': 1e3 * sw, 'structures_per_s_1': thr1, f'structures_per_s_{world}': thrw,
            'speedup': thrw / thr1, 'efficiency': thrw / (world * thr1), 'rounds': rounds, 'steps': steps}
