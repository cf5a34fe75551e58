"""The documentation site: built offline by `tools/build_docs.py` (what `make docs` runs); no page shows markdown as
raw text (table pipes, `**`, `:::`); then checked in headless Chromium (Python playwright): every page loads without
console errors or failed requests, every sidebar link (and every link between pages) resolves, every module page
shows its API reference (show_doc output), the index shows the results table (or the explicit not-yet-measured
note). Also: README.md is generated from nbs/index.ipynb and the index shows the results files as they are committed
(a drift in either fails here)."""
import functools
import http.server
import importlib
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))
import build_docs  # noqa: E402

CHROMIUM = os.environ.get('SEMACDR_CHROMIUM') or shutil.which('chromium') or (
    '/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage']


def notebooks() -> list[Path]:
    "The notebooks the site must show: every .ipynb under nbs/ outside `_`/`.` folders and files."
    return sorted(p for p in NBS.rglob('*.ipynb')
                  if not any(s.startswith(('_', '.')) for s in p.relative_to(NBS).parts)
                  and '.ipynb_checkpoints' not in p.parts)


def default_exp(nb: Path) -> str | None:
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] == 'code':
            m = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', ''.join(c['source']), flags=re.MULTILINE)
            if m:
                return m.group(1)
    return None


def results_files() -> list[Path]:
    return sorted((NBS/'results').glob('*.md')) + sorted((NBS/'results').glob('*/tables.md'))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site, built once for this module (processing cache: _proc/, as nbdev's; output: a temporary folder)."
    out = tmp_path_factory.mktemp('site')/'_docs'
    r = build_docs.build(out=out, cache=os.environ.get('SEMACDR_DOCS_CACHE', ROOT/'_proc'), quiet=True)
    print(f"docs built in {r['seconds']:.1f}s: {len(r['pages'])} pages")
    r['meta'] = json.loads((out/'site.json').read_text())
    return r


# --------------------------------------------------------------------------------------------------------------
# the build


def test_every_notebook_has_a_page_in_the_sidebar(site):
    pages = {p['source']: p for p in site['meta']['pages']}
    for nb in notebooks():
        key = f'nbs/{nb.relative_to(NBS).as_posix()}'
        assert key in pages, f'{key} has no page'
        assert (site['out']/pages[key]['href']).exists()
    in_sidebar = {e['href'] for e in site['meta']['sidebar']}
    missing = [p['source'] for p in site['meta']['pages'] if p['href'] not in in_sidebar]
    assert not missing, f'pages missing from nbs/sidebar.yml (add them or widen a glob): {missing}'
    assert (site['out']/'index.html').exists() and (site['out']/'.nojekyll').exists()


def test_pages_are_self_contained(site):
    "No page loads anything from the network: the site works offline and behind any firewall."
    for href in site['pages']:
        text = (site['out']/href).read_text()
        srcs = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="((?:https?:)?//[^"]+)"', text)
        assert not srcs, f'{href} loads {srcs[:3]}'


def test_pandoc_markdown_translation():
    md = build_docs.pandoc_to_commonmark('[source](https://x/y.py#L3){target="_blank" style="float:right"}\n\n'
                                         '::: {.callout-note title="Note"}\nhi\n:::\n\n## Head {#h .unnumbered}')
    assert '<a href="https://x/y.py#L3" target="_blank" style="float:right">source</a>' in md
    assert '<div class="callout callout-note">' in md and '</div>' in md and '## Head' in md and '{#h' not in md
    opts, code = build_docs.split_cell_options('#| echo: false\n#| output: asis\nshow_doc(f)')
    assert opts == {'echo': False, 'output': 'asis'} and code == 'show_doc(f)'
    assert build_docs.pandoc_id('SemanticStore.get') == 'semanticstore.get'
    assert build_docs.pandoc_id('The method in one figure') == 'the-method-in-one-figure'


def test_pipe_in_a_code_span_keeps_the_table():
    "A `|` inside a code span in a table cell does not split the cell (pandoc's reading), and the table renders."
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    md = ("| part | switch |\n| --- | --- |\n| fusion | `item_fusion='gate'|'mean'`, `use_id` |\n"
          "| loss | `a*b|c_d` and *x* |\n\n```\n| `kept|as is` |\n```")
    out = MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(build_docs.pandoc_to_commonmark(md))
    assert out.count('<table>') == 1 and out.count('<td>') == 4, out
    assert "<td><code>item_fusion='gate'|'mean'</code>, <code>use_id</code></td>" in out
    assert '<td><code>a*b|c_d</code> and <em>x</em></td>' in out
    assert '| `kept|as is` |' in out, 'fenced code is left alone'
    assert not build_docs.unrendered_markdown(f'<main>{out}</main>')


