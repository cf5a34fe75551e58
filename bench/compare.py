"""Run a comparison config end to end (tune on validation, seeds, paired tests) and write its records and tables.

    python bench/compare.py configs/compare_movielens.yaml nbs/results/movielens [--set key=value ...] [--threads 1]

Resumable: every training is a run folder under the config's output_dir that is found finished or resumed, and the
records in the results folder are rewritten after every finished run (commit them as they land). The tables
(`tables.md` in the results folder) are written by `semacdr.comparison.write_tables` from those records only.

Parallel: start the same command again (say `--threads 1` each); the processes share the plan, each run is claimed by
one of them with a file lock (`semacdr.comparison.claim_run`) and every save merges the records the others wrote.
"""
import argparse, sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('results')
    ap.add_argument('--set', nargs='*', default=[], dest='sets', metavar='KEY=VALUE')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from semacdr.comparison import compare
    print(f"tables: {compare(a.config, a.results, a.sets) / 'tables.md'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
