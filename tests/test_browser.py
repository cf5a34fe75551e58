"""End to end in a real browser: JupyterLab 4 + headless Chromium (Python playwright) run a notebook that builds
both widgets on the embedded MovieLens default; we move a slider, switch the view, click a point, switch the user,
and check that plot and panels change. Saves `artifacts/widgets-browser.png` (+ timings in `widgets-browser.json`)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent/'browser_widgets.ipynb'
ARTIFACTS = ROOT/'artifacts'
CHROMIUM = (os.environ.get('SEMACDR_CHROMIUM') or shutil.which('chromium')
            or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None))
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage']

pytestmark = [pytest.mark.skipif(os.environ.get('SEMACDR_SKIP_BROWSER') == '1',
                                 reason='browser tests skipped: SEMACDR_SKIP_BROWSER=1 (make test SKIP_BROWSER=1)'),
              pytest.mark.skipif(CHROMIUM is None,
                                 reason='chromium is not installed (`make browser` installs the Debian package)')]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def lab_settings(folder: Path):
    "JupyterLab user settings for a deterministic page: every cell in the DOM, no news or update pop-ups."
    for ext, name, val in [('@jupyterlab/notebook-extension', 'tracker', {'windowingMode': 'none'}),
                           ('@jupyterlab/apputils-extension', 'notification',
                            {'fetchNews': 'false', 'checkForUpdates': False})]:
        p = folder/ext/f'{name}.jupyterlab-settings'
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(val))


def start_lab(workdir: Path, token: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(workdir/'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir/'workspaces'), JUPYTER_RUNTIME_DIR=str(workdir/'runtime'),
               JUPYTER_CONFIG_DIR=str(workdir/'config'), PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={workdir/"nb"}',
           '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=', '--ServerApp.open_browser=False']
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        cmd.append('--allow-root')
    log = open(workdir/'lab.log', 'wb')
    # a new session: the server and the kernels it starts are killed together
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def wait_ready(url: str, proc: subprocess.Popen, workdir: Path, timeout: float = 90):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError('jupyter lab exited:\n' + (workdir/'lab.log').read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError('jupyter lab did not answer in time:\n' + (workdir/'lab.log').read_text()[-3000:])


# JavaScript run in the page. The plotly graph div keeps the figure in `gd.data` / `gd.layout`.
PLOT_STATE = """sel => {
  const gd = document.querySelector(sel + '.js-plotly-plot') || document.querySelector(sel + ' .js-plotly-plot');
  if (!gd || !gd.data) return null;
  return {title: (gd.layout.title && gd.layout.title.text) || '',
          x: gd.data.map(t => Array.from(t.x || []).slice(0, 40)),
          n: gd.data.map(t => (t.x || []).length)}; }"""


def plot_state(page, sel):
    return page.evaluate(PLOT_STATE, sel)


def wait_for(fn, timeout=60, every=0.25, what='condition'):
    t = time.time()
    while time.time() - t < timeout:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f'timed out waiting for {what}')


def test_widgets_in_jupyterlab():
    pw = pytest.importorskip('playwright.sync_api')
    t_start = time.time()
    timings = {}
    ARTIFACTS.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='semacdr-browser-'))
    (work/'nb').mkdir()
    shutil.copy(FIXTURE, work/'nb'/FIXTURE.name)
    lab_settings(work/'settings')
    token, port = uuid.uuid4().hex, free_port()
    proc = start_lab(work, token, port)
    console = []
    try:
        wait_ready(f'http://127.0.0.1:{port}/api/status?token={token}', proc, work)
        timings['server_ready_s'] = round(time.time() - t_start, 1)
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={'width': 1500, 'height': 1700})
                page.on('console',
                        lambda m: console.append(f'{m.type}: {m.text}') if m.type in ('error', 'warning') else None)
                page.goto(f'http://127.0.0.1:{port}/lab/tree/{FIXTURE.name}?token={token}', timeout=90_000)
                page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=90_000)
                # the kernel must be up before "run all"
                page.wait_for_function("() => { const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
                                       " return !!(w && w.sessionContext && w.sessionContext.session && "
                                       "w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === "
                                       "'idle'); }", timeout=90_000)
                timings['notebook_open_s'] = round(time.time() - t_start, 1)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_selector('.jp-OutputArea-output:has-text("READY in")', timeout=240_000)
                page.wait_for_selector('.semacdr-plot .scatterlayer .point', timeout=60_000)
                page.wait_for_selector('.semacdr-attention .main-svg', timeout=60_000)
                timings['cells_done_s'] = round(time.time() - t_start, 1)
                space = '.semacdr-plot'
                view_names = page.evaluate("() => Array.from(document.querySelectorAll('.semacdr-view select "
                                           "option')).map(o => o.textContent.replace(/\\u00a0/g, ' '))")
                assert len(view_names) >= 2, view_names
                s0 = plot_state(page, space)
                assert s0 and s0['n'][0] + s0['n'][1] == 500 and s0['title'].startswith(view_names[0]), s0
                mixing = page.inner_text('.semacdr-mixing')
                assert all(t in mixing for t in ('kNN domain mixing', 'shuffled domain labels', 'random ID vectors'))

                # 1. drag the n_neighbors slider and release: one refit, new coordinates
                handle = page.locator('.semacdr-n-neighbors .noUi-handle')
                box = handle.bounding_box()
                page.mouse.move(box['x'] + box['width']/2, box['y'] + box['height']/2)
                page.mouse.down()
                page.mouse.move(box['x'] + box['width']/2 + 60, box['y'] + box['height']/2, steps=8)
                page.mouse.up()
                # PCA ignores n_neighbors: same picture, new title
                moves = os.environ.get('SEMACDR_BROWSER_REDUCER') != 'pca'
                s1 = wait_for(lambda: (s := plot_state(page, space)) and 'n_neighbors=15' not in s['title']
                              and (s['x'] != s0['x'] or not moves) and s, what='a refit after the slider moved')
                timings['slider_refit_s'] = round(time.time() - t_start, 1)

                # 2. switch the view
                other_view = view_names[-1]
                page.select_option('.semacdr-view select', index=len(view_names) - 1)
                s2 = wait_for(lambda: (s := plot_state(page, space)) and s['title'].startswith(other_view)
                              and s['x'] != s1['x'] and s, what='the view switch')
                wait_for(lambda: f'#eef"><td>{other_view}</td>' in page.inner_html('.semacdr-mixing'),
                         what='the mixing table to highlight the new view')

                # 3. click a point: the panel fills with its texts and nearest items of the other domain
                panel_before = page.inner_text('.semacdr-panel')
                pt = page.locator(f'{space} .scatterlayer .trace').first.locator('.point').nth(5)
                pb = pt.bounding_box()
                page.mouse.move(pb['x'] + pb['width']/2, pb['y'] + pb['height']/2)
                page.mouse.click(pb['x'] + pb['width']/2, pb['y'] + pb['height']/2)
                wait_for(lambda: 'Nearest in' in page.inner_text('.semacdr-panel'), what='the selection panel')
                panel = page.inner_text('.semacdr-panel')
                assert panel != panel_before and 'Selected: 1 item' in panel and f'cosine in “{other_view}”' in panel
                assert page.locator('.semacdr-panel li').count() == 5
                s3 = wait_for(lambda: (s := plot_state(page, space)) and s['n'][2] > 0 and s,
                              what='the highlight trace')
                timings['click_s'] = round(time.time() - t_start, 1)

                # 4. attention explorer: type another user into the searchable box
                att = '.semacdr-attention-explorer'
                a0 = plot_state(page, '.semacdr-attention')
                assert a0 and 'cross-domain attention of user' in a0['title']
                k0 = plot_state(page, '.semacdr-topk')
                user_box = page.locator('.semacdr-user input')
                other = page.evaluate("() => Array.from(document.querySelectorAll('.semacdr-user datalist "
                                      "option')).map(o => o.value)")[7]
                user_box.fill(other)
                user_box.press('Enter')
                wait_for(lambda: f'user {other}:' in (plot_state(page, '.semacdr-attention') or {}).get('title', ''),
                         what='the user switch')
                wait_for(lambda: f'user {other}' in page.inner_text(f'{att} .semacdr-user-info'),
                         what='the user summary')
                topk = wait_for(lambda: (k := plot_state(page, '.semacdr-topk')) and k['x'] != k0['x'] and k,
                                what='new recommendations')
                assert topk['n'][0] >= 10 and 'true next item' in topk['title']
                gates = plot_state(page, '.semacdr-gates')
                assert gates and len(gates['n']) >= 2, gates   # sequence-fusion gate + one bar trace per item view

                # the screenshot: code cells collapsed so both widgets fit on the page
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:hide-all-cell-code')")
                page.set_viewport_size({'width': 1500, 'height': 2300})
                page.evaluate("() => window.jupyterapp.shell.currentWidget.content.node.scrollTo(0, 0)")
                page.wait_for_timeout(1000)
                page.screenshot(path=str(ARTIFACTS/'widgets-browser.png'), full_page=True)
            except BaseException:
                try:
                    page.screenshot(path=str(ARTIFACTS/'widgets-browser-failure.png'), full_page=True)
                    (ARTIFACTS/'widgets-browser-failure.html').write_text(page.content())
                except Exception:
                    pass
                raise
            finally:
                browser.close()
    finally:
        stop(proc)
        timings['total_s'] = round(time.time() - t_start, 1)
        (ARTIFACTS/'widgets-browser.json').write_text(json.dumps(dict(timings, console_errors=console[-20:]), indent=1))
        print(f'browser test timings: {timings}')
        shutil.rmtree(work, ignore_errors=True)
    assert proc.poll() is not None