def test_unrendered_markdown_is_found():
    bad = {'<p>| a | b |\n| --- | --- |\n| 1 | 2 |</p>': 'table rule', '<td>**0.0985**</td>': 'literal **',
           '<p>::: {.callout-note}\nhi\n:::</p>': 'fenced div'}
    for page, what in bad.items():
        found = build_docs.unrendered_markdown(f'<main>{page}</main>')
        assert found and all(what in f for f in found), (page, found)
    fine = ('<main><table><tr><td>a</td></tr></table><pre>f(**kw)\n| --- |</pre>'
            '<p><code>::: x</code> <b>b</b></p></main>')
    assert build_docs.unrendered_markdown(fine) == []


def test_pages_have_no_unrendered_markdown(site):
    "No page shows markdown as text: raw table pipes (| --- |), literal ** or pandoc's ::: outside code."
    problems = {href: found for href in site['pages']
                if (found := build_docs.unrendered_markdown((site['out']/href).read_text(encoding='utf-8')))}
    assert not problems, '\n'.join(f'{href}: {p}' for href, found in problems.items() for p in found[:5])


# --------------------------------------------------------------------------------------------------------------
# README and index consistency


def test_readme_is_generated_from_index():
    problems = build_docs.readme_drift()
    assert not problems, '\n'.join(problems) + '\nrun `make readme` (re-runs nbs/index.ipynb and rewrites README.md)'


def test_index_shows_the_committed_results():
    "The results cell's committed output is the current content of nbs/results/*.md and */tables.md."
    nb = json.loads((NBS/'index.ipynb').read_text())
    outs = [''.join(o['data']['text/markdown']) for c in nb['cells'] if c['cell_type'] == 'code'
            for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    shown = [o for o in outs if '<!-- results: nbs/results -->' in o]
    assert len(shown) == 1, ('nbs/index.ipynb must show the results once (its results cell has no output: run '
                             '`make readme`)')
    files = results_files()
    if not files:
        assert 'Not yet measured' in shown[0]
    for f in files:
        assert f.read_text().strip() in shown[0], (f'{f.relative_to(ROOT)} changed since nbs/index.ipynb ran: '
                                                   f'`make readme`')


# --------------------------------------------------------------------------------------------------------------
# in the browser


@pytest.fixture(scope='module')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site['out'])))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


@pytest.fixture(scope='module')
def browser():
    if os.environ.get('SEMACDR_SKIP_BROWSER') == '1':
        pytest.skip('browser tests skipped: SEMACDR_SKIP_BROWSER=1 (make test SKIP_BROWSER=1)')
    if CHROMIUM is None:
        pytest.skip('chromium is not installed (`make browser` installs the Debian package)')
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope='module')
def visited(site, server, browser):
    "Every page, loaded once: its console errors, failed requests, links, headings and tables."
    ctx = browser.new_context(viewport={'width': 1300, 'height': 900})
    page = ctx.new_page()
    res = {}
    for href in site['pages']:
        errors = []
        page.on('console',
                h1 := (lambda m: errors.append(f'console {m.type}: {m.text}') if m.type == 'error' else None))
        page.on('pageerror', h2 := (lambda e: errors.append(f'page error: {e}')))
        page.on('requestfailed', h3 := (lambda r: errors.append(f'request failed: {r.url} {r.failure}')))
        page.on('response', h4 := (lambda r: errors.append(f'HTTP {r.status}: {r.url}') if r.status >= 400 else None))
        resp = page.goto(server + href, wait_until='load')
        page.wait_for_timeout(150)  # late console messages
        info = page.evaluate('''() => ({
            title: document.querySelector('h1.title') ? document.querySelector('h1.title').innerText : '',
            sidebar: [...document.querySelectorAll('#site-sidebar a')].map(a => a.href),
            toc: [...document.querySelectorAll('#TOC a')].map(a => a.getAttribute('href')),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            links: [...document.querySelectorAll('#site-content a[href]')].map(a => a.href),
            api: [...document.querySelectorAll('#site-content .jp-RenderedMarkdown h3, '
                                               + '#site-content .jp-RenderedMarkdown h4')]
                   .map(h => h.innerText.trim()),
            signatures: document.querySelectorAll('#site-content .jp-RenderedMarkdown pre').length,
            tables: [...document.querySelectorAll('#site-content table')].map(t => t.innerText),
            text: document.querySelector('#site-content').innerText,
            images: [...document.querySelectorAll('#site-content img')].map(i => [i.src.slice(0, 60), i.naturalWidth]),
        })''')
        for ev, h in (('console', h1), ('pageerror', h2), ('requestfailed', h3), ('response', h4)):
            page.remove_listener(ev, h)
        res[href] = dict(info, status=resp.status, errors=errors)
    # every sidebar target (and every link between pages) fetched once
    urls = {u.split('#')[0] for r in res.values() for u in r['sidebar']}
    urls |= {u.split('#')[0] for r in res.values() for u in r['links'] if u.startswith(server) and '.html' in u}
    status = {u: ctx.request.get(u).status for u in sorted(urls)}
    ctx.close()
    return dict(pages=res, status=status, server=server)


