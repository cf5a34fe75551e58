#!/usr/bin/env python
"""Build the semacdr documentation site offline, the way `nbdev_docs` + Quarto publish it, into `_docs/`.

    make docs                                   # = python tools/build_docs.py
    python tools/build_docs.py --out /tmp/site  # somewhere else
    python tools/build_docs.py --readme         # rewrite README.md (+ index_files/) from nbs/index.ipynb
    python tools/build_docs.py --check-readme   # exit 1 if README.md has drifted from nbs/index.ipynb

Quarto is not installable on our machines, so this script reproduces what the published site (built by
`.github/workflows/deploy.yaml` with `nbdev_docs` and Quarto) contains, with library calls:

1. nbdev's own notebook processing (`nbdev.serve._proc_file` + `nbdev.serve_drv.main`, i.e. `nbdev_proc_nbs`
   without its Quarto install step): frontmatter, `show_doc` cells added after exported code and executed (the API
   reference), `#| hide`/`#| export` cells dropped, doc links. Notebooks are NOT re-executed: every other output
   is the one committed in the notebook.
2. nbconvert's `HTMLExporter` with the JupyterLab template (extended by `tools/docs_template/semacdr`) renders each
   processed notebook; the Quarto cell options nbdev leaves behind (`#| echo: false`, `#| output: asis`,
   `#| code-fold`, `#| include: false`...) and the pandoc markdown it emits (`[..](..){attrs}`, `:::` divs) are
   translated first, and LaTeX math becomes MathML (latex2mathml), so pages need no CDN.
3. Navigation comes from `nbs/sidebar.yml` (the file Quarto reads), whose globs pick up new notebooks by
   themselves; every page gets the sidebar, a navbar and an "on this page" table of contents.
"""
from __future__ import annotations

import argparse, base64, html, json, os, re, shutil, sys, time, uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent/'docs_template'
PAGE_EXTS = ('.ipynb',)
_GLOB_CHARS = set('*?[{')


# ---------------------------------------------------------------------------------------------------------------
# configuration


def _config():
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    from nbdev.config import get_config
    return get_config()


def site_url(cfg) -> str:
    "The published site's URL (settings.ini doc_host + doc_baseurl), with a trailing slash."
    return cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/'


# ---------------------------------------------------------------------------------------------------------------
# 1. nbdev processing (what `nbdev_proc_nbs` does, into a cache folder we choose, without installing Quarto)


def _newest_mtime(paths) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def process_notebooks(cache: Path, force: bool = False, n_workers: int = 2, quiet: bool = False) -> Path:
    "Run nbdev's docs processors over every notebook (and copy the other files) of `nbs/` into `cache`."
    cfg = _config()
    import nbdev, nbdev.serve
    from nbdev.serve import _proc_file
    from nbdev.doclinks import nbglob
    from nbdev import serve_drv
    from fastcore.parallel import parallel
    nbs = cfg.nbs_path.absolute()  # not resolve(): nbs/_quarto.yml may be a symlink out of nbs/
    files = list(nbglob(nbs, func=Path, file_glob='', file_re=''))
    files += [nbs/f for f in ('_quarto.yml', '_brand.yml') if (nbs/f).exists()]
    # The API reference depends on the library's source (signatures, docstrings, line numbers), the settings and
    # nbdev itself: when any of them is newer than the cache, start over (nbdev only checks the last two).
    deps = [cfg.config_file, Path(nbdev.serve.__file__), Path(__file__), *cfg.lib_path.rglob('*.py')]
    cache = Path(cache).resolve()
    if cache.exists() and (force or _newest_mtime(deps) > cache.stat().st_mtime):
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    # Drop what no longer has a source (a renamed or deleted notebook must not stay on the site).
    files = [Path(os.path.abspath(f)) for f in files]
    wanted = {cache/f.relative_to(nbs) for f in files}
    for p in sorted(cache.rglob('*'), reverse=True):
        if p.is_file() and p not in wanted:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    jobs = [(s, d) for f in files if (j := _proc_file(f, cache, nbs)) for s, d, _ in [j]]
    if not quiet:
        print(f'nbdev processing {len(jobs)} notebook(s) of {len(files)} file(s) into {cache}', flush=True)
    if jobs:
        kw = dict(method='spawn') if n_workers > 0 else {}
        parallel(_proc_one, jobs, n_workers=n_workers, pause=0.01, progress=False, **kw)
    cache.touch()
    return cache


