"`molkit demo` end to end at a tiny budget: table, results.json, self-contained report.html with plotly figures."
import json, math
from molkit.experiments.demo import run_demo

def test_demo_tiny(tmp_path, capsys):
    r = run_demo(tmp_path / 'demo', steps=40, n_train=150, n_test=40, batch_size=16, progress=False)
    out = capsys.readouterr().out
    assert 'MAE (meV)' in out and 'DMoE' in out and 'L1' in out and '1 seed per model' in out and 'most certain' in out
    t = {row['model']: row for row in r['table']}
    assert list(t) == ['L1', 'control', 'mean–var', 'DMoE'] and t['L1']['NLL (nats, eV)'] == 'n/a'
    assert all(isinstance(t[m]['MAE (meV)'], float) and t[m]['MAE (meV)'] > 0 for m in t)
    for m in ('mean–var', 'DMoE'):  # raw and calibrated on validation, and the risk–coverage area relative to the MAE
        assert all(math.isfinite(t[m][k]) for k in ('NLL (nats, eV)', 'NLL calibrated', 'coverage gap', 'gap calibrated', 'AURC / MAE'))
    risk = {row['kept']: row for row in r['risk']}
    assert risk['100 %']['DMoE, most certain'] == risk['100 %']['DMoE, random']
    assert math.isclose(risk['100 %']['DMoE, random'], t['DMoE']['MAE (meV)'], rel_tol=2e-3)
    res = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert res['table'] == r['table'] and res['meta']['steps'] == 40
    assert res['models']['L1'][0]['U0_mae'] == r['models']['L1'][0]['U0_mae']
    html = (tmp_path / 'demo' / 'report.html').read_text()
    for h in ('L1 vs DMoE', 'Predicted distributions for sample molecules', 'Parity', 'Calibration', 'Uncertainty vs error'):
        assert f'<h2>{h}</h2>' in html, h
    assert html.count('class="plotly-graph-div"') >= 4 and 'Plotly.newPlot' in html
    assert '<script src="http' not in html  # plotly.js inline: opens offline
