"""Peer and compiler figures of `bench_all.py`: molkit SchNet vs PyG SchNet, torch.compile vs eager."""
from __future__ import annotations
import sys, time
from pathlib import Path
import torch
from .common import TINY_SCHNET, Budget, build, interleaved, molecule_batches, slab_batches, sync, train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: reuse bench_schnet


def schnet_vs_pyg(b: Budget, device: str, batch_size: int) -> dict:
    "molkit vs torch_geometric SchNet: same weights, same batches and edges, energy + gradient forces step, interleaved."
    from bench_schnet import make_batches, peer_pair, step_fn
    from molkit.models.schnet import SCHNET_PRESETS, SchNetConfig
    torch.manual_seed(0)
    c = SchNetConfig(**TINY_SCHNET) if b.schnet_preset == 'tiny' else SCHNET_PRESETS[b.schnet_preset]
    batches = [x.to(device) for x in make_batches(4, batch_size, c.cutoff, 0)]
    pyg, ours, pyg_ef, ours_ef, diff = peer_pair(c, batches[0], device)
    runs = {'pyg': step_fn(pyg_ef, pyg.parameters()), 'molkit': step_fn(ours_ef, ours.parameters())}
    t = interleaved({k: (lambda s, k=k: runs[k](batches[s % len(batches)])) for k in runs}, b.peer_steps, b.warmup, device)
    return {'device': device, 'batch': batch_size, 'preset': b.schnet_preset, 'atoms_per_batch': sum(x.num_nodes for x in batches) / 4,
            'pyg_ms': 1e3 * t['pyg']['wall_s'], 'molkit_ms': 1e3 * t['molkit']['wall_s'],
            'ratio_wall': t['pyg']['wall_s'] / t['molkit']['wall_s'], 'ratio_cpu': t['pyg']['cpu_s'] / t['molkit']['cpu_s'],
            'energy_max_abs_diff_eV': diff, 'steps': t['pyg']['n']}


def _err(e: Exception) -> str:
    lines = [l for l in str(e).splitlines() if l.strip()]
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def compile_vs_eager(b: Budget, device: str, batch_size: int = 32, name: str = 'schnet') -> list[dict]:
    "A training step under torch.compile(dynamic=True) vs eager, compile time included; failures recorded with the reason."
    import torch._dynamo, torch._functorch.config as fcfg
    bs = batch_size if b.schnet_preset != 'tiny' else 4
    batches = [x.to(device) for x in (molecule_batches(4, bs, 7) if name == 'schnet' else slab_batches(4, bs, 7, b.slab_size))]
    variants = ([('energy + gradient forces', ('energy', 'forces')), ('energy only', ('energy',))] if name == 'schnet'
                else [('energy + direct forces', ('energy', 'forces'))])
    rows = []
    for variant, targets in variants:
        torch._dynamo.reset()
        loss = (lambda out, x: (out['energy'] - x.energy.float()).square().mean()) if targets == ('energy',) else None
        eager = build(name, b.schnet_preset).to(device)
        comp = build(name, b.schnet_preset).to(device)
        if name == 'gemnet_oc':  # fit the scale factors once (eager), the same for both
            eager(batches[0]); comp.load_state_dict(eager.state_dict())
        comp.load_state_dict(eager.state_dict())
        steps = {'eager': train_step(eager, 'fp32', device, loss_fn=loss, targets=targets),
                 'compiled': train_step(torch.compile(comp, dynamic=True), 'fp32', device, loss_fn=loss, targets=targets)}
        row = {'device': device, 'model': name, 'variant': variant, 'batch': bs}
        donated = fcfg.donated_buffer
        fcfg.donated_buffer = False  # else a double backward fails on donated buffers before reaching the real limitation
        try:
            firsts = []
            for k in range(len(batches)):  # every batch shape once: compilation and recompilation, timed
                sync(device); t0 = time.perf_counter(); steps['compiled'](batches[k]); sync(device)
                firsts.append(time.perf_counter() - t0)
            t = interleaved({k: (lambda s, k=k: steps[k](batches[s % len(batches)])) for k in steps}, b.compile_steps, 1, device)
            row.update(status='ok', compile_s=sum(firsts) - len(firsts) * t['eager']['wall_s'], first_step_s=firsts[0],
                       eager_ms=1e3 * t['eager']['wall_s'], compiled_ms=1e3 * t['compiled']['wall_s'],
                       speedup=t['eager']['wall_s'] / t['compiled']['wall_s'], steps=t['eager']['n'],
                       break_even_steps=_break_even(sum(firsts), len(firsts), t))
        except Exception as e:  # noqa: BLE001 - the reason is the result
            row.update(status='failed', reason=_err(e))
        finally: fcfg.donated_buffer = donated
        rows.append(row)
    torch._dynamo.reset()
    return rows


def _break_even(first_total: float, n_first: int, t: dict) -> float | None:
    "Steps after which compiling has paid for its compile time (None if compiled is not faster)."
    gain = t['eager']['wall_s'] - t['compiled']['wall_s']
    extra = first_total - n_first * t['compiled']['wall_s']
    return extra / gain if gain > 0 else None