def _proc_one(job):
    "One notebook through nbdev's docs processors (`nbdev.serve_drv.main`, with `DocsFilter`)."
    from nbdev import serve_drv
    src, dst = job
    serve_drv.main((src, dst, DocsFilter))


def _docs_filter_class():
    from nbdev.processors import FilterDefaults, exec_show_docs, _show_docs, _ast_contains, cell_lang
    import ast, warnings
    from fastcore.xtras import str2bool

    def what_to_eval(cell):
        "nbdev's `_do_eval`, except that a cell mixing imports with other code runs its imports only."
        if cell_lang(cell) != 'python' or cell.cell_type != 'code':
            return None
        if not cell.source or 'nbdev_export' + '()' in cell.source:
            return None
        trees = cell.parsed_()
        if not trees:
            return None
        if cell.directives_.get('eval:', [''])[0].lower() == 'false':
            return None
        if cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}:
            return 'all'
        if _show_docs(trees):
            return 'all'
        if _ast_contains(trees, (ast.Import, ast.ImportFrom)):
            if all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees):
                return 'all'
            return 'imports'
        return None

    class exec_show_docs_lean(exec_show_docs):
        """`exec_show_docs` that never runs a notebook's computations: exported code, imports and `show_doc` calls
        only (nbdev would run a whole cell that mixes imports with other code, i.e. load data or train a model).
        A failing cell is reported instead of aborting the whole site."""
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k'):
                return
            fm = getattr(self.nb, 'frontmatter_', {})
            if str2bool(fm.get('skip_showdoc', False)):
                return
            how = what_to_eval(cell)
            if how == 'all':
                self.k.cell(cell)
            elif how == 'imports':
                imps = [t for t in cell.parsed_() if isinstance(t, (ast.Import, ast.ImportFrom))
                        or ast.unparse(t).startswith('sys.path.')]   # imports, and where they import from
                self.k.run('\n'.join(ast.unparse(t) for t in imps))
            if self.k.exc:
                warnings.warn(f"docs: {getattr(self.nb, 'path_', '?')}: cell {cell.idx_} failed "
                              f"({type(self.k.exc).__name__}: {self.k.exc}):\n{cell.source[:300]}")
                self.k.exc = None

    class DocsFilter(FilterDefaults):
        "nbdev's default docs processors, with `exec_show_docs_lean` in place of `exec_show_docs`."
        def base_procs(self):
            return [exec_show_docs_lean if p is exec_show_docs else p for p in super().base_procs()]
    return DocsFilter


class _LazyDocsFilter:
    "Imports nbdev only when used (keeps `import build_docs` cheap); picklable for spawned workers."
    def __call__(self):
        return _docs_filter_class()()


DocsFilter = _LazyDocsFilter()


# ---------------------------------------------------------------------------------------------------------------
# 2. pages and navigation


def _frontmatter(nb) -> dict:
    import yaml
    if nb.cells and nb.cells[0].cell_type == 'raw':
        m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', nb.cells[0].source, flags=re.DOTALL)
        if m:
            return yaml.safe_load(m.group(1)) or {}
    return {}


def page_html_path(rel: Path, fm: dict) -> Path:
    "Where a processed notebook's page goes: its frontmatter `output-file` (nbdev's name) in the same folder."
    from nbdev.doclinks import _nbpath2html
    return rel.parent/(fm.get('output-file') or _nbpath2html(rel).name)


class Page:
    def __init__(self, proc: Path, rel: Path):
        import nbformat
        self.rel, self.src = rel, proc/rel
        self.nb = nbformat.read(self.src, as_version=4)
        for c in self.nb.cells:  # nbdev's processors leave private keys (e.g. `has_sd`) that nbformat rejects
            for k in [k for k in c if k not in ('cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count',
                                                'attachments')]:
                del c[k]
        self.fm = _frontmatter(self.nb)
        self.out = page_html_path(rel, self.fm)
        self.title = str(self.fm.get('title') or rel.stem)
        self.description = str(self.fm.get('description') or '')

    def __repr__(self):
        return f'Page({self.rel} -> {self.out})'


