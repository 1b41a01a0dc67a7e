"OC metrics against a direct re-statement of OCP's evaluator formulas on random batches."
import itertools
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data
from molkit.metrics.accumulate import MetricAccumulator
from molkit.metrics.oc import ADWT_THRESHOLDS, mic_displacement, oc_terms


def random_structures(n: int, seed: int = 0) -> list[Data]:
    "OC20-like toy structures with predictions stored as `p_energy`, `p_forces`, `p_pos`."
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = int(torch.randint(3, 9, (1,), generator=g))
        cell = torch.diag(torch.rand(3, generator=g) * 4 + 6) + torch.rand(3, 3, generator=g) * 2  # triclinic
        fixed = torch.rand(k, generator=g) < 0.4
        fixed[-1] = False  # at least one free atom
        pos = torch.rand(k, 3, generator=g) * 5
        out.append(Data(pos=pos, cell=cell[None], pbc=torch.ones(1, 3, dtype=torch.bool), fixed=fixed,
                        tags=torch.where(fixed, 0, 2), natoms=torch.tensor([k]),
                        energy=torch.randn(1, generator=g, dtype=torch.float64),
                        forces=torch.randn(k, 3, generator=g) * 0.05,
                        pos_relaxed=pos + torch.randn(k, 3, generator=g) * 0.2
                        + torch.randint(-1, 2, (k, 3), generator=g).float() @ cell,
                        p_energy=torch.randn(1, generator=g, dtype=torch.float64) * 0.03,
                        p_forces=torch.randn(k, 3, generator=g) * 0.01,
                        p_pos=pos.clone(), key=f"ds{i % 3}"))
        out[-1].p_energy += out[-1].energy
        out[-1].p_forces += out[-1].forces
    return out


def accumulate(structs: list[Data], batch_size: int) -> MetricAccumulator:
    "Metrics of `structs` fed in batches of `batch_size`, grouped by each structure's key."
    acc = MetricAccumulator()
    for s in range(0, len(structs), batch_size):
        b = Batch.from_data_list(structs[s:s + batch_size])
        acc.add_terms(oc_terms(b, energy=b.p_energy, forces=b.p_forces, pos=b.p_pos, exact_mic=False), list(b.key))
    return acc


def ocp_reference(structs: list[Data]) -> dict[str, float]:
    "OCP evaluator formulas, written out on concatenated free-atom arrays (numpy)."
    de = np.array([float(s.p_energy - s.energy) for s in structs])
    df = [(s.p_forces.double() - s.forces.double())[~s.fixed].numpy() for s in structs]
    F, Ft = [np.concatenate(x) for x in zip(*[(s.p_forces[~s.fixed].double().numpy(),
                                                s.forces[~s.fixed].double().numpy()) for s in structs])]
    D = np.concatenate(df)
    cos = (F * Ft).sum(1) / np.maximum(np.linalg.norm(F, axis=1) * np.linalg.norm(Ft, axis=1), 1e-8)
    dists = []
    for s in structs:  # OCP's min_diff with pbc all True
        diff = (s.p_pos.double() - s.pos_relaxed.double())[~s.fixed].numpy()
        cell = s.cell[0].double().numpy()
        frac = np.linalg.solve(cell.T, diff.T).T % 1.0 % 1.0
        frac[frac > 0.5] -= 1
        dists.append(np.linalg.norm(frac @ cell, axis=1).mean())
    intv = np.arange(0.01, 0.5, 0.001)
    return {'energy_mae': np.abs(de).mean(), 'energy_mse': (de ** 2).mean(),
            'energy_within_threshold': (np.abs(de) < 0.02).mean(),
            'forces_mae': np.abs(D).mean(), 'forcesy_mae': np.abs(D[:, 1]).mean(), 'forces_cos': cos.mean(),
            'forces_magnitude': np.abs(np.linalg.norm(F, axis=1) - np.linalg.norm(Ft, axis=1)).mean(),
            'energy_force_within_threshold': np.mean([(abs(e) < 0.02) and np.abs(d).max() < 0.03 for e, d in zip(de, df)]),
            'average_distance_within_threshold': sum((np.array(dists) < t).sum() for t in intv) / (len(dists) * len(intv))}


def test_matches_ocp_formulas_and_batching():
    structs = random_structures(30)
    ref = ocp_reference(structs)
    assert 0 < ref['energy_force_within_threshold'] < 1 and 0 < ref['average_distance_within_threshold'] < 1
    for bs in (1, 7, 30):
        got = accumulate(structs, bs).pooled().compute()['all']
        for k, v in ref.items(): assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (bs, k)
    per = accumulate(structs, 7).compute()
    assert sorted(per) == ['ds0', 'ds1', 'ds2']
    ref0 = ocp_reference([s for s in structs if s.key == 'ds0'])
    assert per['ds0']['forces_mae'] == pytest.approx(ref0['forces_mae'], rel=1e-9)


def test_exact_mic_is_shortest_image():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        cell = torch.randn(3, 3, generator=g, dtype=torch.float64) * 3 + torch.eye(3, dtype=torch.float64) * 4
        if torch.linalg.det(cell).abs() < 20: continue  # brute force below needs a not-too-flat cell
        d = torch.randn(16, 3, generator=g, dtype=torch.float64) * 3
        m = mic_displacement(d, cell[None], torch.ones(1, 3, dtype=torch.bool), torch.zeros(16, dtype=torch.long), exact=True)
        shifts = torch.tensor(list(itertools.product(range(-12, 13), repeat=3)), dtype=torch.float64) @ cell
        brute = (d[:, None] + shifts[None]).norm(dim=-1).min(1).values
        assert (m.norm(dim=-1) <= brute + 1e-9).all()  # no searched image is shorter
        frac = torch.linalg.solve(cell.T, (m - d).T).T  # m − d is a lattice vector
        torch.testing.assert_close(frac, frac.round(), atol=1e-8, rtol=0)


def test_adwt_threshold_grid():
    assert len(ADWT_THRESHOLDS) == 490
    np.testing.assert_array_equal(ADWT_THRESHOLDS.numpy(), np.arange(0.01, 0.5, 0.001))
