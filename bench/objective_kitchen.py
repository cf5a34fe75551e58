"""Does the corrected sampled softmax train SASRec as well as the full softmax, on a catalogue where it matters?

SASRec-target on Food-Kitchen's kitchen target (27,637 items), trained three ways with everything else equal (the
Food-Kitchen comparison's config: hidden 64, maxlen 50, dropout 0.5, lr 1e-3, batch 128, patience 10 under a cap of
100): the full softmax over every kitchen item, the sampled softmax over the batch's true items + 1,024 uniform
negatives with the log-Q correction, and the same without it. Three seeds each; full ranking and LLMCDSR's 999
negatives; paired tests of each sampled variant against the full softmax over the same test users (seeds averaged).

    OMP_NUM_THREADS=1 python bench/objective_kitchen.py [--seeds 0 1 2] [--variants full corrected uncorrected]

Resumable: runs are ordinary run folders under runs/objective-kitchen, and the records (with every test case's rank)
are rewritten to nbs/results/objective_kitchen.json after each run, then the table objective_kitchen.md by `render`.
A record whose fingerprint matches is reused without its run folder (commit the json as it grows).
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'nbs'/'results'
CONFIG = ROOT/'configs'/'compare_food_kitchen.yaml'
MODEL, TARGET = 'sasrec-target', 1          # 1: food→kitchen
VARIANTS = {'full': {'sampled_negatives': 0},
            'corrected': {'sampled_negatives': 1024, 'sampling_correction': True},
            'uncorrected': {'sampled_negatives': 1024, 'sampling_correction': False}}
LABELS = {'full': 'full softmax', 'corrected': 'sampled 1,024, log-Q corrected',
          'uncorrected': 'sampled 1,024, uncorrected'}


def run(seeds, variants, out: Path, path: Path, sets=(), log=print) -> dict:
    "Train (or reuse) every variant and seed; rewrite the records json and the table after each run."
    from dataclasses import replace
    from semacdr.core import atomic_write_text, to_dict
    from semacdr.experiments import load_run_config, run_one
    cfg = load_run_config(CONFIG, [f'models=["{MODEL}"]', f'targets=[{TARGET}]', *sets])
    ds = cfg.data.load()
    state = json.loads(path.read_text()) if path.exists() else {}
    records, cases = state.get('records', []), state.get('cases', {})
    for seed in seeds:              # seed by seed, so a partial run already pairs every objective
        for v in variants:
            c = replace(cfg, hparams={MODEL: VARIANTS[v]})
            key = f'{v}|{seed}'
            old = next((r for r in records if r['variant'] == v and r['seed'] == seed), None)
            old = old if key in cases else None
            rec = run_one(c, ds, MODEL, TARGET, seed, None, out/v, cases=True, reuse=old)
            if rec is not old:
                cases[key] = json.loads((Path(rec['run_dir'])/'test_cases.json').read_text())
                rec = {**rec, 'variant': v}
            records = [r for r in records if (r['variant'], r['seed']) != (v, seed)] + [rec]
            state = {'config': to_dict(cfg), 'model': MODEL, 'target': ds.domains[TARGET], 'variants': VARIANTS,
                     'records': records, 'cases': cases}
            atomic_write_text(path, json.dumps(state, indent=1, default=float))
            atomic_write_text(path.with_suffix('.md'), render(state))
            log(f"{v} seed {seed}: test NDCG@10 {rec['full/NDCG@10']:.4f}, best epoch {rec['best_epoch']}, "
                f"{rec['sec_per_epoch']:.0f} s/epoch")
    return state


def render(state: dict) -> str:
    "The Markdown table and paired tests, from the records alone."
    import pandas as pd
    from semacdr.comparison import _verdict, case_metric
    from semacdr.evaluation import paired_test
    recs = pd.DataFrame(state['records'])
    cols = {'valid/NDCG@10': 'valid NDCG@10', 'full/NDCG@10': 'full NDCG@10', 'full/HR@10': 'full HR@10',
            'sampled-999/NDCG@10': '999-neg NDCG@10', 'sampled-999/HR@10': '999-neg HR@10'}
    rows = []
    for v in (v for v in VARIANTS if v in set(recs.variant)):
        g = recs[recs.variant == v]
        row = {'objective': LABELS[v], 'seeds': len(g)}
        sd = lambda c: g[c].std(ddof=1) if len(g) > 1 else 0.0
        row.update({name: f"{g[c].mean():.4f} ± {sd(c):.4f}" for c, name in cols.items()})
        row.update({'best epoch': ' / '.join(str(int(e)) for e in g.best_epoch), 'at the cap': int(g.hit_cap.sum()),
                    's/epoch': round(float(g.sec_per_epoch.median()), 1)})
        rows.append(row)
    out = [f"**{state['model']} on the {state['target']} target: training objective** (test split, mean ± std over "
           "seeds; `python bench/objective_kitchen.py`, one CPU thread per run)\n",
           pd.DataFrame(rows).to_markdown(index=False)]

    def per_case(v, proto, metric):
        keys = sorted(k for k in state['cases'] if k.split('|')[0] == v)
        return case_metric(state['cases'], keys, proto, metric)
    tests = []
    for v in ('corrected', 'uncorrected'):
        if not ({v, 'full'} <= {key.split('|')[0] for key in state['cases']}):
            continue
        for proto, metric in (('full', 'NDCG@10'), ('full', 'HR@10'), ('sampled-999', 'NDCG@10')):
            t = paired_test(per_case(v, proto, metric), per_case('full', proto, metric))
            tests.append({'a': LABELS[v], 'b': LABELS['full'], 'protocol': proto, 'metric': metric, 'n': t.n,
                          'diff': f"{t.diff:+.4f}", '95% CI': f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]",
                          'p Wilcoxon': f"{t.p_wilcoxon:.3f}", 'p t-test': f"{t.p_ttest:.3f}",
                          'verdict': {'better': 'a better', 'worse': 'a worse'}.get(_verdict(t), _verdict(t))})
    if tests:
        out += ["\nPaired over test users (per-user scores averaged over seeds): bootstrap 95% interval of the "
                "difference, Wilcoxon and t-test; a verdict needs both p < 0.05 and an interval that excludes 0.\n",
                pd.DataFrame(tests).to_markdown(index=False, disable_numparse=True)]
    return '\n'.join(out) + '\n'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument('--out', default='runs/objective-kitchen')
    ap.add_argument('--results', default=str(RESULTS/'objective_kitchen.json'))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--set', nargs='*', default=[], dest='sets', metavar='KEY=VALUE', help='config overrides')
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    run(a.seeds, a.variants, Path(a.out), Path(a.results), a.sets)
    return 0


if __name__ == '__main__':
    sys.exit(main())
