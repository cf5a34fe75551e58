"""The comparison on real data: configs/food_kitchen.yaml (Amazon Food–Kitchen, LLMCDSR's own valid/test targets,
full ranking and 999 negatives, 3 seeds, SemaCDR against pop / GRU4Rec / SASRec-target / SASRec-mixed / text), then
the table for the docs in nbs/results/food_kitchen.md (run `make readme` afterwards to refresh the index and README).

    .venv/bin/python bench/bench_food_kitchen.py [--set key=value ...]

Each (model, target, seed) trains in runs/food-kitchen/models/...; an interrupted run resumes, finished ones are reused.
This is GPU work: on 2 CPU cores one SASRec epoch on the kitchen target takes minutes and SemaCDR first needs LLM
semantics for all 36,298 items (about 0.5 s per item with SmolLM2 on CPU; use a GPU or an OpenAI-compatible server).
"""
import argparse
from pathlib import Path

from semacdr.experiments import load_run_config, results_tables, run

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--set', dest='sets', action='append', default=[])
    a = ap.parse_args()
    cfg = load_run_config(ROOT/'configs'/'food_kitchen.yaml', a.sets)
    df = run(cfg)
    tables = results_tables(df, cfg.protocols)
    per_model = df.groupby('model', sort=False)[['sec_per_epoch']].median()
    lines = ['### Amazon Food–Kitchen (LLMCDSR release, its own valid/test targets)', '',
             f'`python bench/bench_food_kitchen.py` — test split, mean ± std over seeds {list(cfg.seeds)}; '
             f'protocols {", ".join(cfg.protocols)}.', '']
    for target, tab in tables.items():
        lines += [f'**Target: {target}**', '', tab.to_markdown(), '']
    lines += ['**Seconds per training epoch (median)**', '', per_model.to_markdown(), '']
    out = ROOT/'nbs'/'results'/'food_kitchen.md'
    out.write_text('\n'.join(lines), encoding='utf-8')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
