"""One benchmark command: every performance figure of molkit as a ratio against its reference, measured in one run.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_all.py                  # full run (~15 min on one CPU thread)
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_all.py --quick --json /tmp/b.json --md /tmp/R.md   # smoke run
    PYTHONPATH=. python benchmarks/bench_all.py --cuda-only --skip compile   # GPU rows (~5 min), own block and JSON
    PYTHONPATH=. python benchmarks/bench_all.py --cuda-only --sections compile --block bench_all_cuda_compile
    python benchmarks/bench_all.py --sections train_steps profiles                  # some figures only

Each section runs in a fresh process (`--in-process`: all in this one): the molkit/PyG SchNet ratio at batch 32 came
out ~15 % lower after the training-step section had run in the same process (see RESULTS.md).

Figures (sections): LMDB decode vs legacy pickle; DataLoader data-wait fraction with 0 vs N workers; neighbour lists
(molecules, periodic slabs) vs ASE; training-step structures/s of SchNet, PaiNN, GemNet-OC (tiny) and Graphormer-3D (tiny)
in fp32/bf16 (fp16 on CUDA) at two batch sizes; step time and memory vs atoms per batch; molkit vs PyG SchNet;
torch.compile vs eager; DMoE vs scalar head; segment reductions (edge → atom sums) by method; SchNet filters per pair vs per edge; DDP 1 vs 2 processes; profiler summaries of a SchNet and a GemNet-OC step.
CUDA rows run when `torch.cuda.is_available()`, else they say "not measured". Thread count and flush-to-zero are set
once for the whole run and recorded. Writes a JSON file (machine, versions, settings, figures) and replaces the block
between `<!-- bench_all:begin -->` and `<!-- bench_all:end -->` in the markdown file (appends it if absent).
"""
from __future__ import annotations
import argparse, datetime, json, logging, os, subprocess, sys, tempfile, time, traceback
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import torch  # noqa: E402
from perf.common import Budget, apply_settings, environment  # noqa: E402
from perf import figs_data, figs_ddp, figs_peers, figs_segment, figs_train, profile, report  # noqa: E402

SECTIONS = ['lmdb_decode', 'loader_wait', 'neighbour_lists', 'train_steps', 'atoms_sweep', 'schnet_vs_pyg', 'dmoe_overhead',
            'segment_reductions', 'pair_grouping', 'ddp', 'profiles', 'compile']


def run_section(name: str, b: Budget, devices: list[str]):
    "The figures of one section (lists hold one entry per device or configuration)."
    gpu = [d for d in devices if d != 'cpu']
    if name == 'lmdb_decode': return figs_data.lmdb_decode(b)
    if name == 'loader_wait': return figs_data.loader_wait(b, devices[-1])  # on the GPU where there is one
    if name == 'neighbour_lists': return figs_data.neighbour_lists(b, devices)
    if name == 'train_steps': return figs_train.train_steps(b, devices)
    if name == 'atoms_sweep': return figs_train.atoms_sweep(b, devices)
    if name == 'schnet_vs_pyg':
        sizes = (32, 128) if b.schnet_preset != 'tiny' else (4,)
        return [figs_peers.schnet_vs_pyg(b, d, bs) for d in devices for bs in (sizes if d == 'cpu' else (32, 128, 512))]
    if name == 'dmoe_overhead': return [figs_train.dmoe_overhead(b, d) for d in devices]
    if name == 'segment_reductions': return figs_segment.segment_reductions(b, devices)
    if name == 'pair_grouping': return figs_segment.pair_grouping(b, devices)
    if name == 'compile':  # GemNet-OC only on a GPU: its eager CPU step takes seconds, compiling it minutes
        return ([r for d in devices for r in figs_peers.compile_vs_eager(b, d)]
                + [r for d in gpu for r in figs_peers.compile_vs_eager(b, d, 8, 'gemnet_oc')])
    if name == 'ddp':
        bs = 16 if b.schnet_preset != 'tiny' else 2
        out = [figs_ddp.ddp_scaling(b.schnet_preset, bs, b.ddp_steps, b.warmup, b.ddp_rounds, 'cpu')] if 'cpu' in devices else []
        if gpu and torch.cuda.device_count() >= 2:
            out.append(figs_ddp.ddp_scaling(b.schnet_preset, 64, b.ddp_steps, b.warmup, b.ddp_rounds, 'cuda'))
        return out
    if name == 'profiles':
        bs = {'schnet': 32 if b.schnet_preset != 'tiny' else 4, 'gemnet_oc': 2 if b.schnet_preset != 'tiny' else 1}
        out = [profile.profile_step(m, d, b.schnet_preset, bs[m], b.warmup, slab_size=b.slab_size) for d in devices for m in profile.CASES]
        out += [profile.profile_step('schnet', d, b.schnet_preset, 128, b.warmup) for d in gpu]  # GPU-busy target is at batch 128
        return out
    raise KeyError(name)


