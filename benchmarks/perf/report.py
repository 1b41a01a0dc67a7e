"""Markdown of `bench_all.py` results, and its block in RESULTS.md between markers."""
from __future__ import annotations
from pathlib import Path

BEGIN, END = '<!-- bench_all:begin -->', '<!-- bench_all:end -->'


def markers(block: str = 'bench_all') -> tuple[str, str]:
    return f'<!-- {block}:begin -->', f'<!-- {block}:end -->'
NM = 'not measured (no GPU)'


def _f(x, fmt='.2f'):
    return 'n/a' if x is None else format(x, fmt)


def _table(head: list[str], rows: list[list]) -> list[str]:
    return ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


def targets(res: dict) -> list[list]:
    "The issue's targets: measured ratio, target, met / not met / not measured."
    f, rows, cuda = res['figures'], [], res['environment']['cuda']
    peers = {(p['device'], p['batch']): p for p in f.get('schnet_vs_pyg', []) if 'ratio_wall' in p}
    for (dev, bs), p in peers.items():
        goal = 1.5 if dev == 'cpu' else 1.0
        rows.append([f"molkit/PyG SchNet E+F step, {dev}, batch {bs}", f"{p['ratio_wall']:.2f}× (CPU time {p['ratio_cpu']:.2f}×)",
                     f"≥ {goal}×", 'met' if p['ratio_wall'] >= goal else 'not met'])
    if not cuda: rows.append(['molkit/PyG SchNet E+F step, CUDA', NM, '≥ 1.0×', 'not measured'])
    for c in f.get('compile', []):
        val = f"{c['speedup']:.2f}×" if c.get('status') == 'ok' else f"fails: {c.get('reason', '')[:120]}"
        rows.append([f"torch.compile/eager {c.get('model', 'schnet')} ({c['variant']}), {c['device']}", val, '≥ 1.3× on CUDA (CPU: reported)',
                     ('met' if c.get('speedup', 0) >= 1.3 else 'not met') if c['device'].startswith('cuda') else 'CPU: no target'])
    if not cuda: rows.append(['torch.compile/eager SchNet and GemNet-OC, CUDA', NM, '≥ 1.3×', 'not measured'])
    for d in f.get('dmoe_overhead', []):
        rows.append([f"DMoE head step overhead, {d['device']}, batch {d['batch']}", f"{100 * d['overhead']:+.1f} % (CPU time {100 * d['overhead_cpu']:+.1f} %)",
                     '≤ 5 %', 'met' if d['overhead'] <= 0.05 else 'not met'])
    lw = f.get('loader_wait')
    if lw:
        best = min(lw[f'wait_fraction_w{w}'] for w in lw['workers'])
        rows.append([f"data wait / step time, SchNet batch {lw['batch_size']}, {lw['device']}",
                     ', '.join(f"{w} workers {100 * lw[f'wait_fraction_w{w}']:.1f} %" for w in lw['workers']), '< 5 %',
                     'met' if best < 0.05 else 'not met'])
    gem = {r['precision']: r for r in f.get('train_steps', []) if r['model'] == 'gemnet_oc' and r['device'].startswith('cuda')}
    rows.append(['GemNet-OC bf16/fp32 step, CUDA', f"{gem['bf16']['speedup_vs_fp32']:.2f}×" if 'bf16' in gem else NM, '≥ 1.5×',
                 ('met' if gem['bf16']['speedup_vs_fp32'] >= 1.5 else 'not met') if 'bf16' in gem else 'not measured'])
    busy = sorted([p for p in f.get('profiles', []) if 'gpu_busy_fraction' in p and p['model'] == 'schnet'], key=lambda p: -p['batch'])
    rows.append(['GPU busy, SchNet step', f"{100 * busy[0]['gpu_busy_fraction']:.0f} % (batch {busy[0]['batch']})" if busy else NM,
                 '≥ 90 % at batch 128', ('met' if busy[0]['gpu_busy_fraction'] >= 0.9 else 'not met') if busy else 'not measured'])
    return rows


