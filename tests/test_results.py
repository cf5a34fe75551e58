"""Every committed comparison table is what `semacdr.comparison.write_tables` makes of the records next to it."""
from pathlib import Path

import pytest

from semacdr.comparison import write_tables

RESULTS = Path(__file__).resolve().parent.parent/'nbs'/'results'
FOLDERS = sorted(p.parent for p in RESULTS.glob('*/records.json'))


@pytest.mark.parametrize('folder', FOLDERS, ids=[f.name for f in FOLDERS])
def test_tables_are_regenerated_from_the_records(folder):
    assert (folder/'tables.md').exists(), f'{folder}: records without tables.md'
    assert write_tables(folder) == (folder/'tables.md').read_text(), (
        f'{folder}/tables.md differs from write_tables(records): regenerate it with bench/compare.py (never by hand)')


def test_there_is_something_to_check():
    assert FOLDERS, 'no committed comparison records under nbs/results/'