def run_fresh(name: str, a: argparse.Namespace):
    "One section in a fresh Python process (same settings), so that no figure inherits another section's allocator state."
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'figures.json'
        flags = [f for f, on in (('--quick', a.quick), ('--cpu-only', a.cpu_only), ('--cuda-only', a.cuda_only),
                                 ('--no-flush-denormal', a.no_flush_denormal)) if on]
        r = subprocess.run([sys.executable, __file__, '--worker', name, '--worker-out', str(out), '--threads', str(a.threads), *flags])
        if r.returncode != 0: raise RuntimeError(f"section process exited with status {r.returncode} (traceback above)")
        return json.loads(out.read_text())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='tiny budget and models: a smoke run (not for quoting)')
    ap.add_argument('--sections', nargs='+', choices=SECTIONS, default=SECTIONS)
    ap.add_argument('--skip', nargs='+', choices=SECTIONS, default=[])
    ap.add_argument('--threads', type=int, default=1, help='intra-op threads for the whole run')
    ap.add_argument('--no-flush-denormal', action='store_true', help='leave denormals on (default: flush to zero)')
    ap.add_argument('--cpu-only', action='store_true', help='skip CUDA rows even if a GPU is present')
    ap.add_argument('--cuda-only', action='store_true', help='GPU figures only, GPU budget; block bench_all_cuda, JSON bench_all_cuda.json')
    ap.add_argument('--block', default=None, help='name of the marked block in the markdown file (default bench_all[_cuda])')
    ap.add_argument('--json', type=Path, default=None, help='default benchmarks/results/bench_all[_cuda].json')
    ap.add_argument('--md', type=Path, default=HERE / 'RESULTS.md', help='markdown file whose bench_all block is replaced')
    ap.add_argument('--in-process', action='store_true',
                    help='run every section in this process (default: each in a fresh process; see run_fresh)')
    ap.add_argument('--worker', choices=SECTIONS, help=argparse.SUPPRESS)  # internal: run one section, write its figures
    ap.add_argument('--worker-out', type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    logging.getLogger('torch._dynamo').setLevel(logging.ERROR)  # graph-break warnings: the compile section records them
    settings = apply_settings(a.threads, not a.no_flush_denormal)
    b = Budget.quick() if a.quick else Budget.cuda() if a.cuda_only else Budget()
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() and not a.cpu_only else [])
    if a.cuda_only:
        if not torch.cuda.is_available(): ap.error('--cuda-only: no GPU (torch.cuda.is_available() is False)')
        devices, a.skip = ['cuda'], a.skip + ['lmdb_decode']  # decoding is CPU work, measured by the CPU run
    if a.worker:
        a.worker_out.write_text(json.dumps(run_section(a.worker, b, devices), default=str))
        return {}
    a.block = a.block or ('bench_all_cuda' if a.cuda_only else 'bench_all')
    a.json = a.json or HERE / 'results' / f'{a.block}.json'
    env, figures, skipped, t0 = environment(), {}, {}, time.perf_counter()
    for name in a.sections:
        if name in a.skip: skipped[name] = '--skip'; continue
        ts = time.perf_counter()
        try: figures[name] = run_section(name, b, devices) if a.in_process else run_fresh(name, a)
        except Exception as e:  # noqa: BLE001 - one broken figure must not lose the others
            traceback.print_exc(); skipped[name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        print(f"[bench_all] {name}: {time.perf_counter() - ts:.1f} s", file=sys.stderr, flush=True)
    figures['skipped'] = skipped
    cmd = 'OMP_NUM_THREADS={} PYTHONPATH=. python benchmarks/bench_all.py {}'.format(
        os.environ.get('OMP_NUM_THREADS', '?'), ' '.join(argv if argv is not None else sys.argv[1:])).strip()
    res = {'command': cmd, 'block': a.block, 'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
           'wall_s': time.perf_counter() - t0, 'json': str(a.json.resolve().relative_to(HERE.parent)) if a.json.resolve().is_relative_to(HERE.parent) else str(a.json),
           'environment': env, 'settings': settings, 'budget_name': 'quick' if a.quick else 'full',
           'budget': asdict(b), 'devices': devices, 'in_process': a.in_process, 'figures': figures}
    res['targets'] = [dict(zip(('figure', 'measured', 'target', 'status'), r)) for r in report.targets(res)]
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1, default=str))
    block = report.markdown(res, a.block)
    report.write_block(a.md, block, a.block)
    print(block)
    return res


if __name__ == '__main__':
    main()
