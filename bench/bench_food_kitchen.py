"""The comparison on real data: configs/food_kitchen.yaml (Amazon Food–Kitchen, LLMCDSR's own valid/test targets,
full ranking and 999 negatives, 3 seeds, SemaCDR against pop / GRU4Rec / SASRec-target / SASRec-mixed / text), then
the table for the docs in nbs/results/food_kitchen.md (run `make readme` afterwards to refresh the index and README).

    .venv/bin/python bench/bench_food_kitchen.py [--set key=value ...] [--ablations semacdr-no-agnostic,...]

With --ablations, those SemaCDR ablations (keys of semacdr.experiments.ZOO) also train on the first seed, in the same
run folder (so SemaCDR's own run is shared), and the docs get a table of their test metrics next to SemaCDR's
(--ablation-targets 0 limits them to one target domain).

Each (model, target, seed) trains in runs/food-kitchen/models/...; an interrupted run resumes, finished ones are reused.
The config is sized for 2 CPU cores (about 1.5 h with semantics for 1,500 items); see its header for a GPU machine.
"""
import argparse, dataclasses, json, time
from pathlib import Path

import pandas as pd

from semacdr.experiments import load_run_config, results_tables, run

ROOT = Path(__file__).resolve().parent.parent


def coverage(cfg) -> dict:
    "How much of the data the LLM semantics cover under the config's budget (training interactions, items, targets)."
    import numpy as np
    from semacdr.core import from_dict
    from semacdr.semantics import SemanticsConfig, load_semantics, training_item_counts
    ds = cfg.data.load()
    sem = load_semantics(ds, from_dict(SemanticsConfig, cfg.semantics, 'semantics'), allow_missing=True)
    llm = ~np.asarray(sem['fallback'])
    counts = training_item_counts(ds)
    test_targets = [x for t in (0, 1) for x in ds.split(t).test[:]['target']]
    return {'items': int(llm.sum()), 'of_items': ds.n_items,
            'training_interactions': float(counts[llm].sum() / counts.sum()),
            'test_targets': float(llm[test_targets].mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--set', dest='sets', action='append', default=[])
    ap.add_argument('--ablations', default='',
                    help='comma-separated ZOO keys, e.g. semacdr-no-agnostic,semacdr-id-only')
    ap.add_argument('--ablation-targets', default='',
                    help='comma-separated target domains of the ablations (default: the config\'s)')
    a = ap.parse_args()
    cfg = load_run_config(ROOT/'configs'/'food_kitchen.yaml', a.sets)
    t0 = time.perf_counter()
    df = run(cfg)
    wall = time.perf_counter() - t0
    cov = coverage(cfg) if cfg.semantics else None
    write_docs(cfg, df, None, wall, cov)
    abl = [m for m in a.ablations.split(',') if m]
    if abl:
        targets = tuple(int(t) for t in a.ablation_targets.split(',') if t) or cfg.targets
        df_abl = run(dataclasses.replace(cfg, models=('semacdr', *abl), seeds=cfg.seeds[:1], targets=targets))
        run(cfg)   # read back: the folder's summary files describe the main grid again
        write_docs(cfg, df, df_abl, wall, cov)


def write_docs(cfg, df, df_abl, wall, cov):
    "nbs/results/food_kitchen.md (results, ablations, cost, semantics coverage `cov`) and runs/<name>/bench.json."
    tables = results_tables(df, cfg.protocols, metrics=('HR@10', 'NDCG@10'))
    cost = (df[df.model != 'pop'].groupby(['model', 'target'],
                                          sort=False)[['sec_per_epoch', 'epochs_run', 'best_epoch']]
            .median().unstack('target'))
    cost.columns = [f"{ {'sec_per_epoch': 's/epoch', 'epochs_run': 'epochs run', 'best_epoch': 'best epoch'}[m] } ({t})"
                    for m, t in cost.columns]
    lines = ['### Amazon Food–Kitchen (LLMCDSR release, its own valid/test targets)', '',
             f'`python bench/bench_food_kitchen.py` (config `configs/food_kitchen.yaml`): test split, mean ± std over '
             f'seeds {list(cfg.seeds)}; full ranking over the target domain and '
             f'{", ".join(p for p in cfg.protocols if p != "full")}. Bold: best mean in a column.', '']
    if cov:
        lines += [f"LLM semantics (SmolLM2-135M, CPU) cover the {cov['items']:,} items most frequent in training, out "
                  f"of {cov['of_items']:,}. That is {cov['training_interactions']:.1%} of training interactions and "
                  f"{cov['test_targets']:.1%} of test targets. "
                  'The other items use the marked title fallback.', '']
    for target, tab in tables.items():
        lines += [f'**Target: {target}**', '', tab.to_markdown(), '']
    if df_abl is not None:
        cols = [f'{p}/{m}' for p in cfg.protocols for m in ('HR@10', 'NDCG@10')]
        tab = df_abl.pivot_table(index='model', columns='target', values=cols, sort=False)
        tab.columns = [f'{t}: {c}' for c, t in tab.columns]
        lines += [f'**Ablations** (seed {cfg.seeds[0]}, test split): each row switches one part of SemaCDR off', '',
                  tab.reindex(list(dict.fromkeys(df_abl.model))).round(4).to_markdown(), '']
    lines += ['**Training runs** (median over seeds; each run in its own process with one thread, '
              f'{cfg.jobs} at a time on this machine): seconds per epoch, epochs run, best epoch. Peak memory: see the '
              f'cost table below.', '',
              cost.round(1).to_markdown(), '']
    trained = df[df.model != 'pop']
    early = trained[trained.epochs_run < cfg.train.epochs]
    capped = trained[trained.best_epoch == cfg.train.epochs]
    rule = (f'stopping after {cfg.train.patience} validations without improvement' if cfg.train.patience
            else 'no early stopping; the best validation epoch is kept')
    stopped = ', '.join(f'{r.model} {r.target} seed {r.seed}: best epoch {r.best_epoch} of {r.epochs_run}'
                        for r in early.itertuples())
    lines += [f"Training budget: at most {cfg.train.epochs} epochs, {rule}. "
              f"{len(early)} of {len(trained)} trained runs stopped early "
              f"({stopped or 'none'}). "
              f"{len(capped)} runs had their best validation score in the last allowed epoch, so they were still "
              f"improving when the budget ran out.", '']
    out = ROOT/'nbs'/'results'/'food_kitchen.md'
    out.write_text('\n'.join(lines), encoding='utf-8')
    (ROOT/'runs'/cfg.name/'bench.json').write_text(json.dumps({'wall_seconds': round(wall, 1), 'coverage': cov},
                                                              indent=2))
    print(f'wrote {out} ({wall / 60:.1f} min)')


if __name__ == '__main__':
    main()
