import os

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')


@pytest.fixture(scope='session')
def food_kitchen_dir():
    from semacdr.core import shared_data_dir
    path = shared_data_dir('food-kitchen')
    if path is None:
        pytest.skip('real Food–Kitchen data not found: ../shared/data/food-kitchen is absent (set SEMACDR_SHARED_DATA)')
    return path


@pytest.fixture(scope='session')
def movielens():
    from semacdr.data import load_movielens
    return load_movielens()
