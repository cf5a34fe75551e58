"""Worker for the crash/resume test of tests/test_semantics.py: generates semantics for N synthetic items through the
OpenAI-compatible backend into a store; the test SIGKILLs it mid-run and runs it again."""
from __future__ import annotations
import argparse, sys


def synthetic_items(n: int) -> list[dict]:
    kinds = ['tea kettle', 'pasta sauce', 'chef knife', 'green tea', 'cake pan', 'olive oil']
    return [dict(item_id=i, domain='food' if i % 2 else 'kitchen', title=f'{kinds[i % len(kinds)].title()} model {i}',
                 category='', brand=f'brand{i % 3}', description='') for i in range(n)]


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('store')
    ap.add_argument('base_url')
    ap.add_argument('--n', type=int, default=60)
    ap.add_argument('--batch-size', type=int, default=4)
    ap.add_argument('--shard', default='0/1')
    a = ap.parse_args()
    from semacdr.semantics import SemanticsConfig, generate_semantics
    cfg = SemanticsConfig(backend='openai', model='fake-model', base_url=a.base_url, batch_size=a.batch_size,
                          concurrency=2, timeout=10, shard=a.shard, api_key_env='SEMACDR_TEST_KEY')
    generate_semantics(synthetic_items(a.n), cfg, store_dir=a.store, progress=False)
    sys.exit(0)
