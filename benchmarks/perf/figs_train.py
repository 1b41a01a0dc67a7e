"""Training-step figures of `bench_all.py`: backbones × precision × batch, step time and memory vs atoms, DMoE head overhead."""
from __future__ import annotations
import torch
from .common import (Budget, build, interleaved, molecule_batches, saved_activation_mib, slab_batches, sync, train_step)

MOLECULE_MODELS, SLAB_MODELS = ('schnet', 'painn'), ('gemnet_oc', 'graphormer3d')


def modes_for(device: str) -> list[str]:
    "fp32 and bf16 everywhere; fp16 (with its GradScaler) only on CUDA."
    return ['fp32', 'bf16', 'fp16'] if device.startswith('cuda') else ['fp32', 'bf16']


def batches_for(name: str, batch_size: int, device: str, n: int = 4, slab_size: tuple = (3, 3, 4)) -> list:
    if name in MOLECULE_MODELS: return [x.to(device) for x in molecule_batches(n, batch_size, seed=batch_size)]
    return [x.to(device) for x in slab_batches(n, batch_size, batch_size, slab_size)]


def train_steps(b: Budget, devices: list[str], models=MOLECULE_MODELS + SLAB_MODELS) -> list[dict]:
    "Energy + forces training-step structures/s per backbone, precision and batch size; precisions interleaved, same weights."
    rows = []
    for dev in devices:
        for name in models:
            for bs in (b.batch_sizes if name in MOLECULE_MODELS else b.slab_batch_sizes):
                batches = batches_for(name, bs, dev, slab_size=b.slab_size)
                steps = {m: train_step(build(name, b.schnet_preset).to(dev), m, dev) for m in modes_for(dev)}
                n = b.steps if name in MOLECULE_MODELS else b.slab_steps
                t = interleaved({m: (lambda s, m=m: steps[m](batches[s % len(batches)])) for m in steps}, n, b.warmup, dev)
                atoms = sum(x.num_nodes for x in batches) / len(batches)
                for m, r in t.items():
                    rows.append({'model': name, 'device': dev, 'precision': m, 'batch': bs, 'atoms_per_batch': atoms,
                                 'step_ms': 1e3 * r['wall_s'], 'cpu_ms': 1e3 * r['cpu_s'], 'structures_per_s': bs / r['wall_s'],
                                 'speedup_vs_fp32': t['fp32']['wall_s'] / r['wall_s'], 'steps': r['n']})
    return rows


def _peak_mib(model, batch, device: str) -> tuple[float, str]:
    "Peak memory of one forward + force graph + backward: CUDA allocator peak, or on CPU the tensors autograd saves."
    def fwd_bwd():
        out = model(batch, ['energy', 'forces'])
        (out['energy'].square().mean() + out['forces'].square().mean()).backward()
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats(); fwd_bwd(); sync(device)
        return torch.cuda.max_memory_allocated() / 2**20, 'CUDA max_memory_allocated'
    mib = saved_activation_mib(fwd_bwd, model.parameters())
    model.zero_grad(set_to_none=True)
    return mib, 'saved for backward (CPU)'


def atoms_sweep(b: Budget, devices: list[str], name: str = 'schnet') -> list[dict]:
    "How step time and memory grow with atoms per batch (SchNet fp32, molecules); batch sizes interleaved."
    rows = []
    for dev in devices:
        data = {bs: batches_for(name, bs, dev, 2) for bs in b.atoms_sweep}
        steps = {bs: train_step(build(name, b.schnet_preset).to(dev), 'fp32', dev) for bs in b.atoms_sweep}
        t = interleaved({bs: (lambda s, bs=bs: steps[bs](data[bs][s % 2])) for bs in steps}, b.steps, b.warmup, dev)
        for bs, r in t.items():
            model = build(name, b.schnet_preset).to(dev).train()
            mib, what = _peak_mib(model, data[bs][0], dev)
            atoms = sum(x.num_nodes for x in data[bs]) / 2
            edges = sum(int(model.backbone.graph(x)['edge_index'].shape[1]) for x in data[bs]) / 2
            rows.append({'model': name, 'device': dev, 'batch': bs, 'atoms_per_batch': atoms, 'edges_per_batch': edges,
                         'step_ms': 1e3 * r['wall_s'], 'us_per_atom': 1e6 * r['wall_s'] / atoms, 'memory_mib': mib, 'memory_kind': what})
    return rows


def dmoe_overhead(b: Budget, device: str = 'cpu', batch_size: int = 32) -> dict:
    "Step time of a DMoE distribution energy head vs the scalar energy head: SchNet, same backbone weights, same batches."
    from molkit.train.losses import LossSpec, total_loss
    bs = batch_size if b.schnet_preset != 'tiny' else 4
    batches = batches_for('schnet', bs, device)
    labels = {'energy': torch.randn(512, dtype=torch.float64)}
    scalar = build('schnet', b.schnet_preset).to(device)
    dist = build('schnet', b.schnet_preset, energy_head={'type': 'dist'}, labels=labels).to(device)
    dist.backbone.load_state_dict(scalar.backbone.state_dict())
    specs = {'scalar': [LossSpec('energy', 'l1'), LossSpec('forces', 'l2mae', 10.0)],
             'dmoe': [LossSpec('energy', 'dmoe'), LossSpec('forces', 'l2mae', 10.0)]}
    steps = {}
    for k, model in (('scalar', scalar), ('dmoe', dist)):
        def loss(out, batch, k=k, model=model):
            tg = {'energy': batch.energy.float(), 'forces': batch.forces}
            return total_loss(specs[k], out, tg, batch, model.heads)[0]
        steps[k] = train_step(model, 'fp32', device, loss_fn=loss)
    t = interleaved({k: (lambda s, k=k: steps[k](batches[s % len(batches)])) for k in steps}, b.dmoe_steps, b.warmup, device)
    nparams = {k: sum(p.numel() for p in m.heads['energy'].parameters()) for k, m in (('scalar', scalar), ('dmoe', dist))}
    return {'device': device, 'batch': bs, 'scalar_ms': 1e3 * t['scalar']['wall_s'], 'dmoe_ms': 1e3 * t['dmoe']['wall_s'],
            'scalar_cpu_ms': 1e3 * t['scalar']['cpu_s'], 'dmoe_cpu_ms': 1e3 * t['dmoe']['cpu_s'],
            'overhead': t['dmoe']['wall_s'] / t['scalar']['wall_s'] - 1, 'overhead_cpu': t['dmoe']['cpu_s'] / t['scalar']['cpu_s'] - 1,
            'head_params_scalar': nparams['scalar'], 'head_params_dmoe': nparams['dmoe'], 'steps': t['scalar']['n'], 'target': 0.05}
