"""Quality of a released semantics store: domain words left in the agnostic texts, answer validity, and cross-domain
neighbours of co-interacted items in each view (`semacdr.quality.semantics_quality`), on the items the store covers.

    OMP_NUM_THREADS=1 .venv/bin/python bench/semantics_quality.py --data movielens
    OMP_NUM_THREADS=1 .venv/bin/python bench/semantics_quality.py --data food-kitchen

It writes nbs/results/semantics_quality_<data>.json (the whole report, with the run's time, threads and load) and
`render(record)` of it, the table, to semantics_quality_<data>.md. A release folder without a manifest (a store still
being generated) is read as it is on disk; otherwise the stores are those `load_semantics` reads (the verified
release, then the writable store).
The MovieLens table is also the committed output of nbs/01a_semantics_quality.ipynb; after a run, re-execute it:

    .venv/bin/jupyter nbconvert --to notebook --execute --inplace nbs/01a_semantics_quality.ipynb
    .venv/bin/nbdev_clean --fname nbs/01a_semantics_quality.ipynb
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent/'nbs'/'results'


def render(record: dict) -> str:
    "The Markdown table of a record `main` writes (nbs/results/semantics_quality_<data>.json), from the record alone."
    from semacdr.quality import quality_markdown
    def ints(d):                                        # JSON keeps the per-domain keys 0 and 1 as strings
        return {int(k): v for k, v in d.items()}
    return quality_markdown({**record, 'agnostic_domain_words': ints(record['agnostic_domain_words']),
                             'neighbours': {v: ints(r) for v, r in record['neighbours'].items()}})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True, choices=['movielens', 'food-kitchen'])
    ap.add_argument('--store', help='read this store folder only (default: see above)')
    ap.add_argument('--max-items', type=int, help='measure only the covered items most frequent in training')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args(argv)
    import numpy as np
    import torch
    from semacdr.data import load_named
    from semacdr.quality import semantics_quality
    from semacdr.semantics import SemanticsConfig, release_path
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    ds = load_named(a.data)
    cfg = SemanticsConfig()
    store = a.store
    rel = release_path(ds.name, cfg)
    if store is None and rel is not None and rel.exists() and not (rel/'MANIFEST.json').exists():
        store = rel
    report = semantics_quality(ds, cfg, store_dir=store, max_items=a.max_items)
    seconds = time.perf_counter() - t0
    run = dict(seconds=round(seconds, 1), torch_threads=torch.get_num_threads(),
               omp_num_threads=os.environ.get('OMP_NUM_THREADS'), load_average=[round(x, 2) for x in os.getloadavg()],
               python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
               finished=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
    raw = json.dumps({**report, 'run': run}, indent=1) + '\n'
    text = render(json.loads(raw))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS/f'semantics_quality_{a.data}.json').write_text(raw)
    (RESULTS/f'semantics_quality_{a.data}.md').write_text(text)
    print(text)
    print(f"{report['measured']} of {report['covered']} covered items measured in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
