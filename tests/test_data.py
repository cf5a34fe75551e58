"Data loaders: leakage-free splits on every loader, and clear errors (file, line, field) on bad input."
import gzip
import json
import os
import pickle

import numpy as np
import pytest

import semacdr.data
from semacdr.core import shared_data_dir
from semacdr.data import (DataError, collate_train, describe, describe_cli, load_amazon, load_amazon_2023,
                          load_llmcdsr, load_movielens, load_named, read_plain_pickle, write_amazon_fixture)


def check_no_leakage(ds):
    "Every split of every target domain: valid before test, training input strictly before the validation target."
    for d in (0, 1):
        sp = ds.split(d)
        assert len(sp.test) and len(sp.valid) and len(sp.train)
        assert all(ds.item_domain[t] == d for t in list(sp.test['target']) + list(sp.valid['target']))
        if ds.meta.get('loader') == 'llmcdsr':
            # the release's valid/test users are their own lines: none of them is a training sequence
            train_users = set(sp.train['user'])
            assert not train_users & set(sp.test['user']) and not train_users & set(sp.valid['user'])
            train_seqs = {tuple(s) for s in sp.train['items']}
            assert not any(tuple(h + [t]) in train_seqs for h, t in zip(sp.test['history'], sp.test['target']))
            continue
        valid = {u: (h, t) for u, h, t in zip(sp.valid['user'], sp.valid['history'], sp.valid['target'])}
        test = {u: (h, t) for u, h, t in zip(sp.test['user'], sp.test['history'], sp.test['target'])}
        assert set(valid) == set(test) == set(sp.train['user'])
        for u, tr in zip(sp.train['user'], sp.train['items']):
            vh, vt = valid[u]
            th, tt = test[u]
            assert tr == vh, 'training input is exactly the validation history'
            assert th[:len(vh) + 1] == vh + [vt], 'the validation target comes before the test target'
            assert len(tr) < len(th), 'the test target position is never training input'


def test_movielens_default(movielens):
    ds = movielens
    assert ds.domains == ('Comedy', 'Drama') and ds.n_items == 1052 and len(ds.sequences) == 893
    check_no_leakage(ds)
    assert describe(ds).loc['items', 'all'] == 1052
    ties = ds.meta['tied_targets']   # order within a tie is the file's: how many held-out targets that concerns
    assert set(ties) == {'Comedy', 'Drama'}
    assert all(ties[n]['cases'] == len(ds.split(d).test) and 0 < ties[n]['test'] < 1 for d, n in enumerate(ds.domains))


def test_movielens_other_genres_and_1m():
    ds = load_movielens('ml-100k', domains=('Action', 'Romance'))
    assert ds.domains == ('Action', 'Romance')
    check_no_leakage(ds)
    ds1m = load_movielens('ml-1m')
    assert ds1m.n_items > 1500 and len(ds1m.sequences) > 5000
    check_no_leakage(ds1m)


def test_llmcdsr_food_kitchen(food_kitchen_dir):
    ds = load_llmcdsr(food_kitchen_dir)
    assert [len(ds.split(d).test) for d in (0, 1)] == [300, 637]
    assert [len(ds.split(d).valid) for d in (0, 1)] == [363, 597]
    # targets are the last id of each line, exactly as released
    last = [int(l.split('\t')[1].split(',')[-1]) for l in (food_kitchen_dir / 'test.txt').read_text().splitlines()]
    assert sorted(list(ds.split(0).test['target']) + list(ds.split(1).test['target'])) == sorted(last)
    check_no_leakage(ds)


@pytest.mark.parametrize('layout', ['2014', '2018'])
def test_amazon_raw(tmp_path, layout):
    revs, metas = write_amazon_fixture(tmp_path, layout)
    if layout == '2014':  # the 2014 release ships gzipped files
        gz = []
        for p in revs + metas:
            g = p.with_suffix(p.suffix + '.gz')
            g.write_bytes(gzip.compress(p.read_bytes()))
            gz.append(g)
        revs, metas = gz[:2], gz[2:]
    ds = load_amazon(revs, metas, domains=('Food', 'Kitchen'), user_core=3, item_core=3)
    assert ds.n_items == 12 and len(ds.sequences) == 12
    assert ds.items[0]['brand'] == 'Brand0' and ds.items[0]['title'] == 'Food tea'
    check_no_leakage(ds)


