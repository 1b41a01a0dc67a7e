"""Data of the small-scale JMP reproduction (issue 14), generated offline with ASE's EMT calculator and the QM9 subset
shipped with molkit. Pre-training domains and the held-out fine-tuning tasks:

| domain | pre-training | fine-tuning (held out) |
|---|---|---|
| catalysis (EMT S2EF) | relaxations on Cu, Pt, Pd, Ni, Ag | relaxations on Au (a metal not seen), split by relaxation |
| small molecules (QM9) | U0 of molecules 0–3,999 | HOMO–LUMO gap (a property not pre-trained) of molecules 4,000–4,999 |
| molecular dynamics (EMT) | methanol, acetaldehyde, formic acid, methylamine | ethanol (a molecule not seen) |

    OMP_NUM_THREADS=1 python benchmarks/jmp_small/make_data.py /tmp/jmp_small
    OMP_NUM_THREADS=1 python benchmarks/jmp_small/make_data.py /tmp/jmp_large --emt-systems 240 --md-frames 400 --more-molecules

The second command is the larger pre-training set (4x the catalysis systems, 12 molecules); the fine-tuning tasks are
the same as in the first (same seeds and sizes).
"""
import argparse, json, sys
from pathlib import Path
import numpy as np
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from molkit.data.atoms import atoms_to_data
from molkit.data.emt import EMTConfig, write_emt_dataset
from molkit.data.lmdb import LMDBDataset, write_lmdb
from molkit.data.splits import group_split, random_split, save_split

PRE_MOLECULES = ('CH3OH', 'CH3CHO', 'HCOOH', 'H3CNH2')
MORE_MOLECULES = ('C2H6', 'CH3COOH', 'CH3CN', 'C3H8', 'CH3NO2', 'CH3CONH2', 'CH3CH2NH2', 'H2CCO')  # --more-molecules
FT_MOLECULE = 'CH3CH2OH'

def md_frames(name: str, n: int, stride: int = 10, seed: int = 0) -> list:
    "Frames of Langevin MD (0.5 fs, 500 K) of one molecule, energies and forces from EMT."
    atoms = molecule(name); atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=500, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=500, friction=0.02, rng=np.random.default_rng(seed))
    out = []
    for _ in range(n):
        dyn.run(stride)
        a = atoms.copy()
        a.calc = SinglePointCalculator(a, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        out.append(atoms_to_data(a))
    return out

def split_json(split: dict, path: Path, n: int, info: dict) -> None:
    "A split file that `data.datasets[].split_file` can name by path."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'n_records': n, 'info': info, 'splits': {k: np.asarray(v).tolist() for k, v in split.items()}}))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--emt-systems', type=int, default=60); ap.add_argument('--au-systems', type=int, default=16)
    ap.add_argument('--md-frames', type=int, default=200, help='frames per pre-training molecule')
    ap.add_argument('--ft-md-frames', type=int, default=400)
    ap.add_argument('--more-molecules', action='store_true', help=f'also pre-train on {", ".join(MORE_MOLECULES)}')
    a = ap.parse_args()
    out = a.out
    pre = write_emt_dataset(EMTConfig(n_systems=a.emt_systems, metals=('Cu', 'Pt', 'Pd', 'Ni', 'Ag'), seed=0), out / 'emt_pre', progress=False)['s2ef']
    au = write_emt_dataset(EMTConfig(n_systems=a.au_systems, metals=('Au',), seed=1), out / 'emt_au', progress=False)['s2ef']
    for ds, sizes, name in [(pre, {'train': 0.9, 'val': 0.1}, 'by_sid'), (au, {'train': 8, 'val': 4, 'test': None}, 'by_sid')]:
        d = LMDBDataset(ds)
        save_split(group_split([int(d[i].sid) for i in range(len(d))], sizes, seed=0), ds, name, {'by': 'sid', 'sizes': sizes}, len(d))
    mols = PRE_MOLECULES + (MORE_MOLECULES if a.more_molecules else ())
    write_lmdb([f for i, m in enumerate(mols) for f in md_frames(m, a.md_frames, seed=i)], out / 'md_pre', progress=False)
    n_pre = len(mols) * a.md_frames
    split_json(random_split(n_pre, {'train': 0.9, 'val': 0.1}, 0), out / 'splits' / 'md_pre.json', n_pre, {'sizes': '90/10'})
    write_lmdb(md_frames(FT_MOLECULE, a.ft_md_frames, seed=7), out / 'md_ethanol', progress=False)
    split_json(random_split(a.ft_md_frames, {'train': 100, 'val': 50, 'test': None}, 0), out / 'splits' / 'md_ethanol.json',
               a.ft_md_frames, {'sizes': '100 / 50 / rest'})
    split_json({'train': np.arange(0, 3600), 'val': np.arange(3600, 4000)}, out / 'splits' / 'qm9_pre.json', 5000, {'molecules': '0-3999'})
    rng = np.random.default_rng(0); ft = 4000 + rng.permutation(1000)
    split_json({'train': np.sort(ft[:300]), 'val': np.sort(ft[300:500]), 'test': np.sort(ft[500:])}, out / 'splits' / 'qm9_ft.json',
               5000, {'molecules': '4000-4999', 'sizes': '300 / 200 / 500'})
    for p in sorted(out.rglob('*.json')): print(p)

if __name__ == '__main__':
    main()
