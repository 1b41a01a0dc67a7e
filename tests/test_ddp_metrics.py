"Metrics reduced over 2 gloo ranks equal the single-process metrics of the union of the data."
import json
import math
import os
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch_geometric.data import Batch
from molkit.metrics.accumulate import MetricAccumulator
from molkit.metrics.oc import oc_terms
from molkit.metrics.regression import regression_terms
from test_metrics_oc import random_structures

WORLD = 2


def shard_metrics(structs, batch_size: int = 4) -> MetricAccumulator:
    "OC and regression metrics of `structs`, grouped per dataset key and per split."
    acc = MetricAccumulator()
    for s in range(0, len(structs), batch_size):
        b = Batch.from_data_list(structs[s:s + batch_size])
        acc.add_terms(oc_terms(b, energy=b.p_energy, forces=b.p_forces, pos=b.p_pos), list(b.key))
        acc.add_terms(regression_terms({'energy': b.p_energy}, {'energy': b.energy}), 'val')
    return acc


def dataset():
    "20 structures; 'only1' appears on rank 1's shard only, so ranks hold different group names."
    structs = random_structures(20, seed=3)
    structs[5].key = 'only1'  # index 5 -> rank 1 (i % WORLD)
    return structs


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    "One DDP rank: accumulate its shard, reduce, dump the result."
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=WORLD)
    try:
        mine = [s for i, s in enumerate(dataset()) if i % WORLD == rank]
        local = shard_metrics(mine)
        red = local.reduce()
        red2 = local.reduce()  # reducing twice must not double-count
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump({'local': local.compute(), 'reduced': red.compute(), 'again': red2.compute()}, f)
    finally:
        dist.destroy_process_group()


def _close(a: dict, b: dict) -> bool:
    "Nested metric dicts equal to 1e-12 relative."
    if a.keys() != b.keys(): return False
    return all(_close(a[k], b[k]) if isinstance(a[k], dict) else math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=1e-15)
               for k in a)


def test_reduce_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / 'init'), str(tmp_path)), nprocs=WORLD, join=True)
    single = shard_metrics(dataset()).compute()
    assert 'only1' in single and 'energy_rmse' in single['val']
    res = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(WORLD)]
    for r in res:
        assert _close(r['reduced'], single), r['reduced']
        assert _close(r['again'], single)
    assert 'only1' not in res[0]['local'] and not _close(res[0]['local'], single)