def find_pages(proc: Path) -> dict[str, Page]:
    "Every page of the site, keyed by the processed notebook's path relative to `nbs/`."
    pages = {}
    for p in sorted(proc.rglob('*')):
        rel = p.relative_to(proc)
        if p.suffix in PAGE_EXTS and not any(s.startswith(('_', '.')) for s in rel.parts):
            pages[rel.as_posix()] = Page(proc, rel)
    return pages


def _expand(entry: str, pages: dict[str, Page]) -> list[str]:
    "A sidebar entry (a path or a Quarto glob) as the page keys it names, in file name order."
    if not _GLOB_CHARS & set(entry):
        return [entry]
    import fnmatch
    anchored = entry.startswith('/')
    pat = entry.lstrip('/')
    def ok(k):
        if fnmatch.fnmatchcase(k, pat) and (not anchored or k.count('/') == pat.count('/')):
            return True
        # Quarto globs match recursively unless they start with '/'
        return not anchored and any(fnmatch.fnmatchcase('/'.join(k.split('/')[i:]), pat)
                                    for i in range(1, k.count('/') + 1))
    return sorted((k for k in pages if ok(k)), key=lambda k: (k.count('/'), k))


def load_sidebar(nbs: Path, pages: dict[str, Page]) -> list[dict]:
    """`nbs/sidebar.yml` resolved against the built pages: a list of {'text', 'key'} links and
    {'section', 'contents'} groups. Entries naming a missing page are kept (key None) so the check can flag them."""
    import yaml
    f = nbs/'sidebar.yml'
    spec = yaml.safe_load(f.read_text()) if f.exists() else {}
    sb = (spec or {}).get('website', {}).get('sidebar', {})
    if isinstance(sb, list):
        sb = sb[0] if sb else {}
    contents = sb.get('contents') if sb else None
    if contents in (None, 'auto'):
        contents = ['index.ipynb', '*.ipynb']

    def items(c):
        if isinstance(c, (str, dict)):
            c = [c]
        out = []
        for e in c:
            if isinstance(e, str):
                if e == 'auto':
                    e = '*.ipynb'
                out += [dict(text=pages[k].title if k in pages else k, key=k if k in pages else None, entry=k)
                        for k in _expand(e, pages)]
            elif 'section' in e:
                out.append(dict(section=str(e['section']), contents=items(e.get('contents', []))))
            elif 'auto' in e:
                out += items(e['auto'])
            elif 'href' in e:
                k = e['href']
                out.append(dict(text=e.get('text') or (pages[k].title if k in pages else k),
                                key=k if k in pages else None, entry=k))
        return out
    return items(contents)


def _flat(sidebar):
    for e in sidebar:
        if 'section' in e:
            yield from _flat(e['contents'])
        else:
            yield e


def _relurl(target: Path, here: Path) -> str:
    "URL of site path `target` from the page at site path `here`."
    return os.path.relpath(target.as_posix(), here.parent.as_posix() or '.').replace(os.sep, '/')


def sidebar_html(sidebar, pages, here: Path) -> str:
    def render(items, depth=0):
        lis = []
        for e in items:
            if 'section' in e:
                inner = render(e['contents'], depth + 1)
                lis.append(f'<li class="sidebar-section"><span '
                           f'class="sidebar-section-title">{html.escape(e["section"])}</span>{inner}</li>')
            elif e['key'] is None:  # a missing page: keep a link so the browser check fails on it
                lis.append(f'<li><a class="sidebar-link" '
                           f'href="{html.escape(e["entry"])}">{html.escape(e["text"])}</a></li>')
            else:
                p = pages[e['key']]
                cur = ' active' if p.out == here else ''
                lis.append(f'<li><a class="sidebar-link{cur}" '
                           f'href="{_relurl(p.out, here)}">{html.escape(p.title)}</a></li>')
        return f'<ul class="sidebar-list depth-{depth}">' + ''.join(lis) + '</ul>'
    return render(sidebar)


# ---------------------------------------------------------------------------------------------------------------
# 3. what Quarto would do with the processed notebooks, as nbconvert preprocessing


