"Widget logic without a browser: set control values, fire plotly's own event handlers, check plot data and panels."
import os

import numpy as np
import pandas as pd
import pytest

from semacdr.widgets import (REF_RANDOM, REF_TEXT, SHUFFLED, AttentionExplorer, PCAReducer, SemanticSpace,
                             SemanticSpaceExplorer, UMAPReducer, UserExplanation, attention_figure,
                             cosine_similarity_explainer, cross_domain_neighbors, domain_mixing, gates_figure,
                             item_text_reference, knn_cosine, l2_normalize, mixing_html, similarity_explainer,
                             stratified_sample)

SLOW = 'slow' in os.environ.get('NBDEV_TEST_FLAGS', '')


class FakeReducer:
    "A fast reducer whose output depends on the parameters (so a refit visibly moves points); records its calls."
    name = 'fake'
    def __init__(self):
        self.calls = []
    def __call__(self, X, n_neighbors=15, min_dist=0.1, seed=0):
        self.calls.append((len(X), n_neighbors, min_dist))
        return PCAReducer()(X) * (1 + n_neighbors/10) + min_dist


def make_items(n=300, seed=0):
    rng = np.random.default_rng(seed)
    dom = np.repeat([0, 1], [n//2, n - n//2])
    genres = np.array(['Comedy', 'Drama', 'Romance', 'War'])
    items = pd.DataFrame({'item_id': np.arange(n), 'domain': dom, 'title': [f'item {i}' for i in range(n)],
                          'category': [f'{genres[i % 4]}, Other' for i in range(n)]})
    sem = pd.DataFrame({'item_id': np.arange(n), 'specific': [f'spec text {i}' for i in range(n)],
                        'agnostic': [f'agnostic text {i}' for i in range(n)]})
    base = rng.normal(size=(n, 16)).astype(np.float32)
    views = {'mixed': base, 'separated': base + np.where(dom[:, None] == 0, 8.0, -8.0).astype(np.float32)}
    return items, sem, views


def click_event(fig, trace_index, point_index, event='plotly_click'):
    "What the plotly frontend sends to the kernel for a click (or selection) on one point."
    t = fig.data[trace_index]
    return {'new': {'event_type': event, 'points': {'trace_indexes': [trace_index], 'point_indexes': [point_index],
                                                   'xs': [float(t.x[point_index])], 'ys': [float(t.y[point_index])]},
                    'device_state': None, 'selector': None}}


def lasso_event(fig, picks):
    "A lasso selection over several (trace, point) pairs, as the frontend sends it."
    pts = {'trace_indexes': [], 'point_indexes': [], 'xs': [], 'ys': []}
    for ti, pi in picks:
        pts['trace_indexes'].append(ti)
        pts['point_indexes'].append(pi)
        pts['xs'].append(float(fig.data[ti].x[pi]))
        pts['ys'].append(float(fig.data[ti].y[pi]))
    sel = {'type': 'lasso', 'selector_state': {'xs': [0, 1, 1], 'ys': [0, 0, 1]}}
    return {'new': {'event_type': 'plotly_selected', 'points': pts, 'device_state': None, 'selector': sel}}


@pytest.fixture
def explorer():
    items, sem, views = make_items()
    red = FakeReducer()
    ex = SemanticSpaceExplorer(items, views, ('Books', 'Movies'), semantics=sem, reducer=red, sample_size=200,
                               view='separated')
    return ex, red


def test_building_blocks():
    X = np.random.default_rng(1).normal(size=(50, 8))
    idx, sims = knn_cosine(X, 5, chunk=7)   # chunking gives the brute-force answer
    S = l2_normalize(X) @ l2_normalize(X).T
    np.fill_diagonal(S, -np.inf)
    assert (idx == np.argsort(-S, axis=1)[:, :5]).all()
    assert np.allclose(sims, np.sort(S, axis=1)[:, ::-1][:, :5], atol=1e-5)
    dom = np.repeat([0, 1], 25)
    nb, s = cross_domain_neighbors(X, dom, 3, k=4)
    assert (dom[nb] == 1).all() and nb[0] == 25 + np.argmax(S[3, 25:])
    nb2, _ = cross_domain_neighbors(X, dom, [30, 31], k=3)
    assert (dom[nb2] == 0).all()
    smp = stratified_sample(np.repeat([0, 1], [900, 100]), 100, seed=3)
    assert len(smp) == 100 and (smp >= 900).sum() == 10 and (np.diff(smp) > 0).all()
    assert (stratified_sample(dom, None) == np.arange(50)).all()


def test_mixing_measure_separates_views():
    items, _, views = make_items()
    sep, mix = domain_mixing(views['separated'], items.domain), domain_mixing(views['mixed'], items.domain)
    assert sep['score'] < 0.05 and 0.8 < mix['score'] < 1.2
    assert set(sep['per_domain']) == {0, 1}


@pytest.mark.parametrize('share', [0.5, 0.2])
def test_shuffled_label_reference_is_ideal(share):
    "Whatever the geometry (here two far-apart clouds), permuted labels score the ideal 1 up to sampling noise."
    rng = np.random.default_rng(0)
    n = 600
    dom = (np.arange(n) >= n * (1 - share)).astype(int)
    X = rng.normal(size=(n, 8)) + np.where(dom[:, None] == 0, 6.0, -6.0)
    shuffled = [domain_mixing(X, dom, seed=s)['shuffled'] for s in range(5)]
    assert domain_mixing(X, dom)['score'] < 0.05
    assert abs(np.mean(shuffled) - 1) < 0.05 and all(abs(v - 1) < 0.15 for v in shuffled)
    assert len(set(shuffled)) > 1                          # the seed changes the permutation


def test_space_state_without_widgets():
    items, sem, views = make_items()
    red = FakeReducer()
    sp = SemanticSpace(items, views, ('Books', 'Movies'), semantics=sem, reducer=red, sample_size=200,
                       text_reference=views['separated'])
    rows, Y = sp.embedding()
    assert len(rows) == 200 and Y.shape == (200, 2) and red.calls == [(200, 15, 0.1)]
    sp.n_neighbors = 30
    sp.embedding()
    sp.n_neighbors = 15
    assert sp.embedding()[1] is Y and len(red.calls) == 2 and sp.cached_maps == 2
    tab = sp.mixing_table()
    assert list(tab.index) == ['mixed', 'separated', REF_TEXT, REF_RANDOM]
    assert list(tab.kind) == ['view', 'view', 'reference', 'reference']
    assert tab.loc[REF_TEXT, 'mixing'] == tab.loc['separated', 'mixing'] < 0.05
    assert 0.8 < tab.loc[REF_RANDOM, 'mixing'] < 1.2 and (abs(tab['shuffled labels'] - 1) < 0.2).all()
    assert sp.references[REF_RANDOM].shape == (300, 16)
    sp.select(5)
    assert (sp.domain[sp.neighbors] == 1).all() and len(sp.neighbors) == sp.n_cross
    sp.view = 'mixed'
    sp.update_neighbors()
    assert (sp.neighbors == cross_domain_neighbors(views['mixed'], sp.domain, 5, k=sp.n_cross)[0]).all()
    with pytest.raises(KeyError, match='neither a view'):
        sp.vectors('nope')
    with pytest.raises(ValueError, match='not one of'):
        SemanticSpace(items, views, view='nope', reducer=red)


def test_item_text_reference_reuses_fallback_features():
    feats = {'specific_fallback': np.arange(12, dtype=np.float32).reshape(4, 3)}
    assert np.array_equal(item_text_reference(None, feats), feats['specific_fallback'])


def test_initial_plot_hover_and_mixing(explorer):
    ex, red = explorer
    assert red.calls == [(200, 15, 0.1)]
    a, b = ex.fig.data[0], ex.fig.data[1]
    assert len(a.x) + len(b.x) == 200 and len(a.x) == 100
    assert (ex.domain[np.asarray(a.customdata)] == 0).all() and (ex.domain[np.asarray(b.customdata)] == 1).all()
    i = int(a.customdata[0])
    assert all(t in a.hovertext[0] for t in (f'item {i}', f'spec text {i}', f'agnostic text {i}'))
    shuffled = ex.mixing()['shuffled']
    assert 'kNN domain mixing 0.0' in ex.fig.layout.title.text and abs(shuffled - 1) < 0.2
    assert f'(shuffled labels {shuffled:.2f})' in ex.fig.layout.title.text
    tab = ex.mixing_table()
    assert tab.loc['separated', 'mixing'] < 0.05 and tab.loc['mixed', 'mixing'] > 0.8
    assert 'separated' in ex.mixing_w.value and 'mixed' in ex.mixing_w.value
    assert ex.nn_w.continuous_update is False and ex.md_w.continuous_update is False


def test_mixing_panel_shows_references(explorer):
    ex, _ = explorer
    html = ex.mixing_w.value
    shuffled = ex.mixing_table().loc['separated', 'shuffled labels']
    assert f'{SHUFFLED} (this view)</td><td style="text-align:right">{shuffled:.2f}' in html
    assert REF_RANDOM in html and REF_TEXT not in html          # no text reference was given
    items, sem, views = make_items()
    ex2 = SemanticSpaceExplorer(items, views, semantics=sem, reducer=FakeReducer(), text_reference=views['mixed'])
    assert REF_TEXT in ex2.mixing_w.value and mixing_html(ex2.mixing_table(), 'mixed') == ex2.mixing_w.value


def test_slider_refits_once_and_caches(explorer):
    ex, red = explorer
    x0 = np.array(ex.fig.data[0].x)
    ex.nn_w.value = 30                      # a release of the slider (continuous_update=False sends one value)
    assert red.calls[-1] == (200, 30, 0.1) and len(red.calls) == 2
    x1 = np.array(ex.fig.data[0].x)
    assert not np.allclose(x0, x1) and 'n_neighbors=30' in ex.fig.layout.title.text
    ex.md_w.value = 0.5
    assert red.calls[-1] == (200, 30, 0.5) and 'min_dist=0.50' in ex.fig.layout.title.text
    ex.md_w.value = 0.1
    ex.nn_w.value = 15                      # back to earlier settings: served from the cache
    assert len(red.calls) == 3 and np.allclose(ex.fig.data[0].x, x0)
    assert 'cached map' in ex.status_w.value and ex.space.n_neighbors == 15


def test_view_switch_updates_plot_mixing_and_neighbors(explorer):
    ex, red = explorer
    ex.select(5)
    assert '“separated”' in ex.panel_w.value
    x0 = np.array(ex.fig.data[0].x)
    ex.view_w.value = 'mixed'
    assert red.calls[-1] == (200, 15, 0.1) and len(red.calls) == 2
    assert not np.allclose(x0, ex.fig.data[0].x)
    assert ex.fig.layout.title.text.startswith('mixed') and ex.view == 'mixed'
    assert 'font-weight:bold;background:#eef"><td>mixed' in ex.mixing_w.value
    assert '“mixed”' in ex.panel_w.value          # neighbours are recomputed in the new view
    nb, _ = cross_domain_neighbors(ex.views['mixed'], ex.domain, 5, k=ex.n_cross)
    assert (ex.neighbors == nb).all()


def test_click_opens_panel_with_other_domain_neighbours(explorer):
    ex, _ = explorer
    before = ex.panel_w.value
    ex.figw._handler_js2py_pointsCallback(click_event(ex.fig, 0, 3))   # the frontend's click message
    row = int(ex.fig.data[0].customdata[3])
    assert ex.selected.tolist() == [row]
    p = ex.panel_w.value
    assert p != before and f'item {row}' in p and f'spec text {row}' in p and f'agnostic text {row}' in p
    assert 'Nearest in Movies' in p and p.count('<li>') == ex.n_cross
    assert (ex.domain[ex.neighbors] == 1).all() and (np.diff(ex.neighbor_sims) <= 1e-7).all()
    for r in ex.neighbors:
        assert f'item {r}' in p
    hl = ex.fig.data[2]
    assert len(hl.x) >= 1 and int(hl.customdata[0]) == row and hl.text[0].startswith('★')
    # a click on a point of domain B lists domain A neighbours
    ex.figw._handler_js2py_pointsCallback(click_event(ex.fig, 1, 0))
    assert 'Nearest in Books' in ex.panel_w.value and (ex.domain[ex.neighbors] == 0).all()
    # clicking a highlighted point (the overlay trace) selects that item
    hl_row = int(ex.fig.data[2].customdata[1])
    ex.figw._handler_js2py_pointsCallback(click_event(ex.fig, 2, 1))
    assert ex.selected.tolist() == [hl_row]


def test_each_change_shows_a_fresh_complete_figure_widget(explorer):
    ex, _ = explorer
    w0 = ex.figw
    assert ex.plot_box.children == (w0,) and w0.comm is not None and 'semacdr-plot' in w0._dom_classes
    ex.nn_w.value = 20
    w1 = ex.figw
    assert w1 is not w0 and ex.plot_box.children == (w1,) and w0.comm is None   # the old widget is closed
    assert np.allclose(w1.data[0].x, ex.fig.data[0].x) and w1.layout.title.text == ex.fig.layout.title.text
    ex.figw._handler_js2py_pointsCallback(click_event(ex.fig, 0, 0))            # events of the new widget are wired
    assert ex.selected.tolist() == [int(ex.fig.data[0].customdata[0])] and ex.figw is not w1


def test_lasso_selection_lists_items_and_neighbours_of_their_mean(explorer):
    ex, _ = explorer
    ex.figw._handler_js2py_pointsCallback(lasso_event(ex.fig, [(0, 1), (0, 2), (0, 7)]))
    rows = [int(ex.fig.data[0].customdata[i]) for i in (1, 2, 7)]
    assert sorted(ex.selected.tolist()) == sorted(rows)
    p = ex.panel_w.value
    assert 'Selected: 3 items' in p and "selection's mean" in p and all(f'item {r}<' in p for r in rows)
    nb, _ = cross_domain_neighbors(ex.views['separated'], ex.domain, rows, k=ex.n_cross)
    assert (ex.neighbors == nb).all()
    # an empty event (e.g. a click on empty space) keeps the selection
    ex.figw._handler_js2py_pointsCallback(lasso_event(ex.fig, []))
    assert len(ex.selected) == 3


def test_domain_filter_sample_size_and_colour(explorer):
    ex, red = explorer
    ex.domain_w.value = 1
    assert ex.fig.data[0].visible == 'legendonly' and ex.fig.data[1].visible is True
    ex.domain_w.value = -1
    assert ex.fig.data[0].visible is True
    ex.sample_w.value = 300
    assert red.calls[-1][0] == 300 and len(ex.fig.data[0].x) + len(ex.fig.data[1].x) == 300
    assert '(all)' in dict((v, k) for k, v in ex.sample_w.options)[300]
    ex.color_w.value = 'category'
    cols = ex.fig.data[0].marker.color
    assert isinstance(cols, (list, tuple)) and len(set(cols)) == 4 and 'Comedy' in ex.legend_w.value
    ex.color_w.value = 'domain'
    assert ex.fig.data[0].marker.color == '#1f77b4' and ex.legend_w.value == ''


def test_static_rendering(explorer):
    import matplotlib
    matplotlib.use('Agg')
    ex, _ = explorer
    fig = ex.static()
    assert len([a for a in fig.axes if a.collections]) == 2
    assert 'mixing' in fig.axes[0].get_title() and 'shuffled' in fig.axes[0].get_title()


def test_bad_inputs():
    items, _, views = make_items(20)
    with pytest.raises(ValueError, match='shape'):
        SemanticSpaceExplorer(items, {'v': views['mixed'][:10]}, reducer=PCAReducer())
    with pytest.raises(ValueError, match='empty'):
        SemanticSpaceExplorer(items, {}, reducer=PCAReducer())
    with pytest.raises(ValueError, match='text reference|shape'):
        SemanticSpace(items, views, reducer=PCAReducer(), text_reference=views['mixed'][:5])
    with pytest.raises(ValueError, match="lacks column 'title'"):
        SemanticSpace(items.drop(columns='title'), views, reducer=PCAReducer())


def test_works_on_datasets_dataset(movielens):
    random_view = {'random': np.random.default_rng(0).normal(size=(movielens.n_items, 8))}
    ex = SemanticSpaceExplorer(movielens.items, random_view, movielens.domains, reducer=PCAReducer(), sample_size=250)
    assert len(ex.rows) == 250
    ex.select(0)
    assert 'Toy Story (1995)' in ex.panel_w.value and 'Nearest in Drama' in ex.panel_w.value


# ---------------- AttentionExplorer ----------------

def fake_explain(items, **fusion):
    def explain(user):
        u = int(user)
        src, tgt = np.array([0, 1, 2]) + u, np.array([150, 151]) + u
        att = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
        top = np.array([160, 161, 162]) + u
        target = 161 + u if u % 2 == 0 else 200
        rank = 2 if u % 2 == 0 else 57
        return UserExplanation(str(user), src, tgt, att, top, np.array([3.0, 2.0, 1.0]), target=target,
                               target_rank=rank,
                               target_score=2.0 if u % 2 == 0 else 0.1,
                               seq_gates={'source': 0.1, 'target': 0.5, 'mixed': 0.2, 'cross': 0.2},
                               item_gates={i: {'id': 0.2, 'specific': 0.5, 'agnostic': 0.3} for i in [target, *top]},
                               **fusion)
    return explain


def test_attention_explorer_panels():
    items, _, _ = make_items()
    ax = AttentionExplorer(['0', '1', '2'], fake_explain(items), items, ('Books', 'Movies'))
    h = ax.heat.data[0]
    assert np.allclose(np.asarray(h.z), [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert h.x[0] == 's1 · item 0' and h.y[1] == 't2 · item 151'
    assert 'Books → Movies' in ax.heat.layout.title.text
    assert 'all 2 × 3 positions, rows sum to 1' in ax.heat.layout.title.text
    bars = ax.topk.data[0]
    assert list(bars.x) == [3.0, 2.0, 1.0] and bars.marker.color[1] == '#d62728' and bars.y[1].startswith('★')
    assert 'ranked 2' in ax.topk.layout.title.text
    seq = [t for t in ax.gates.data if t.orientation != 'h']
    assert list(seq[0].x) == ['source', 'target', 'mixed', 'cross']
    views = [t.name for t in ax.gates.data if t.orientation == 'h']
    assert views == ['id', 'specific', 'agnostic'] and ax.gates.layout.barmode == 'group'
    assert [a.text for a in ax.gates.layout.annotations] == ['sequence-fusion gate values', 'item-view gate values']
    # switching the user (typing in the searchable box) redraws everything
    ax.user_w.value = '1'
    assert ax.current.user == '1' and ax.heat.data[0].x[0] == 's1 · item 1'
    bars = ax.topk.data[0]
    assert len(bars.x) == 4 and bars.y[-1].startswith('★ 57.') and bars.marker.color[-1] == '#d62728'
    assert 'ranked 57' in ax.topk.layout.title.text and 'user <b>1</b>' in ax.info_w.value
    ax.user_w.value = 'nobody'     # not an option: ignored
    assert ax.current.user == '1'
    shown = ax.boxes['topk'].children[0]
    assert 'semacdr-topk' in shown._dom_classes and shown.layout.title.text == ax.topk.layout.title.text


def test_fusion_panels_name_their_values():
    items, _, _ = make_items()
    titles = items.title.to_numpy()
    res = fake_explain(items, seq_fusion='residual', item_fusion='residual')('0')
    assert [a.text for a in gates_figure(res, titles).layout.annotations] == [
        'sequence-fusion coefficients (base = 1, others scale × sigmoid)',
        'item-view coefficients (base = 1, others scale × sigmoid)']
    soft = fake_explain(items, seq_fusion='gate', item_fusion='mean')('0')
    assert [a.text for a in gates_figure(soft, titles).layout.annotations] == [
        'sequence-fusion softmax weights (sum to 1)', 'item-view fixed equal weights']


def long_history_user(ex, n=12):
    return next(u for u in ex.users if min(len(ex(u).source_items), len(ex(u).target_items)) > n)


def test_heatmap_shows_the_whole_matrix(movielens):
    "More than 12 positions per domain: every row and column is drawn and each row still sums to 1."
    import matplotlib
    matplotlib.use('Agg')
    ds = movielens
    vec = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    ex = cosine_similarity_explainer(ds.split(1).test, ds.item_domain, vec, 1, k=5)
    u = long_history_user(ex)
    e = ex(u)
    ax = AttentionExplorer([u], ex, ds.items, ds.domains)
    z = np.asarray(ax.heat.data[0].z)
    assert z.shape == (len(e.target_items), len(e.source_items)) and min(z.shape) > 12
    assert np.allclose(z.sum(1), 1, atol=1e-5) and len(set(ax.heat.data[0].y)) == z.shape[0]
    assert ax.heat.layout.height >= 14 * z.shape[0]
    title = ax.heat.layout.title.text
    assert title.startswith(f'cosine-similarity weights (no model) of user {u}:') and 'rows sum to 1' in title
    img = ax.static(u).axes[0].images[0].get_array()
    assert img.shape == z.shape and np.allclose(img.sum(1), 1, atol=1e-5)


def test_rows_before_the_first_source_item_are_said_to_be_zero():
    items, _, _ = make_items()
    A = np.full((14, 13), 1 / 13)
    A[:3] = 0
    e = UserExplanation('7', np.arange(13), np.arange(150, 164), A, np.array([160]), np.array([1.0]))
    fig = attention_figure(e, items.title.to_numpy(), items.domain.to_numpy(), ('A', 'B'))
    assert 'all 14 × 13 positions, rows sum to 1 (0 before the first source item)' in fig.layout.title.text
    assert np.allclose(np.asarray(fig.data[0].z), A)
    bad = UserExplanation('7', np.arange(13), np.arange(150, 164), A[:, :5], np.array([160]), np.array([1.0]))
    with pytest.raises(ValueError, match=r'UserExplanation.attention of user 7 has shape \(14, 5\)'):
        attention_figure(bad, items.title.to_numpy(), items.domain.to_numpy(), ('A', 'B'))


def test_cosine_similarity_explainer_and_deprecated_alias(movielens):
    import matplotlib
    matplotlib.use('Agg')
    ds = movielens
    vec = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    ex = cosine_similarity_explainer(ds.split(1).test, ds.item_domain, vec, 1, k=5)
    e = ex(ex.users[0])
    assert e.attention.shape == (len(e.target_items), len(e.source_items))
    assert np.allclose(e.attention.sum(1), 1, atol=1e-5)
    assert (ds.item_domain[e.top_items] == 1).all() and len(e.top_items) == 5
    assert e.attention_label == 'cosine-similarity weights (no model)' and 'no model' in e.note
    hist = np.asarray(ds.split(1).test[0]['history'])[-10:]
    scores = l2_normalize(vec)[ds.domain_items(1)] @ l2_normalize(vec)[hist].mean(0)
    assert e.target_rank == 1 + int((scores > scores[ds.local_index[e.target]]).sum())
    ax = AttentionExplorer(ex.users[:50], ex, ds.items, ds.domains)
    assert any('no fusion values' in a.text for a in ax.gates.layout.annotations)
    assert len(ax.static(ex.users[1]).axes) >= 3
    with pytest.warns(DeprecationWarning, match='cosine_similarity_explainer'):
        old = similarity_explainer(ds.split(1).test, ds.item_domain, vec, 1, k=5)
    assert np.array_equal(old(ex.users[0]).attention, e.attention)


@pytest.mark.skipif(not SLOW, reason='slow: real UMAP (numba import and JIT ~50 s); run with NBDEV_TEST_FLAGS=slow')
def test_real_umap_refit():
    items, sem, views = make_items(240)
    ex = SemanticSpaceExplorer(items, views, semantics=sem, reducer=UMAPReducer(), sample_size=None, view='separated')
    x0 = np.array(ex.fig.data[0].x)
    ex.nn_w.value = 5
    assert not np.allclose(x0, ex.fig.data[0].x) and len(ex.fit_log) == 2
    # UMAP keeps the two far-apart domains apart
    rows, Y = ex.embedding()
    ca, cb = Y[ex.domain[rows] == 0].mean(0), Y[ex.domain[rows] == 1].mean(0)
    assert np.linalg.norm(ca - cb) > 2 * Y[ex.domain[rows] == 0].std(0).mean()


# ---------------- from a model ----------------

def make_model(ds, preset='semacdr'):
    torch = pytest.importorskip('torch')
    model_mod = pytest.importorskip('semacdr.model')
    g = torch.Generator().manual_seed(0)
    feats = {v: torch.randn(ds.n_items, 12, generator=g) for v in ('specific', 'agnostic')}
    torch.manual_seed(0)
    cfg = model_mod.SemaCDRConfig.preset(preset, hidden=16, maxlen=30, heads=2, layers=1, target_domain=1)
    return model_mod.SemaCDR(cfg, feats, ds.item_domain, ds.local_index)


@pytest.fixture(scope='module')
def small_model(movielens):
    return make_model(movielens)


def test_model_item_views_and_space_from_model(small_model, movielens):
    from semacdr.widgets import model_item_views, untrained_twin
    import torch
    m, ds = small_model, movielens
    views = model_item_views(m, text_features=True)
    assert list(views) == ['fused', 'id', 'specific', 'agnostic', 'specific (text encoder)', 'agnostic (text encoder)']
    assert all(v.shape == (ds.n_items, 16) for k, v in views.items() if 'encoder' not in k)
    m.eval()
    with torch.no_grad():
        ref = m.fuse_items(torch.tensor([1, 2, 3]))[0].numpy()
    assert np.allclose(views['fused'][:3], ref, atol=1e-5)
    twin = untrained_twin(m, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(twin.state_dict().values(), m.state_dict().values()))  # same init
    fb = {'specific_fallback': np.random.default_rng(1).normal(size=(ds.n_items, 8))}
    ex = SemanticSpaceExplorer.from_model(m, ds, before=twin, reducer=FakeReducer(), sample_size=250, features=fb)
    assert ex.view == 'fused (trained)' and 'fused (untrained)' in ex.views and 'agnostic (text encoder)' in ex.views
    assert np.array_equal(ex.references[REF_TEXT], fb['specific_fallback'].astype(np.float32))
    ex.select(0)
    assert 'Nearest in Drama' in ex.panel_w.value
    bare = SemanticSpaceExplorer.from_model(m, ds, reducer=FakeReducer(), sample_size=250, text_reference=False)
    assert list(bare.references) == [REF_RANDOM]


def rows_with_a_source_before(ds, user, maxlen=30):
    hist = np.asarray(ds.split(1).test.to_pandas().set_index('user').loc[user, 'history'])[-maxlen:]
    return np.cumsum(ds.item_domain[hist] == 0)[ds.item_domain[hist] == 1] > 0


def test_attention_from_model_matches_model(small_model, movielens):
    import torch
    from semacdr.data import collate_eval
    from semacdr.widgets import model_explainer
    m, ds = small_model, movielens
    ex = model_explainer(m, ds, k=7)
    u = long_history_user(ex)
    e = ex(u)
    row = ds.split(1).test.to_pandas().set_index('user').loc[u]
    hist = np.asarray(row['history'])[-30:]
    assert list(e.source_items) == [i for i in hist if ds.item_domain[i] == 0]
    assert list(e.target_items) == [i for i in hist if ds.item_domain[i] == 1]
    assert e.attention.shape == (len(e.target_items), len(e.source_items))
    assert np.allclose(e.attention.sum(1), rows_with_a_source_before(ds, u), atol=1e-5)   # the whole matrix: 1 or 0
    batch = collate_eval([list(row['history'])], [int(row['target'])], ds.local_index, 30)
    m.eval()
    with torch.no_grad():
        s = m.score(batch['input_ids'])[0].numpy()
    assert np.allclose(np.sort(s)[::-1][:7], e.top_scores, atol=1e-5)
    assert (ds.item_domain[e.top_items] == 1).all() and e.target == int(row['target'])
    assert e.target_rank == 1 + int((s > s[ds.local_index[e.target]]).sum())
    # residual fusion: the base thread / view has coefficient 1, the additions scale x sigmoid (0 at init)
    assert (e.seq_fusion, e.item_fusion) == ('residual', 'residual') and list(e.seq_gates) == list(m.config.threads)
    assert e.seq_gates['mixed'] == 1 and all(v == 0 for k, v in e.seq_gates.items() if k != 'mixed')
    assert set(e.item_gates) >= {e.target, *e.top_items.tolist()}
    assert all(g['id'] == 1 for g in e.item_gates.values())
    ax = AttentionExplorer.from_model(m, ds, users=ex.users[:20] + [u], user=u)
    assert [t.name for t in ax.gates.data if t.orientation == 'h'] == list(m.config.views)
    assert 'heads' in ax.info_w.value and 'coefficients' in ax.gates.layout.annotations[0].text
    z = np.asarray(ax.heat.data[0].z)
    assert z.shape == e.attention.shape and min(z.shape) > 12 and np.allclose(z.sum(1), e.attention.sum(1), atol=1e-5)


def test_softmax_gate_model_values_sum_to_one(movielens):
    from semacdr.widgets import model_explainer
    m = make_model(movielens, 'softmax-gate')
    ex = model_explainer(m, movielens, k=5)
    e = ex(ex.users[0])
    assert (e.seq_fusion, e.item_fusion) == ('gate', 'gate')
    assert abs(sum(e.seq_gates.values()) - 1) < 1e-4 and abs(sum(e.item_gates[e.target].values()) - 1) < 1e-4
    assert 'softmax weights' in gates_figure(e, movielens.items['title']).layout.annotations[0].text