def _sections(f: dict) -> list[str]:
    out = []
    if 'lmdb_decode' in f:
        d = f['lmdb_decode']
        out += ['### Data: LMDB decode, molkit vs legacy pickle', ''] + _table(
            ['records', 'decode legacy', 'decode molkit', 'records/s legacy / molkit', 'ratio', 'dataset[i] ratio'],
            [[f"{d['records']} OC20-like (10–225 atoms)", f"{d['decode_legacy_us']:.1f} µs", f"{d['decode_molkit_us']:.1f} µs",
              f"{d['records_per_s_legacy']:.0f} / {d['records_per_s_molkit']:.0f}", f"**{d['decode_ratio']:.1f}×**", f"{d['getitem_ratio']:.1f}×"]]) + ['']
    if 'loader_wait' in f:
        d = f['loader_wait']
        out += [f"### Data: DataLoader wait as a fraction of the SchNet training step (batch {d['batch_size']}, {d['device']})", ''] + _table(
            ['workers (+edges: radius graphs built in the loader)', 'median wait', 'median step (wait included)', 'wait / step time'],
            [[w, f"{d[f'median_wait_ms_w{w}']:.2f} ms", f"{d[f'median_step_ms_w{w}']:.1f} ms", f"**{100 * d[f'wait_fraction_w{w}']:.1f} %**"] for w in d['workers']]) + ['']
    if 'neighbour_lists' in f:
        rows = []
        for r in f['neighbour_lists']:
            g = (f"{r['molkit_cuda_ms']:.2f} ms ({r['cuda_ratio_vs_cpu']:.1f}× CPU)" if 'molkit_cuda_ms' in r
                 else r.get('molkit_cuda_error', NM))
            rows.append([r['case'], r['structures'], r['atoms'], f"{r['cutoff_A']:g} Å", f"{r['edges']} / {r['edges_ase']}", f"{r['ase_ms']:.2f} ms",
                         f"{r['molkit_cpu_ms']:.2f} ms", f"**{r['ratio_vs_ase']:.1f}×**", g])
        out += ['### Data: neighbour lists, molkit (vesin) vs ASE `neighbor_list`', ''] + _table(
            ['structures', 'n', 'atoms', 'cutoff', 'edges molkit / ASE', 'ASE', 'molkit CPU', 'ratio', 'molkit CUDA'], rows) + ['']
    if 'train_steps' in f:
        rows = [[r['model'], r['device'], r['precision'], r['batch'], f"{r['atoms_per_batch']:.0f}", f"{r['step_ms']:.1f}",
                 f"**{r['structures_per_s']:.1f}**", f"{r['speedup_vs_fp32']:.2f}×"] for r in f['train_steps']]
        if not any(r['device'].startswith('cuda') for r in f['train_steps']):
            rows.append(['all four', 'cuda', 'fp32 / bf16 / fp16', '', '', NM, NM, NM])
        out += ['### Training step (energy + forces), structures/s', ''] + _table(
            ['model', 'device', 'precision', 'batch', 'atoms/batch', 'step ms', 'structures/s', 'vs fp32'], rows) + ['']
    if 'atoms_sweep' in f:
        out += ['### Step time and memory vs atoms per batch (SchNet, fp32)', ''] + _table(
            ['device', 'batch', 'atoms', 'edges', 'step ms', 'µs per atom', 'memory MiB', 'memory measured as'],
            [[r['device'], r['batch'], f"{r['atoms_per_batch']:.0f}", f"{r['edges_per_batch']:.0f}", f"{r['step_ms']:.1f}",
              f"{r['us_per_atom']:.1f}", f"{r['memory_mib']:.1f}", r['memory_kind']] for r in f['atoms_sweep']]) + ['']
    if 'schnet_vs_pyg' in f:
        out += ['### Peers: molkit SchNet vs PyG SchNet (same weights, batches and edges; flush-to-zero on for both)', ''] + _table(
            ['device', 'batch', 'atoms', 'PyG step', 'molkit step', 'ratio wall', 'ratio CPU time', 'initial |ΔE|'],
            [[p['device'], p['batch'], f"{p['atoms_per_batch']:.0f}", f"{p['pyg_ms']:.1f} ms", f"{p['molkit_ms']:.1f} ms",
              f"**{p['ratio_wall']:.2f}×**", f"{p['ratio_cpu']:.2f}×", f"{p['energy_max_abs_diff_eV']:.1e} eV"] for p in f['schnet_vs_pyg']]) + ['']
    if 'compile' in f:
        rows = [[c['device'], c.get('model', 'schnet'), c['variant'], c['batch'], c.get('status'),
                 f"{c['compile_s']:.1f} s" if 'compile_s' in c else '', f"{c['eager_ms']:.1f}" if 'eager_ms' in c else '',
                 f"{c['compiled_ms']:.1f}" if 'compiled_ms' in c else '', f"**{c['speedup']:.2f}×**" if 'speedup' in c else c.get('reason', '')]
                for c in f['compile']]
        if not any(c['device'].startswith('cuda') for c in f['compile']):
            rows.append(['cuda', 'schnet, gemnet_oc', 'all', '', NM, '', '', ''])
        out += ['### torch.compile (dynamic=True) vs eager, training step', ''] + _table(
            ['device', 'model', 'step', 'batch', 'status', 'compile time', 'eager ms', 'compiled ms', 'speed-up / reason'], rows) + ['']
    if 'dmoe_overhead' in f:
        out += ['### Heads: DMoE distribution energy head vs scalar energy head (SchNet, gradient forces, same backbone and batches)', ''] + _table(
            ['device', 'batch', 'scalar step', 'DMoE step', 'overhead wall', 'overhead CPU time', 'head parameters scalar / DMoE'],
            [[d['device'], d['batch'], f"{d['scalar_ms']:.1f} ms", f"{d['dmoe_ms']:.1f} ms", f"**{100 * d['overhead']:+.1f} %**",
              f"{100 * d['overhead_cpu']:+.1f} %", f"{d['head_params_scalar']} / {d['head_params_dmoe']}"] for d in f['dmoe_overhead']]) + ['']
    if 'segment_reductions' in f:
        out += ['### Segment reductions: edge → atom sum of 128-wide messages, forward + backward', ''] + _table(
            ['device', 'graph', 'edges / atoms', 'method', 'time', 'speed-up vs molkit'],
            [[d['device'], d['graph'], f"{d['edges']} / {d['atoms']}", d['method'], f"{d['fwd_bwd_us']:.0f} µs",
              f"**{d['speedup_vs_molkit']:.2f}×**"] for d in f['segment_reductions']]) + ['']
    if 'pair_grouping' in f:
        out += ['### SchNet filters per atom pair (molkit, a `torch.unique`) vs per directed edge (sync-free), E+F training step', ''] + _table(
            ['device', 'batch', 'per pair', 'per edge', 'per-edge time / per-pair time'],
            [[d['device'], d['batch'], f"{d['pairs_ms']:.1f} ms", f"{d['edges_ms']:.1f} ms", f"**{d['edges_over_pairs']:.2f}×**"]
             for d in f['pair_grouping']]) + ['']
    if 'ddp' in f:
        out += ['### DDP: weak scaling of the SchNet step (per-rank batch fixed)', ''] + _table(
            ['device', 'backend', 'per-rank batch', 'step 1 process', 'step 2 processes', 'structures/s 1 → 2', 'speed-up', 'efficiency'],
            [[d['device'], d['backend'], d['per_rank_batch'], f"{d['step_ms_1']:.1f} ms", f"{d['step_ms_2']:.1f} ms",
              f"{d['structures_per_s_1']:.1f} → {d['structures_per_s_2']:.1f}", f"**{d['speedup']:.2f}×**", f"{100 * d['efficiency']:.0f} %"] for d in f['ddp']]) + ['']
        if not any(d['device'] == 'cuda' for d in f['ddp']): out += ['DDP on GPUs: not measured (needs two or more GPUs).', '']
    if 'profiles' in f:
        from .profile import markdown
        out += ['### Profiles: one training step (torch.profiler, top 10 operators by self CPU time)', '']
        for p in f['profiles']: out += [markdown(p), '']
    skipped = f.get('skipped', {})
    if skipped: out += ['Not run in this invocation: ' + '; '.join(f"{k} ({v})" for k, v in skipped.items()), '']
    return out