_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def split_cell_options(source: str) -> tuple[dict, str]:
    "Leading Quarto `#| key: value` options of a code cell, and the code without them."
    import yaml
    lines, opts = source.splitlines(), {}
    i = 0
    while i < len(lines) and (m := _re_opt.match(lines[i])):
        try:
            v = yaml.safe_load(m.group(2)) if m.group(2) else True
        except Exception:
            v = m.group(2)
        opts[m.group(1)] = v
        i += 1
    return opts, '\n'.join(lines[i:])


_re_img_attr = re.compile(r'!\[([^\]\n]*)\]\(([^)\s]+)(?:\s+"([^"]*)")?\)\{([^}\n]*)\}')
_re_link_attr = re.compile(r'(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')
_re_fence_div = re.compile(r'^\s*(:{3,})\s*(\{[^}]*\}|[\w-]+)?\s*$')
_re_head_attr = re.compile(r'^(#{1,6}\s.*?)\s*\{[^}\n]*\}\s*$', flags=re.MULTILINE)
_re_attr_kv = re.compile(r'([\w-]+)=("[^"]*"|\S+)')
_re_attr_cls = re.compile(r'(?:^|\s)\.([\w-]+)')


def _attrs(s: str) -> tuple[list[str], dict[str, str]]:
    s = s.strip().strip('{}')
    classes = _re_attr_cls.findall(s)
    kv = {k: v.strip('"') for k, v in _re_attr_kv.findall(s)}
    return classes, kv


def _html_attrs(classes, kv) -> str:
    out = ''
    if classes:
        out += f' class="{html.escape(" ".join(classes))}"'
    for k, v in kv.items():
        out += f' {k}="{html.escape(v)}"'
    return out


_re_code_span = re.compile(r'(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)')
_re_table_row = re.compile(r'^\s*\|.*\|\s*$')
# characters that would end a table cell or start markdown inside a code span turned into inline HTML
_CODE_ENTITIES = {c: f'&#{ord(c)};' for c in '|*_`[]\\$<>&'}


def table_code_spans(line: str) -> str:
    """A pipe-table row whose code spans contain `|`, with those spans as inline `<code>` HTML. Pandoc (so Quarto)
    reads code spans before splitting a row into cells; nbconvert's markdown renderer splits on every `|` first and
    then drops the whole table, because the row has more cells than the header."""
    if not _re_table_row.match(line):
        return line
    def code(m):
        if '|' not in m.group(2):
            return m.group(0)
        return '<code>' + ''.join(_CODE_ENTITIES.get(c, c) for c in m.group(2).strip()) + '</code>'
    return _re_code_span.sub(code, line)


_UNRENDERED = {'a markdown table rule (| --- |)': re.compile(r'\|\s*:?-{3,}:?\s*\|'),
               'literal ** (bold that was not rendered)': re.compile(r'\*\*(?:\S[^*\n]*?\*\*)?'),
               'a pandoc fenced div (:::)': re.compile(r'^\s*:::', flags=re.MULTILINE)}


def unrendered_markdown(page_html: str) -> list[str]:
    "Markdown syntax left as text in a built page (outside code): each problem with the text around it."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(page_html, 'html.parser')
    main = soup.find(id='site-content') or soup.find('main') or soup
    for el in main.find_all(['pre', 'code', 'script', 'style', 'textarea']):
        el.decompose()
    text = main.get_text()
    found = []
    for what, pat in _UNRENDERED.items():
        for m in pat.finditer(text):
            around = ' '.join(text[max(0, m.start() - 60):m.end() + 60].split())
            found.append(f'{what}: ...{around}...')
    return found


