"""Open the documentation site built by `python tools/docs.py` (tools/test_all.sh builds it into _docs/, or set
MOLKIT_DOCS_DIR) in headless chromium: one API page and one tutorial page, whose plotly figures must be drawn with
traces, offline, without console errors. Skips when the site or the browser is missing, except on CI (CI=true)."""
import os
from pathlib import Path
import pytest
from test_browser_lab import ON_CI, _browser, need_browser

DOCS = Path(os.environ.get('MOLKIT_DOCS_DIR', Path(__file__).resolve().parents[1] / '_docs'))

def _open(page, path: Path, errors: list):
    page.goto(path.as_uri(), timeout=60_000)
    page.wait_for_load_state('load')
    return page

def test_docs_site_pages():
    sync_playwright = need_browser()
    api, tut = DOCS / '72b_viz.explorer.html', DOCS / 'tutorials' / 'explore_results.html'
    if not (api.exists() and tut.exists()):
        (pytest.fail if ON_CI else pytest.skip)(f'no documentation site in {DOCS} (python tools/docs.py)')
    errors, requests = [], []
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={'width': 1300, 'height': 900})
        page.on('console', lambda m: errors.append(f'console.{m.type}: {m.text}') if m.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(f'pageerror: {e}'))
        page.on('request', lambda r: requests.append(r.url))
        _open(page, api, errors)
        assert page.locator('main h1').first.inner_text().startswith('Distribution explorer')
        assert page.locator('nav a').count() > 50 and 'class DistributionExplorer(FigureExplorer)' in page.inner_text('main')
        _open(page, tut, errors)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=30_000)
        traces = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
                                     d => (d.data || []).length)""")
        assert len(traces) >= 8 and all(n > 0 for n in traces), traces
        drawn = page.evaluate("() => document.querySelectorAll('.js-plotly-plot .main-svg').length")
        assert drawn >= len(traces), drawn
        browser.close()
    assert not errors, errors
    assert all(u.startswith('file://') for u in requests), [u for u in requests if not u.startswith('file://')]