def test_amazon_2023_via_datasets(tmp_path):
    write_amazon_fixture(tmp_path, '2023')
    ds = load_amazon_2023(('Food', 'Kitchen'), source=tmp_path, user_core=3, item_core=3)
    check_no_leakage(ds)
    # k-core is applied: with item_core above the per-item count nothing survives
    with pytest.raises(ValueError, match='no user'):
        load_amazon_2023(('Food', 'Kitchen'), source=tmp_path, user_core=3, item_core=50)


# ---- bad input -------------------------------------------------------------------------------------------

def _llmcdsr_copy(src, dst, edit=None):
    "Copy a tiny LLMCDSR-format data set into dst, letting `edit(name, lines)` corrupt one file."
    items = [{'item_id': i, 'domain': 'food' if i < 4 else 'kitchen', 'asin': f'A{i}', 'title': f'item {i}'}
             for i in range(8)]
    files = {'items.jsonl': [json.dumps(o) for o in items],
             'train_overlap.txt': ['1\t0,4,1,5', '2\t2,6,3,7'], 'train_A.txt': ['1\t0,1,2'],
             'train_B.txt': ['1\t4,5,6'], 'valid.txt': ['1\t0,4,5'], 'test.txt': ['1\t1,5,2']}
    for name, lines in files.items():
        lines = edit(name, list(lines)) if edit else lines
        data = lines if isinstance(lines, bytes) else ('\n'.join(lines) + '\n').encode()
        (dst / name).write_bytes(data)
    return dst


def test_llmcdsr_tiny_ok(tmp_path):
    ds = load_llmcdsr(_llmcdsr_copy(None, tmp_path))
    assert list(ds.split(0).test['target']) == [2] and list(ds.split(1).valid['target']) == [5]


@pytest.mark.parametrize('fname,edit,line,field,msg', [
    ('train_B.txt', lambda l: l + ['7\t4;5'], 2, 'items', 'comma-separated integer'),
    ('train_B.txt', lambda l: l + ['no tab here'], 2, None, "expected 'user<TAB>ids'"),
    ('valid.txt', lambda l: ['1\t0,4,99'], 1, 'items', 'unknown item id 99'),
    ('items.jsonl', lambda l: l[:2] + [l[2].replace('item 2', ' ')] + l[3:], 3, 'title', 'empty title'),
    ('items.jsonl', lambda l: l + [l[0]], 9, 'item_id', 'duplicate item id 0 (first on line 1)'),
    ('items.jsonl', lambda l: l[:1] + ['{"item_id": 1, "domain": "food"'] + l[2:], 2, None, 'invalid JSON'),
    ('items.jsonl', lambda l: l[:1] + [l[1].replace('"food"', '"toys"')] + l[2:], 2, 'domain', "unknown domain 'toys'"),
    ('items.jsonl', lambda l: l[:3] + [l[3].replace('"title": "item 3"', '"title": 3')] + l[4:], 4, 'title',
     'missing or not a str'),
])
def test_llmcdsr_bad_input_names_file_line_field(tmp_path, fname, edit, line, field, msg):
    _llmcdsr_copy(None, tmp_path, lambda name, lines: edit(lines) if name == fname else lines)
    with pytest.raises(DataError) as e:
        load_llmcdsr(tmp_path)
    err = e.value
    assert err.file.endswith(fname) and err.line == line and err.field == field and msg in str(err)
    assert fname in str(err) and (f'line {line}' in str(err))


def test_non_utf8_and_missing_file(tmp_path):
    _llmcdsr_copy(None, tmp_path,
                  lambda name, lines: (('\n'.join(lines[:2]) + '\n').encode() + b'{"item_id": 2, "title": "caf\xe9"}\n'
                                                        if name == 'items.jsonl' else lines))
    with pytest.raises(DataError, match=r'items.jsonl, line 3: not valid UTF-8'):
        load_llmcdsr(tmp_path)
    (tmp_path / 'test.txt').unlink()
    _llmcdsr_copy(None, tmp_path)
    (tmp_path / 'test.txt').unlink()
    with pytest.raises(DataError, match=r'test.txt: file not found'):
        load_llmcdsr(tmp_path)