def pandoc_to_commonmark(md: str) -> str:
    "Translate the pandoc-markdown bits nbdev and our notebooks use into HTML that any CommonMark renderer passes on."
    def img(m):
        alt, src, title, a = m.groups()
        cls, kv = _attrs(a)
        if 'width' in kv:
            kv['style'] = f'width:{kv.pop("width")};' + kv.get('style', '')
        if 'fig-alt' in kv:
            alt = kv.pop('fig-alt')
        kv = {k: v for k, v in kv.items() if not k.startswith('fig-')}
        t = f' title="{html.escape(title)}"' if title else ''
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{t}{_html_attrs(cls, kv)}>'
    def link(m):
        text, href, a = m.groups()
        cls, kv = _attrs(a)
        return f'<a href="{html.escape(href)}"{_html_attrs(cls, kv)}>{text}</a>'
    md = _re_img_attr.sub(img, md)
    md = _re_link_attr.sub(link, md)
    md = _re_head_attr.sub(r'\1', md)
    out, depth, in_code = [], 0, None
    for line in md.splitlines():
        fence = re.match(r'^\s*(`{3,}|~{3,})', line)
        if in_code or fence:  # fenced code blocks pass through untouched
            if fence and (in_code is None or fence.group(1).startswith(in_code)):
                in_code = None if in_code else fence.group(1)
            out.append(line)
            continue
        m = _re_fence_div.match(line)
        if m and m.group(2):  # opening fence
            spec = m.group(2)
            cls, kv = _attrs(spec) if spec.startswith('{') else ([spec], {})
            title = kv.pop('title', None)
            if any(c.startswith('callout') for c in cls):
                cls = ['callout'] + cls
            out += ['', f'<div{_html_attrs(cls, kv)}>', '']
            if title:
                out += [f'<div class="callout-title">{html.escape(title)}</div>', '']
            depth += 1
        elif m and depth:  # closing fence
            out += ['', '</div>', '']
            depth -= 1
        else:
            out.append(table_code_spans(line))
    out += ['</div>'] * depth
    return '\n'.join(out)


def _plotly_html(fig: dict) -> str:
    div = f'plotly-{uuid.uuid4().hex[:12]}'
    data = json.dumps(fig.get('data', []))
    layout = json.dumps(fig.get('layout', {}))
    cfg = json.dumps(dict(fig.get('config', {}), responsive=True))
    return (f'<div id="{div}" class="plotly-graph-div" style="height:{fig.get("layout", {}).get("height", 450)}px;'
            f'width:100%;"></div><script>window.Plotly && Plotly.newPlot("{div}", {data}, {layout}, {cfg});</script>')


_PLOTLY_CDN = re.compile(r'https://cdn\.plot\.ly/plotly-[\w.\-]*?\.js')
_PLOTLY_MIME = 'application/vnd.plotly.v1+json'


def quarto_cells(nb, resources: dict):
    "Apply the Quarto cell options and markdown extensions to a processed notebook, in place."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'raw':  # the frontmatter (shown in the page header) and raw cells Quarto drops for html
            continue
        if cell.cell_type == 'markdown':
            cell.source = pandoc_to_commonmark(cell.source)
            if cell.source.strip() == '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->':
                continue
            cells.append(cell)
            continue
        if cell.cell_type != 'code':
            cells.append(cell)
            continue
        opts, cell.source = split_cell_options(cell.source)
        if opts.get('include') is False:
            continue
        if opts.get('output') is False or opts.get('eval') is False and not cell.get('outputs'):
            cell.outputs = []
        if opts.get('echo') is False or not cell.source.strip():
            cell.metadata.setdefault('transient', {})['remove_source'] = True
        if 'code-fold' in opts:
            cell.metadata['code_fold'] = 'show' if opts['code-fold'] == 'show' else 'hide'
            cell.metadata['code_summary'] = str(opts.get('code-summary', 'Code'))
        for out in cell.get('outputs', []):
            data = out.get('data')
            if not data:
                continue
            if 'text/markdown' in data:
                md = data['text/markdown']
                data['text/markdown'] = pandoc_to_commonmark(''.join(md) if isinstance(md, list) else md)
            if _PLOTLY_MIME in data:
                resources['needs_plotly'] = True
                data['text/html'] = _plotly_html(data.pop(_PLOTLY_MIME))
            elif 'text/html' in data:
                h = ''.join(data['text/html']) if isinstance(data['text/html'], list) else data['text/html']
                if 'cdn.plot.ly' in h or 'plotly' in h and 'require' in h:
                    resources['needs_plotly'] = True
                    h = _PLOTLY_CDN.sub('', h)
                data['text/html'] = h
        if cell.source.strip() or cell.get('outputs'):
            cells.append(cell)
    nb.cells = cells
    return nb


