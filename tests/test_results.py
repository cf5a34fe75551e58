"""Every committed results table is written by a script from the records committed next to it, and is regenerated
from them here: a comparison folder's tables.md by `semacdr.comparison.write_tables` from its records.json, and each
bench table nbs/results/<stem>.md by its bench script's `render` from nbs/results/<stem>.json."""
import importlib.util
import json
from pathlib import Path

import pytest

from semacdr.comparison import _key, canonical_order, write_tables

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'nbs'/'results'
FOLDERS = sorted(p.parent for p in RESULTS.glob('*/records.json'))
BENCH_TABLES = {'evaluation_speed': 'bench_evaluation.py',   # table stem -> the bench script that writes it
                'food_kitchen_cost': 'bench_epoch_cost.py',
                'make_run': 'bench_make_run.py',
                'semacdr_profile': 'profile_semacdr.py',
                'semantics_quality_food-kitchen': 'semantics_quality.py',
                'semantics_quality_movielens': 'semantics_quality.py',
                'objective_kitchen': 'objective_kitchen.py'}


@pytest.mark.parametrize('folder', FOLDERS, ids=[f.name for f in FOLDERS])
def test_tables_are_regenerated_from_the_records(folder):
    assert (folder/'tables.md').exists(), f'{folder}: records without tables.md'
    assert write_tables(folder) == (folder/'tables.md').read_text(), (
        f'{folder}/tables.md differs from write_tables(records): regenerate it with bench/compare.py (never by hand)')


@pytest.mark.parametrize('folder', FOLDERS, ids=[f.name for f in FOLDERS])
def test_records_are_one_per_run_in_the_configs_order(folder):
    "As `compare` saves them, however many processes shared the work: one record per run, models in the config's order."
    records = json.loads((folder/'records.json').read_text())
    keys = [_key(r) for r in records]
    assert len(set(keys)) == len(keys), f'{folder}/records.json holds a run twice'
    models = json.loads((folder/'search.json').read_text())['config']['models']
    targets = list(dict.fromkeys(r['target'] for r in records))     # the config names targets by index, not name
    assert records == canonical_order(records, targets, models), f'{folder}/records.json is not in the config order'


def test_there_is_something_to_check():
    assert FOLDERS, 'no committed comparison records under nbs/results/'


def bench_module(script: str):
    "A bench script as a module, loaded by path (bench/ is not a package); importing it runs no measurement."
    spec = importlib.util.spec_from_file_location(f'bench_{Path(script).stem}', ROOT/'bench'/script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize('stem', sorted(BENCH_TABLES))
def test_bench_table_is_rendered_from_its_record(stem):
    script = BENCH_TABLES[stem]
    table, record = RESULTS/f'{stem}.md', RESULTS/f'{stem}.json'
    assert table.exists() and record.exists(), f'nbs/results/{stem}: a table needs its record, and the other way round'
    rendered = bench_module(script).render(json.loads(record.read_text(encoding='utf-8')))
    assert rendered == table.read_text(encoding='utf-8'), (
        f'nbs/results/{stem}.md differs from render({stem}.json): re-run bench/{script} (never edit the table by hand)')


def test_every_results_table_has_its_records():
    for table in sorted(RESULTS.rglob('*.md')):
        name = table.relative_to(RESULTS)
        if table.name == 'tables.md' and (table.parent/'records.json').exists():
            continue                                    # a comparison folder: checked above
        assert table.parent == RESULTS and table.with_suffix('.json').exists(), (
            f'nbs/results/{name} has no records next to it: a results table is written by a script from a committed '
            '.json of the same stem (or is the tables.md of a comparison folder with its records.json)')
        assert table.stem in BENCH_TABLES, (
            f'nbs/results/{name}: add it to BENCH_TABLES in tests/test_results.py, with the script that renders it')


PAGES = {'movielens_comparison.ipynb': 'movielens', 'food_kitchen_comparison.ipynb': 'food_kitchen'}


@pytest.mark.parametrize('page', sorted(PAGES))
def test_results_notebook_outputs_match_the_committed_records(page):
    "A comparison's results page was executed on the records committed with it (re-execute it after each commit)."
    nb = json.loads((RESULTS/page).read_text(encoding='utf-8'))
    printed = ''.join(''.join(o.get('text', '')) for c in nb['cells'] if c['cell_type'] == 'code'
                      for o in c.get('outputs', []))
    folder = RESULTS/PAGES[page]
    records = json.loads((folder/'records.json').read_text()) if (folder/'records.json').exists() else []
    for stage in ('trial', 'final'):
        n = sum(r['stage'] == stage for r in records)
        assert f'{stage} runs recorded: {n} of' in printed, (
            f'nbs/results/{page} shows another number of {stage} runs than {PAGES[page]}/records.json ({n}): '
            'execute it again (jupyter nbconvert --execute --inplace, then nbdev_clean)')