def test_skip_mode_counts_bad_lines(tmp_path):
    _llmcdsr_copy(None, tmp_path,
                  lambda name, lines: lines + ['3\t1,x', '4\t1,500'] if name == 'train_A.txt' else lines)
    ds = load_llmcdsr(tmp_path, on_error='skip')
    assert sum(ds.meta['skipped'].values()) == 2
    assert len(ds.sequences) == 6   # 2 overlap + 1 A + 1 B + 1 valid + 1 test: only the two bad lines are gone


def test_amazon_bad_lines(tmp_path):
    revs, metas = write_amazon_fixture(tmp_path, '2018')
    with open(revs[0], 'a') as f:
        f.write('{"reviewerID": "U1", "asin": "F000"}\n')
    n = len(revs[0].read_text().splitlines())
    with pytest.raises(DataError) as e:
        load_amazon(revs, metas, user_core=3, item_core=3)
    assert e.value.line == n and e.value.field == 'unixReviewTime'
    ds = load_amazon(revs, metas, user_core=3, item_core=3, on_error='skip')
    assert ds.meta['skipped'] == {'missing or non-numeric time': 1}


def test_collate_train_labels():
    dom = np.array([0, 0, 1, 1])
    li = np.array([0, 1, 0, 1])
    b = collate_train([[0, 2, 1, 3]], dom, li, target=1, maxlen=5)
    assert b['input_ids'].tolist() == [[0, 0, 1, 3, 2]]
    assert b['labels'].tolist() == [[-100, -100, 0, -100, 1]]


# ---- MovieLens: ties in time keep the file's order ---------------------------------------------------------

def _movielens_files(folder):
    "A 7-movie ml-100k-format folder; user 1 rated two pairs of movies in the same second, in file order."
    (folder / 'ml-100k.item').write_text(
        'item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n'
        '1\tA1\t1990\tComedy\n2\tA2\t1991\tComedy\n3\tA3\t1992\tComedy\n'
        '4\tD1\t1993\tDrama\n5\tD2\t1994\tDrama\n6\tD3\t1995\tDrama\n7\tBoth\t1996\tComedy Drama\n')
    ratings = [(1, 3, 100), (1, 1, 100), (1, 4, 200), (1, 6, 300), (1, 5, 300), (1, 2, 400), (1, 7, 50)]
    (folder / 'ml-100k.inter').write_text('user_id:token\titem_id:token\trating:float\ttimestamp:float\n' +
                                          ''.join(f'{u}\t{i}\t4\t{t}\n' for u, i, t in ratings))
    return folder


def test_movielens_ties_keep_file_order(tmp_path):
    ds = load_movielens(path=_movielens_files(tmp_path))
    assert list(ds.items['title']) == ['A1 (1990)', 'A2 (1991)', 'A3 (1992)', 'D1 (1993)', 'D2 (1994)', 'D3 (1995)']
    # file order within each tie (movie 3 before 1, 6 before 5), not item-id order ([0, 2, 3, 4, 5, 1])
    assert ds.sequences[0]['items'] == [2, 0, 3, 5, 4, 1]
    # Comedy: valid target 0 (t=100, tied), test 1 (t=400); Drama: valid 5 (t=300 after 200), test 4 (tied)
    assert ds.meta['tied_targets'] == {'Comedy': {'cases': 1, 'valid': 1.0, 'test': 0.0},
                                       'Drama': {'cases': 1, 'valid': 0.0, 'test': 1.0}}


# ---- the LLMCDSR release as published (pickles) ------------------------------------------------------------

_TINY_TITLES = {'A': {f'A{i}': f'item {i}' for i in range(4)}, 'B': {f'A{i}': f'item {i}' for i in range(4, 8)}}