def _markdown_exporter_class():
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        "nbconvert's renderer, with TeX math turned into MathML (rendered natively by browsers, no MathJax)."
        def _mathml(self, body, display):
            try:
                import latex2mathml.converter
                return latex2mathml.converter.convert(body.strip(), display=display)
            except Exception:
                return (f'<code class="math">{self.escape_html(body)}</code>' if display == 'inline'
                        else f'<pre class="math">{self.escape_html(body)}</pre>')
        def block_math(self, body):
            return self._mathml(body, 'block')
        def inline_math(self, body):
            return self._mathml(body, 'inline')
        def latex_environment(self, name, body):
            return self._mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', 'block')

    class SiteHTMLExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get('cell', {})
            renderer = MathMLRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=False,
                                      path=context.get('resources', {}).get('metadata', {}).get('path', ''),
                                      anchor_link_text=self.anchor_link_text, exclude_anchor_links=True,
                                      **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)
    return SiteHTMLExporter


def make_exporter():
    from traitlets.config import Config
    c = Config()
    c.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    c.HTMLExporter.template_name = 'semacdr'
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.sanitize_html = False
    return _markdown_exporter_class()(config=c)


# ---------------------------------------------------------------------------------------------------------------
# 4. post-processing: heading ids as pandoc makes them, table of contents, links between pages


def pandoc_id(text: str) -> str:
    "The identifier pandoc (hence Quarto, hence nbdev's doc links) gives a heading."
    s = re.sub(r'[^\w\s.\-]', '', text.strip().lower())
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z_]+', '', s)
    return s or 'section'


