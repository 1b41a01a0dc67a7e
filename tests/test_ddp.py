"DDP on CPU (gloo, 2 processes): gradients equal one process on the union of the batches; a 2-rank train() run."
import os
from pathlib import Path
import pytest, torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch_geometric.data import Batch
from molkit.train.losses import LossSpec, total_loss
from molkit.train.model import ModelConfig, build_model
from _train_helpers import TINY_SCHNET, toy_molecules

HEADS = {'energy': {'type': 'energy'}, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}
SPECS = [LossSpec('energy', 'l1'), LossSpec('forces', 'l2mae', 10.0, 'structurewise')]
SPLIT = [3, 5]  # unequal per-rank batches: the loss must use global counts

def _grads(model, batch) -> dict:
    preds = model(batch)
    loss, _ = total_loss(SPECS, preds, {'energy': batch.energy.float(), 'forces': batch.forces}, batch)
    loss.backward()
    return loss

def _worker(rank: int, world: int, init: str, out: str):
    os.environ['OMP_NUM_THREADS'] = '1'; torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone_cfg=TINY_SCHNET, heads=HEADS))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    mols = toy_molecules(sum(SPLIT), seed=1)
    mine = mols[:SPLIT[0]] if rank == 0 else mols[SPLIT[0]:]
    _grads(ddp, Batch.from_data_list(mine))
    if rank == 0: torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    dist.barrier(); dist.destroy_process_group()

def test_ddp_gradients_match_single_process(tmp_path):
    out = str(tmp_path / 'grads.pt')
    mp.spawn(_worker, args=(2, f'file://{tmp_path}/pg', out), nprocs=2, join=True)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone_cfg=TINY_SCHNET, heads=HEADS))
    _grads(model, Batch.from_data_list(toy_molecules(sum(SPLIT), seed=1)))
    ddp_grads = torch.load(out, weights_only=True)
    for n, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[n], p.grad, atol=1e-6, rtol=1e-5, msg=n)

def _train_worker(rank: int, world: int, init: str, lmdb: str, run_dir: str):
    from _train_helpers import toy_config
    from molkit.train.loop import train
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    res = train(toy_config(Path(run_dir), lmdb, max_steps=12))
    assert res.step == 12
    import gc  # DDP is gone before the group is destroyed: its reducer must not free the group (see train's _end_distributed)
    assert not [o for o in gc.get_objects() if isinstance(o, torch.nn.parallel.DistributedDataParallel)]
    dist.destroy_process_group()

def test_ddp_train_two_ranks(tmp_path):
    "train() under 2 gloo ranks: balanced sampler, rank-0 checkpoints, same step count."
    from molkit.data.lmdb import write_lmdb
    from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
    lmdb = str(write_lmdb(toy_molecules(64), tmp_path / 'toy', progress=False))
    mp.spawn(_train_worker, args=(2, f'file://{tmp_path}/pg', lmdb, str(tmp_path / 'run')), nprocs=2, join=True)
    ck = load_checkpoint(latest_checkpoint(tmp_path / 'run' / 'checkpoints'))
    assert ck['step'] == 12 and (ck['epoch'], ck['batch_in_epoch']) == (1, 6)  # 48 / (4 per rank x 2 ranks) = 6 steps per epoch
    assert all(torch.isfinite(v).all() for v in ck['model'].values())

def _torchrun(tmp_path: Path, *torchrun_args: str, nodes: int = 1, timeout: int = 240) -> None:
    "Run `torchrun ARGS molkit train cfg.yaml` as `nodes` launcher processes; on a hang, dump every rank's stacks and fail."
    import signal, subprocess, sys, psutil
    molkit = Path(sys.executable).parent / 'molkit'  # `torchrun --nproc_per_node 2 $(which molkit) train CONFIG`
    cmd = [sys.executable, '-m', 'torch.distributed.run', *torchrun_args, str(molkit), 'train', str(tmp_path / 'cfg.yaml')]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MASTER_ADDR': '127.0.0.1', 'PYTHONFAULTHANDLER': '1'}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(nodes)]
    try: outs = [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:  # torchrun starts its ranks in sessions of their own: signal every descendant
        tree = [c for p in procs for c in psutil.Process(p.pid).children(recursive=True)] + [psutil.Process(p.pid) for p in procs]
        for q in tree: q.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER prints each process's Python stacks on SIGABRT
        outs = [p.communicate(timeout=30) for p in procs]
        for q in tree:
            if q.is_running(): q.kill()
        stacks = [o[1][max(o[1].find('Fatal Python error'), 0):][:12000] for o in outs]  # the innermost frames come first
        pytest.fail(f"torchrun hung for {timeout} s; stacks:\n" + '\n'.join(stacks))
    assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]

def _ddp_config(tmp_path: Path) -> None:
    "Write cfg.yaml: the toy energy run, 12 steps, collectives that fail after 120 s instead of hanging."
    import yaml
    from molkit.data.lmdb import write_lmdb
    from _train_helpers import toy_config
    lmdb = str(write_lmdb(toy_molecules(64), tmp_path / 'toy', progress=False))
    cfg = toy_config(tmp_path / 'run', lmdb, max_steps=12, dist_timeout_s=120)
    (tmp_path / 'cfg.yaml').write_text(yaml.safe_dump(cfg))

def _check_run(tmp_path: Path) -> None:
    "12 steps of 2 ranks x 4 structures over 48 training structures: 6 steps per epoch, as on one node."
    from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
    ck = load_checkpoint(latest_checkpoint(tmp_path / 'run' / 'checkpoints'))
    assert ck['step'] == 12 and (ck['epoch'], ck['batch_in_epoch']) == (1, 6)

def test_torchrun_two_ranks(tmp_path):
    "`molkit train` under torchrun picks up its environment (gloo on CPU); only rank 0 logs and checkpoints."
    _ddp_config(tmp_path)
    _torchrun(tmp_path, '--standalone', '--nproc_per_node=2')
    _check_run(tmp_path)
    assert (tmp_path / 'run' / 'evals.jsonl').read_text().count('\n') == 2  # rank 0 logs only (steps 10 and 12)

def test_two_nodes_with_c10d_rendezvous(tmp_path):
    "Two torchrun 'nodes' (one process each, on loopback) meet through a c10d rendezvous and train one run, as on a cluster."
    import socket
    _ddp_config(tmp_path)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    _torchrun(tmp_path, '--nnodes=2', '--nproc_per_node=1', '--rdzv_backend=c10d', f'--rdzv_endpoint=127.0.0.1:{port}',
              f'--rdzv_id=molkit-test-{port}', '--local_addr=127.0.0.1', nodes=2)
    _check_run(tmp_path)