def _release_copy(dst, edit=None):
    """The tiny data set of `_llmcdsr_copy` in the published layout (our own pickles, plain dicts), letting
    `edit(name, content)` replace one file's content (bytes or text)."""
    dst.mkdir(parents=True, exist_ok=True)
    _llmcdsr_copy(None, dst)
    (dst / 'items.jsonl').unlink()
    files = {'num.txt': '4\n4\n', 'instance_num.txt': '1\n1\n2\n'}
    for side, titles in _TINY_TITLES.items():
        files[f'item_set_{side}.pkl'] = pickle.dumps({asin: k for k, asin in enumerate(titles)})
        files[f'text_{side}.pkl'] = pickle.dumps(titles)
    for name, content in files.items():
        content = edit(name, content) if edit else content
        (dst / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return dst


def _same_dataset(a, b):
    assert (a.name, a.domains, a.n_items) == (b.name, b.domains, b.n_items)
    assert a.items.to_dict() == b.items.to_dict() and a.sequences.to_dict() == b.sequences.to_dict()
    for d in (0, 1):
        for part in ('train', 'valid', 'test'):
            assert getattr(a.split(d), part).to_dict() == getattr(b.split(d), part).to_dict(), (d, part)


def test_release_layout_equals_items_jsonl_tiny(tmp_path):
    (tmp_path / 'a' / 'food-kitchen').mkdir(parents=True)
    jsonl = load_llmcdsr(_llmcdsr_copy(None, tmp_path / 'a' / 'food-kitchen'))
    release = load_llmcdsr(_release_copy(tmp_path / 'b' / 'food-kitchen'))
    assert (jsonl.meta['layout'], release.meta['layout']) == ('items.jsonl', 'release')
    _same_dataset(release, jsonl)


def test_release_equals_shared_food_kitchen(food_kitchen_dir):
    "LLMCDSR's published folder gives the same data set as the converted items.jsonl (name, items, sequences, targets)."
    release_dir = shared_data_dir('llmcdsr-release/food-kitchen')
    if release_dir is None:
        pytest.skip('../shared/data/llmcdsr-release/food-kitchen is absent (set SEMACDR_SHARED_DATA)')
    release, jsonl = load_llmcdsr(release_dir), load_llmcdsr(food_kitchen_dir)
    assert release.name == 'llmcdsr:food-kitchen' and release.meta['layout'] == 'release'
    _same_dataset(release, jsonl)
    # and straight against items.jsonl: id, domain, ASIN and title of every item
    lines = [json.loads(line) for line in (food_kitchen_dir / 'items.jsonl').read_text().splitlines()]
    index = {side: read_plain_pickle(release_dir / f'item_set_{side}.pkl') for side in 'AB'}
    n_a = len(index['A'])
    asin_of = {**{i: a for a, i in index['A'].items()}, **{n_a + i: a for a, i in index['B'].items()}}
    assert len(lines) == release.n_items == 36298
    titles = release.items['title']
    for o in lines:
        i = o['item_id']
        assert titles[i] == o['title'].strip() and release.domains[release.item_domain[i]] == o['domain'], i
        assert asin_of[i] == o['asin'], i


class _Exploit:
    "Unpickling this would run a shell command that creates `marker`."
    def __init__(self, marker):
        self.marker = marker
    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize('fname', ['text_A.pkl', 'item_set_B.pkl'])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, fname, protocol):
    marker = tmp_path / 'it-ran'
    evil = pickle.dumps({'A0': _Exploit(marker)}, protocol=protocol)
    folder = _release_copy(tmp_path / 'food-kitchen', lambda name, c: evil if name == fname else c)
    with pytest.raises(DataError) as e:
        load_llmcdsr(folder)
    assert e.value.file.endswith(fname) and 'refused to unpickle' in str(e.value) and 'system' in str(e.value)
    assert not marker.exists(), 'the malicious pickle ran'


def test_restricted_unpickler_alone_refuses_globals(tmp_path):
    "The second guard (find_class refuses every global) also stops the exploit, without the opcode scan."
    marker = tmp_path / 'it-ran'
    import io
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        semacdr.data._PlainUnpickler(io.BytesIO(pickle.dumps(_Exploit(marker)))).load()
    assert not marker.exists()


@pytest.mark.parametrize('content,msg', [
    (pickle.dumps({'A0': 'item 0'})[:-3], 'not a readable pickle'),           # cut off
    (b'\x80\x04garbage that is not a pickle', 'not a readable pickle'),
    (b'', 'not a readable pickle'),
    (pickle.dumps({'A0': 'item 0'}) + b'trailing', 'bytes after'),
    (pickle.dumps({'A0': b'raw bytes'}), 'it holds a bytes'),
])
def test_corrupt_pickle_names_the_file(tmp_path, content, msg):
    folder = _release_copy(tmp_path / 'food-kitchen', lambda name, c: content if name == 'text_A.pkl' else c)
    with pytest.raises(DataError, match=msg) as e:
        load_llmcdsr(folder)
    assert e.value.file.endswith('text_A.pkl') and 'text_A.pkl' in str(e.value)