def finish_html(doc: str, page: Page, pages: dict[str, Page], site: str) -> str:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(doc, 'html.parser')
    main = soup.find('main')
    by_src = {k: p for k, p in pages.items()}
    # heading ids
    seen, toc = set(), []
    for h in main.find_all(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']):
        for a in h.find_all('a', class_='anchor-link'):
            a.decompose()
        if h.get('class') and 'title' in h['class']:
            continue
        base = pandoc_id(h.get_text())
        hid, n = base, 1
        while hid in seen:
            hid, n = f'{base}-{n}', n + 1
        seen.add(hid)
        h['id'] = hid
        h['class'] = h.get('class', []) + ['anchored']
        if h.name in ('h2', 'h3'):
            toc.append((h.name, hid, h.get_text().strip()))
    # links: the published site's absolute URLs and .ipynb sources become relative links to the built pages
    for tag, attr in (('a', 'href'), ('img', 'src'), ('script', 'src'), ('link', 'href')):
        for el in soup.find_all(tag):
            url = el.get(attr)
            if not url:
                continue
            from_site = tag == 'a' and url.startswith(site)    # nbdev's doc links name the published site
            if from_site:
                url = url[len(site):] or 'index.html'
            if re.match(r'^[a-z][\w+.-]*:', url) or url.startswith(('#', '/', '//')):
                continue
            path, frag = (url.split('#', 1) + [''])[:2]
            if from_site:  # a path from the site root
                if path.endswith('.ipynb') and path in by_src:
                    path = by_src[path].out.as_posix()
                path = _relurl(Path(path), page.out) if path else ''
            elif path.endswith('.ipynb'):  # a notebook relative to this one: its page
                key = os.path.normpath((page.rel.parent/path).as_posix()).replace(os.sep, '/')
                if key in by_src:
                    path = _relurl(by_src[key].out, page.out)
            el[attr] = path + ('#' + frag if frag else '')
    # table of contents
    if toc:
        items = ''.join(f'<li class="toc-{lvl}"><a href="#{hid}">{html.escape(txt)}</a></li>' for lvl, hid, txt in toc)
        toc_html = f'<h2 class="toc-title">On this page</h2><ul>{items}</ul>'
    else:
        toc_html = ''
    out = str(soup).replace('<!--SITE-TOC-->', toc_html)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the build


def _assets(out: Path, needs_plotly: bool):
    import nbconvert, pygments.formatters
    a = out/'assets'
    a.mkdir(parents=True, exist_ok=True)
    lab = Path(sys.prefix)/'share'/'jupyter'/'nbconvert'/'templates'/'lab'/'static'
    if not lab.exists():  # a user-level or system install of nbconvert's templates
        from jupyter_core.paths import jupyter_path
        lab = next(Path(p)/'lab'/'static'
                   for p in jupyter_path('nbconvert', 'templates') if (Path(p)/'lab'/'static').exists())
    (a/'jupyterlab.css').write_text((lab/'index.css').read_text() + '\n' + (lab/'theme-light.css').read_text())
    (a/'pygments.css').write_text(pygments.formatters.HtmlFormatter(style='default').get_style_defs('.highlight'))
    shutil.copy2(TEMPLATES/'site.css', a/'site.css')
    if needs_plotly:
        import plotly
        shutil.copy2(Path(plotly.__file__).parent/'package_data'/'plotly.min.js', a/'plotly.min.js')


def build(out: Path | str | None = None, cache: Path | str | None = None, force: bool = False,
          n_workers: int = 2, quiet: bool = False) -> dict:
    "Build the site into `out` (default `_docs/`); returns {'pages': [...], 'seconds': ...}."
    t0 = time.time()
    cfg = _config()
    out = Path(out or cfg.doc_path).resolve()
    cache = Path(cache or ROOT/'_proc').resolve()
    proc = process_notebooks(cache, force=force, n_workers=n_workers, quiet=quiet)
    pages = find_pages(proc)
    sidebar = load_sidebar(proc if (proc/'sidebar.yml').exists() else cfg.nbs_path, pages)
    site = site_url(cfg)
    exporter = make_exporter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    needs_plotly = False
    for key, page in pages.items():
        import copy
        nb = copy.deepcopy(page.nb)
        res = {}
        quarto_cells(nb, res)
        needs_plotly |= bool(res.get('needs_plotly'))
        root = _relurl(Path('index.html'), page.out)[:-len('index.html')]
        resources = dict(metadata=dict(name=page.title, path=str(page.src.parent)), site=dict(
            root=root, title=page.title, description=page.description, source=f'nbs/{key}',
            site_title=cfg.title, site_description=cfg.description, repo_url=cfg.git_url,
            sidebar_html=sidebar_html(sidebar, pages, page.out),
            scripts=['assets/plotly.min.js'] if res.get('needs_plotly') else []))
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        dest = out/page.out
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(finish_html(body, page, pages, site), encoding='utf-8')
    # resources next to the notebooks (images, css, data the pages link to), as Quarto copies them
    for p in proc.rglob('*'):
        rel = p.relative_to(proc)
        if p.is_file() and p.suffix not in PAGE_EXTS + ('.yml', '.qmd') and not rel.parts[0].startswith(('_', '.')):
            (out/rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, out/rel)
    _assets(out, needs_plotly)
    (out/'.nojekyll').touch()
    nav = [dict(text=e['text'], href=pages[e['key']].out.as_posix() if e['key'] else e['entry'])
           for e in _flat(sidebar)]
    (out/'site.json').write_text(json.dumps(dict(
        pages=[dict(source=f'nbs/{k}', href=p.out.as_posix(), title=p.title) for k, p in pages.items()],
        sidebar=nav), indent=1))
    dt = time.time() - t0
    if not quiet:
        print(f'built {len(pages)} pages into {out} in {dt:.1f}s')
    return dict(pages=[p.out.as_posix() for p in pages.values()], seconds=dt, out=out)


# ---------------------------------------------------------------------------------------------------------------
# README.md from nbs/index.ipynb (what `nbdev_readme` renders with Quarto's gfm writer)


README_IMAGES = 'index_files'


def render_readme() -> tuple[str, dict[str, bytes]]:
    "README text and its image files (path -> bytes), from the committed outputs of the readme notebook."
    cfg = _config()
    import copy
    from execnb.nbio import read_nb
    import nbformat
    from nbconvert import MarkdownExporter
    src = cfg.nbs_path/cfg.readme_nb
    nb = read_nb(src)
    # the same processing the site gets (index has no exports, so nothing is executed), except nbdev's doc links:
    # they follow the whole package's symbol index, and the README should change only when the index notebook does
    flt = DocsFilter()
    from nbdev.process import NBProcessor
    from nbdev.processors import add_links
    NBProcessor(nb=nb, procs=[p for p in flt.procs() if p is not add_links]).process()
    nb = nbformat.reads(json.dumps(_plain(nb)), as_version=4)
    fm = _frontmatter(nb)
    quarto_cells(nb, {})
    for cell in nb.cells:  # Quarto's gfm writer drops the input of `echo: false` cells
        if cell.cell_type == 'code' and cell.metadata.get('transient', {}).get('remove_source'):
            cell.source = ''
    exp = MarkdownExporter()
    body, res = exp.from_notebook_node(nb, resources=dict(output_files_dir=README_IMAGES, unique_key='index'))
    files = {}
    for name, data in res.get('outputs', {}).items():
        files[name] = data if isinstance(data, bytes) else data.encode()
    body = re.sub(r'\n```python\n\n```\n', '\n', body)  # empty inputs of echo: false cells
    body = re.sub(r'\n {4}\n(!\[)png(\]\([^)]*\))\n {4}\n', r'\n\1figure\2\n', body)  # nbconvert's image padding
    # links to other notebooks point at their published pages (the .ipynb paths mean nothing from the repo root)
    site = site_url(cfg)
    def pub(m):
        from nbdev.doclinks import _nbpath2html
        path, frag = (m.group(2).split('#', 1) + [''])[:2]
        return f'{m.group(1)}({site}{_nbpath2html(Path(path)).as_posix()}{"#" + frag if frag else ""})'
    body = re.sub(r'(\[[^\]]*\])\((?![a-z]+:)([^)\s]+\.ipynb(?:#[^)\s]*)?)\)', pub, body)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    head = f'# {fm.get("title", cfg.title)}\n\n'
    head += ('<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/index.ipynb BY tools/build_docs.py --readme. '
             'DO NOT EDIT! -->\n\n')
    if fm.get('description'):
        head += f'> {fm["description"]}\n\n'
    return head + body, files


def _plain(o):
    "An execnb notebook (AttrDict with extra attributes) as plain json-able data."
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items() if not k.endswith('_')}
    if isinstance(o, list):
        return [_plain(v) for v in o]
    return o


