"Data loaders: leakage-free splits on every loader, and clear errors (file, line, field) on bad input."
import gzip
import json

import numpy as np
import pytest

from semacdr.data import (DataError, collate_train, describe, load_amazon, load_amazon_2023, load_llmcdsr,
                          load_movielens, write_amazon_fixture)


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
            vh, vt = valid[u]; th, tt = test[u]
            assert tr == vh, 'training input is exactly the validation history'
            assert th[:len(vh) + 1] == vh + [vt], 'the validation target comes before the test target'
            assert len(tr) < len(th), 'the test target position is never training input'


def test_movielens_default(movielens):
    ds = movielens
    assert ds.domains == ('Comedy', 'Drama') and ds.n_items == 1052 and len(ds.sequences) == 893
    check_no_leakage(ds)
    # chronological order: timestamps along each sequence never decrease (checked against the raw file)
    assert describe(ds).loc['items', 'all'] == 1052


def test_movielens_other_genres_and_1m():
    ds = load_movielens('ml-100k', domains=('Action', 'Romance'))
    assert ds.domains == ('Action', 'Romance'); check_no_leakage(ds)
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
            g = p.with_suffix(p.suffix + '.gz'); g.write_bytes(gzip.compress(p.read_bytes())); gz.append(g)
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
    items = [{'item_id': i, 'domain': 'food' if i < 4 else 'kitchen', 'asin': f'A{i}', 'title': f'item {i}'} for i in range(8)]
    files = {'items.jsonl': [json.dumps(o) for o in items],
             'train_overlap.txt': ['1\t0,4,1,5', '2\t2,6,3,7'], 'train_A.txt': ['1\t0,1,2'], 'train_B.txt': ['1\t4,5,6'],
             'valid.txt': ['1\t0,4,5'], 'test.txt': ['1\t1,5,2']}
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
    ('items.jsonl', lambda l: l[:3] + [l[3].replace('"title": "item 3"', '"title": 3')] + l[4:], 4, 'title', 'missing or not a str'),
])
def test_llmcdsr_bad_input_names_file_line_field(tmp_path, fname, edit, line, field, msg):
    _llmcdsr_copy(None, tmp_path, lambda name, lines: edit(lines) if name == fname else lines)
    with pytest.raises(DataError) as e:
        load_llmcdsr(tmp_path)
    err = e.value
    assert err.file.endswith(fname) and err.line == line and err.field == field and msg in str(err)
    assert fname in str(err) and (f'line {line}' in str(err))


def test_non_utf8_and_missing_file(tmp_path):
    _llmcdsr_copy(None, tmp_path, lambda name, lines: (('\n'.join(lines[:2]) + '\n').encode() + b'{"item_id": 2, "title": "caf\xe9"}\n'
                                                        if name == 'items.jsonl' else lines))
    with pytest.raises(DataError, match=r'items.jsonl, line 3: not valid UTF-8'):
        load_llmcdsr(tmp_path)
    (tmp_path / 'test.txt').unlink()
    _llmcdsr_copy(None, tmp_path)
    (tmp_path / 'test.txt').unlink()
    with pytest.raises(DataError, match=r'test.txt: file not found'):
        load_llmcdsr(tmp_path)


def test_skip_mode_counts_bad_lines(tmp_path):
    _llmcdsr_copy(None, tmp_path, lambda name, lines: lines + ['3\t1,x', '4\t1,500'] if name == 'train_A.txt' else lines)
    ds = load_llmcdsr(tmp_path, on_error='skip')
    assert sum(ds.meta['skipped'].values()) == 2
    assert len(ds.sequences) == 6   # 2 overlap + 1 A + 1 B + 1 valid + 1 test: only the two bad lines are gone


def test_amazon_bad_lines(tmp_path):
    revs, metas = write_amazon_fixture(tmp_path, '2018')
    with open(revs[0], 'a') as f: f.write('{"reviewerID": "U1", "asin": "F000"}\n')
    n = len(revs[0].read_text().splitlines())
    with pytest.raises(DataError) as e:
        load_amazon(revs, metas, user_core=3, item_core=3)
    assert e.value.line == n and e.value.field == 'unixReviewTime'
    ds = load_amazon(revs, metas, user_core=3, item_core=3, on_error='skip')
    assert ds.meta['skipped'] == {'missing or non-numeric time': 1}


def test_collate_train_labels():
    dom = np.array([0, 0, 1, 1]); li = np.array([0, 1, 0, 1])
    b = collate_train([[0, 2, 1, 3]], dom, li, target=1, maxlen=5)
    assert b['input_ids'].tolist() == [[0, 0, 1, 3, 2]]
    assert b['labels'].tolist() == [[-100, -100, 0, -100, 1]]