def test_pages_load_without_errors(visited):
    bad = {h: r['errors'] for h, r in visited['pages'].items() if r['errors'] or r['status'] != 200}
    assert not bad, json.dumps(bad, indent=1)[:4000]
    for h, r in visited['pages'].items():
        assert r['title'], f'{h} has no title'
        assert all(w > 0 for _, w in r['images']), f'{h} has a broken image: {r["images"]}'


def test_sidebar_links_resolve(site, visited):
    n_pages = len(site['pages'])
    for h, r in visited['pages'].items():
        assert len(r['sidebar']) >= n_pages, f'{h}: the sidebar lists {len(r["sidebar"])} links for {n_pages} pages'
        for u in r['sidebar']:
            assert urlparse(u).netloc == urlparse(visited['server']).netloc, f'{h}: sidebar link {u} leaves the site'
    broken = {u: s for u, s in visited['status'].items() if s != 200}
    assert not broken, f'links that do not resolve: {broken}'


def test_toc_anchors_exist(visited):
    for h, r in visited['pages'].items():
        ids = set(r['ids'])
        missing = [a for a in r['toc'] if a.startswith('#') and a[1:] not in ids]
        assert not missing, f'{h}: table-of-contents anchors without a target: {missing}'


def test_module_pages_show_their_api_reference(site, visited):
    pages = {p['source']: p['href'] for p in site['meta']['pages']}
    checked = 0
    for nb in notebooks():
        mod = default_exp(nb)
        if not mod:
            continue
        href = pages[f'nbs/{nb.relative_to(NBS).as_posix()}']
        r = visited['pages'][href]
        m = importlib.import_module(f'semacdr.{mod}')
        documented = {n for n in getattr(m, '__all__', [])
                      if callable(getattr(m, n, None)) and getattr(getattr(m, n), '__module__', '') == m.__name__}
        if not documented:
            continue
        shown = {a.split('.')[0] for a in r['api']} | set(r['api'])
        assert r['signatures'] > 0 and shown & documented, f'{href} shows no API reference (headings: {r["api"][:10]})'
        missing = sorted(documented - shown)
        assert len(missing) <= len(documented) // 2, f'{href}: most exported names lack show_doc output: {missing}'
        checked += 1
    assert checked >= 2


def test_index_shows_results_table(visited):
    r = visited['pages']['index.html']
    files = results_files()
    if not files:
        assert 'Not yet measured' in r['text'], 'the index shows neither results nor the not-yet-measured note'
        return
    assert r['tables'], 'the index shows no results table'
    for f in files:  # the first header row of each committed table is on the page
        head = next(l for l in f.read_text().splitlines() if l.strip().startswith('|'))
        cells = [c.strip() for c in head.strip().strip('|').split('|') if c.strip()]
        assert any(all(re.sub(r'[*`_]', '', c) in t for c in cells) for t in r['tables']), f'{f.name}: table not shown'


def test_index_has_the_method_figure(visited):
    imgs = visited['pages']['index.html']['images']
    assert any(src.startswith('data:image/png') and w > 500 for src, w in imgs), imgs