def markdown(res: dict, block: str = 'bench_all') -> str:
    "The RESULTS.md block: command, machine, settings, targets, then one table per figure."
    e, s = res['environment'], res['settings']
    begin, end = markers(block)
    title = 'one benchmark command (issue 16)' + (', CUDA' if res['devices'] == ['cuda'] else '')
    gpu = f"GPU {e['gpu']} (CUDA {e['cuda_version']})" if e['cuda'] else 'no GPU'
    lines = [begin, f'## Performance: {title}', '',
             f"Command: `{res['command']}` ({res['wall_s'] / 60:.1f} min, {res['date']}). JSON: `{res['json']}`.", '',
             f"Machine: {e['host_cpu']}, {e['logical_cpus']} logical CPUs (shared; load average {e['loadavg_start']:.1f} at the start), {gpu}; "
             f"Python {e['python']}, torch {e['torch']}, torch_geometric {e['torch_geometric']}, vesin {e['vesin']}, ase {e['ase']}.", '',
             f"Settings: {s['torch_threads']} intra-op thread(s) (OMP_NUM_THREADS={s['OMP_NUM_THREADS']}), {s['interop_threads']} inter-op, "
             f"flush-to-zero {'on' if s['flush_denormal'] else 'off'} for the whole run; budget {res['budget_name']}. "
             f"{'All sections ran in one process' if res.get('in_process') else 'Each section ran in a fresh process'}; every comparison runs "
             "its sides in one process, interleaved step by step (order rotating), and quotes medians; ratios are the figures to read on a "
             "shared machine.", '', '### Targets', ''] + _table(['figure', 'measured', 'target', 'status'], targets(res)) + ['']
    return '\n'.join(lines + _sections(res['figures']) + [end])


def write_block(path: Path, block: str, name: str = 'bench_all'):
    "Replace the text between the markers of block `name` in `path` (append the block if they are absent)."
    text, (begin, end) = (path.read_text() if path.exists() else ''), markers(name)
    if begin in text and end in text:
        a, b = text.index(begin), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else: text = text.rstrip('\n') + '\n\n' + block + '\n'
    path.write_text(text)
