"Reader registry end to end: every reader refuses a file in the wrong layout, and reader output converts to the data contract."
import json
from pathlib import Path

import ase
import numpy as np
import pytest
import torch
from ase.build import fcc111, add_adsorbate
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

import molkit.data.readers.molecules, molkit.data.readers.materials  # noqa: F401  (registers the readers)
from molkit.data.readers.base import READERS, ReaderError, read_structures
from molkit.data.atoms import atoms_to_data

OURS = ['ase', 'rmd17', 'sgdml', 'spice', 'ani1x', 'transition1x', 'oc20', 'oc22', 'matbench', 'qmof']
JUNK_NAME = {'ase': 'junk.xyz', 'rmd17': 'rmd17_junk.npz', 'sgdml': 'junk.npz', 'spice': 'junk.hdf5', 'ani1x': 'junk.h5',
             'transition1x': 'junk.h5', 'oc20': 'junk.extxyz', 'oc22': 'junk.extxyz', 'matbench': 'junk.json', 'qmof': 'junk'}
TESTDATA = Path(ase.__file__).parent / 'test' / 'testdata'


def test_registry_complete():
    missing = set(OURS) - set(READERS)
    assert not missing, f"readers not registered: {missing}"
    for name in OURS:
        spec = READERS[name]
        assert spec.name == name and spec.description and spec.layout and callable(spec.read)


@pytest.mark.parametrize('name', OURS)
def test_wrong_layout_names_the_file(name, tmp_path):
    "A file that is not in the reader's layout raises ReaderError naming that file."
    p = tmp_path / JUNK_NAME[name]
    if name == 'qmof': p.mkdir()
    else: p.write_text('this is not a dataset\n')
    with pytest.raises(ReaderError, match=p.name):
        list(read_structures(name, p))


def _rmd17(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / 'rmd17_water.npz'
    np.savez(p, nuclear_charges=np.array([8, 1, 1]), coords=rng.normal(size=(2, 3, 3)), energies=np.array([-1., -2.]),
             forces=rng.normal(size=(2, 3, 3)), old_indices=np.array([5, 6]))
    return 'rmd17', p


def _oc20(tmp_path):
    slab = fcc111('Cu', size=(2, 2, 2), vacuum=6.0); add_adsorbate(slab, 'O', 1.5, 'fcc')
    slab.set_tags([2 if t == 0 else (1 if t == 1 else 0) for t in slab.get_tags()])
    slab.set_constraint(FixAtoms([0, 1, 2, 3])); slab.calc = EMT(); slab.get_forces()
    ase.io.write(tmp_path / '0.extxyz', [slab], format='extxyz')
    (tmp_path / '0.txt').write_text('random7,frame3,-1.0\n')
    return 'oc20', tmp_path / '0.extxyz'


def _matbench(tmp_path):
    s = {'lattice': {'matrix': [[3., 0, 0], [0, 3., 0], [0, 0, 3.]]},
         'sites': [{'species': [{'element': 'Cs', 'occu': 1}], 'abc': [0, 0, 0]},
                   {'species': [{'element': 'Cl', 'occu': 1}], 'abc': [.5, .5, .5]}]}
    p = tmp_path / 'mb.json'
    p.write_text(json.dumps({'index': ['a'], 'columns': ['structure', 'e_form'], 'data': [[s, -1.5]]}))
    return 'matbench', p


@pytest.mark.parametrize('make', [_rmd17, _oc20, _matbench,
                                  lambda t: ('ase', TESTDATA / 'vasp' / 'OUTCAR_example_1'),
                                  lambda t: ('ase', TESTDATA / 'castep' / 'md.castep')])
def test_output_converts_to_contract(make, tmp_path):
    "Reader output goes through atoms_to_data with contract dtypes and shapes."
    name, path = make(tmp_path)
    frames = list(read_structures(name, path))
    assert frames
    for atoms in frames:
        d = atoms_to_data(atoms)
        n = len(atoms)
        assert d.z.dtype == torch.int64 and d.pos.shape == (n, 3) and d.cell.shape == (1, 3, 3)
        if atoms.calc is not None:
            assert d.energy.shape == (1,)
            assert d.forces.shape == (n, 3)
            assert torch.allclose(d.energy.double(), torch.tensor([atoms.calc.results['energy']], dtype=torch.float64))
        if name == 'oc20':
            assert d.fixed.sum() == 4 and d.tags.tolist().count(2) == 1 and int(d.sid) == 7 and int(d.fid) == 3
        if name == 'matbench':
            assert d.pbc.all() and torch.allclose(d.e_form.double(), torch.tensor([-1.5], dtype=torch.float64))