def write_readme() -> Path:
    text, files = render_readme()
    img = ROOT/README_IMAGES
    if img.exists():
        shutil.rmtree(img)
    for name, data in files.items():
        (ROOT/name).parent.mkdir(parents=True, exist_ok=True)
        (ROOT/name).write_bytes(data)
    (ROOT/'README.md').write_text(text)
    return ROOT/'README.md'


def readme_drift() -> list[str]:
    "What differs between README.md (+ its images) and what nbs/index.ipynb renders to; empty when in sync."
    text, files = render_readme()
    problems = []
    readme = ROOT/'README.md'
    if not readme.exists() or readme.read_text() != text:
        import difflib
        old = readme.read_text().splitlines() if readme.exists() else []
        diff = '\n'.join(list(difflib.unified_diff(old, text.splitlines(), 'README.md', 'from nbs/index.ipynb',
                                                   lineterm=''))[:40])
        problems.append('README.md differs from nbs/index.ipynb:\n' + diff)
    for name, data in files.items():
        p = ROOT/name
        if not p.exists() or p.read_bytes() != data:
            problems.append(f'{name} is missing or differs')
    img = ROOT/README_IMAGES
    if img.exists():
        extra = [p.relative_to(ROOT).as_posix() for p in img.rglob('*') if p.is_file()]
        extra = [e for e in extra if e not in files]
        if extra:
            problems.append(f'stale README images: {extra}')
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', help='output folder (default: settings.ini doc_path, i.e. _docs)')
    ap.add_argument('--cache', help='nbdev processing cache (default: _proc)')
    ap.add_argument('--force', action='store_true', help='re-process every notebook')
    ap.add_argument('--workers', type=int, default=2, help='processes for the nbdev step (0: in this process)')
    ap.add_argument('--readme', action='store_true', help='only rewrite README.md from nbs/index.ipynb')
    ap.add_argument('--check-readme', action='store_true', help='only check README.md against nbs/index.ipynb')
    a = ap.parse_args(argv)
    if a.check_readme:
        problems = readme_drift()
        for p in problems:
            print(p)
        if problems:
            print('run: make readme')
            return 1
        print('README.md is in sync with nbs/index.ipynb')
        return 0
    if a.readme:
        print(f'wrote {write_readme()}')
        return 0
    r = build(a.out, a.cache, force=a.force, n_workers=a.workers)
    for p in r['pages']:
        print('  ', p)
    return 0


if __name__ == '__main__':
    # run as the importable module `build_docs`, so that spawned workers can unpickle `_proc_one`
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import build_docs
    sys.exit(build_docs.main())