@pytest.mark.parametrize('fname,content,field,msg', [
    ('item_set_A.pkl', pickle.dumps({'A0': 'zero'}), 'A0', 'expected int values, got a str'),
    ('item_set_A.pkl', pickle.dumps(['A0', 'A1']), None, 'expected a dict'),
    ('item_set_A.pkl', pickle.dumps({'A0': 0, 'A1': 1, 'A2': 2, 'A3': 7}), None, 'indices 0..3'),
    ('text_B.pkl', pickle.dumps({'A4': 'item 4', 'A5': 'item 5', 'A6': 'item 6'}), 'A7', 'no title'),
    ('text_B.pkl', pickle.dumps({'A4': 'item 4', 'A5': ' ', 'A6': 'item 6', 'A7': 'item 7'}), 'A5', 'empty title'),
    ('num.txt', '4\nfour\n', 'items per domain', 'expected an integer'),
    ('num.txt', '4\n', 'items per domain', 'expected 2 integers'),
    ('instance_num.txt', '1\n1\n3\n', None, "2 user lines, but instance_num.txt says 3"),
])
def test_release_bad_files_are_named(tmp_path, fname, content, field, msg):
    folder = _release_copy(tmp_path / 'food-kitchen', lambda name, c: content if name == fname else c)
    with pytest.raises(DataError, match=msg) as e:
        load_llmcdsr(folder)
    expected_file = 'train_overlap.txt' if fname == 'instance_num.txt' else fname
    assert e.value.file.endswith(expected_file) and e.value.field == field


def test_movie_book_and_the_environment_variable(tmp_path, monkeypatch, capsys):
    "Movie–Book has the same layout: its folder name gives the domain names; SEMACDR_LLMCDSR_DIR finds it by name."
    _release_copy(tmp_path / 'data' / 'movie-book')
    ds = load_llmcdsr(tmp_path / 'data' / 'movie-book')
    assert ds.domains == ('movie', 'book') and ds.name == 'llmcdsr:movie-book'
    assert load_llmcdsr(tmp_path / 'data' / 'movie-book', domains=('films', 'novels')).domains == ('films', 'novels')
    _release_copy(tmp_path / 'other')
    with pytest.raises(ValueError, match='pass domains'):
        load_llmcdsr(tmp_path / 'other')
    monkeypatch.setenv('SEMACDR_LLMCDSR_DIR', str(tmp_path / 'data'))
    _same_dataset(load_named('movie-book'), ds)
    assert describe_cli(['movie-book']) == 0 and "llmcdsr:movie-book" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='SEMACDR_LLMCDSR_DIR'):
        load_named('food-kitchen')


# ---- empty and corrupt files ---------------------------------------------------------------------------------

def test_empty_items_file_is_reported_as_such(tmp_path):
    _llmcdsr_copy(None, tmp_path, lambda name, lines: b'' if name == 'items.jsonl' else lines)
    with pytest.raises(DataError, match='empty items file') as e:
        load_llmcdsr(tmp_path)
    assert e.value.file.endswith('items.jsonl')
    bad_lines = ['not json', '{"item_id": 0}']
    _llmcdsr_copy(None, tmp_path, lambda name, lines: bad_lines if name == 'items.jsonl' else lines)
    with pytest.raises(DataError, match=r'items.jsonl: empty items file: no items \(2 bad lines skipped\)'):
        load_llmcdsr(tmp_path, on_error='skip')


@pytest.mark.parametrize('damage', ['truncated', 'not gzip'])
def test_corrupt_gzip_names_the_file(tmp_path, damage):
    revs, metas = write_amazon_fixture(tmp_path, '2014')
    gz = []
    for p in revs + metas:
        g = p.with_suffix(p.suffix + '.gz')
        g.write_bytes(gzip.compress(p.read_bytes()))
        gz.append(g)
    bad = gz[1]   # the second domain's reviews
    bad.write_bytes(bad.read_bytes()[:-40] if damage == 'truncated' else revs[1].read_bytes())
    with pytest.raises(DataError, match='corrupt gzip file') as e:
        load_amazon(gz[:2], gz[2:], domains=('Food', 'Kitchen'), user_core=3, item_core=3)
    assert e.value.file == str(bad) and bad.name in str(e.value)
