"`molkit demo` end to end at a tiny budget: table, results.json, self-contained report.html with plotly figures."
import json, math
from molkit.experiments.demo import run_demo

def test_demo_tiny(tmp_path, capsys):
    r = run_demo(tmp_path / 'demo', steps=40, n_train=150, n_test=40, batch_size=16, progress=False)
    out = capsys.readouterr().out
    assert 'MAE (meV)' in out and 'DMoE' in out and 'L1' in out
    t = {row['model']: row for row in r['table']}
    assert set(t) == {'L1', 'DMoE'} and t['L1']['NLL (nats, eV)'] == 'n/a'
    assert all(isinstance(t[m]['MAE (meV)'], float) and t[m]['MAE (meV)'] > 0 for m in t)
    assert math.isfinite(t['DMoE']['NLL (nats, eV)']) and -1 <= t['DMoE']['Spearman(entropy, |err|)'] <= 1
    res = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert res['table'] == r['table'] and res['meta']['steps'] == 40
    assert res['models']['L1']['U0_mae'] == r['models']['L1']['U0_mae']
    html = (tmp_path / 'demo' / 'report.html').read_text()
    for h in ('L1 vs DMoE', 'Predicted distributions for sample molecules', 'Parity', 'Calibration', 'Uncertainty vs error'):
        assert f'<h2>{h}</h2>' in html, h
    assert html.count('class="plotly-graph-div"') >= 4 and 'Plotly.newPlot' in html
    assert '<script src="http' not in html  # plotly.js inline: opens offline
