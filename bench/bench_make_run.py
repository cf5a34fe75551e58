"""`make run` from a fresh clone, timed by phase: set-up, data, semantics, encoding, training, tables; then again with
every cache warm.

    python bench/bench_make_run.py            # writes nbs/results/make_run.json and its table, make_run.md

The clone gets an empty `SEMACDR_CACHE` (no converted model, no embeddings, no run folders), so semantics come from the
released store and the text views are encoded from scratch; pip's download cache is the machine's own. Phases come
from the lines `semacdr run` prints with their durations.
"""
from __future__ import annotations
import json, os, platform, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t, r.stdout + r.stderr


def phases(log: str) -> dict:
    "Seconds of each phase from the lines `semacdr run` prints."
    def grab(pattern):
        m = re.search(pattern, log)
        return float(m.group(1)) if m else float('nan')
    return {'data': grab(r'== data: ([\d.]+) s'),
            'semantics': grab(r'semantics: .* in ([\d.]+) s; encoding'),
            'encoding': grab(r'; encoding ([\d.]+) s'),
            'training and evaluation': grab(r'== training and evaluation: ([\d.]+) s'),
            'tables': grab(r'== tables and figure: ([\d.]+) s'),
            'run total': grab(r'total ([\d.]+) s')}


def render(record: dict) -> str:
    "The Markdown table of a record `main` writes (nbs/results/make_run.json), from the record alone."
    p = record['phases_s']
    return '\n'.join([
        '**`make run` from a fresh clone** (`python bench/bench_make_run.py`: a new clone with an empty cache, '
        f"on this {record['cpus']}-core machine, load average {record['load_avg_end']} at the end; semantics from the "
        'released store)', '',
        '| phase | seconds |', '| --- | ---: |',
        f"| set-up (`make setup`: venv, torch, the package and its assets) | {record['setup_s']:.0f} |",
        *(f'| {k} | {v:.1f} |' for k, v in p.items() if k != 'run total'),
        f"| `make run` in all | {record['run_s']:.0f} |",
        f"| **fresh clone to results** | **{record['fresh_total_s'] / 60:.1f} min** |",
        f"| `make run` again, every cache warm | {record['cached_run_s']:.1f} |", ''])


def main():
    from semacdr.core import atomic_write_text
    with tempfile.TemporaryDirectory() as d:
        clone, cache = Path(d)/'semacdr', Path(d)/'cache'
        subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
        env = {**os.environ, 'SEMACDR_CACHE': str(cache)}
        env.pop('VIRTUAL_ENV', None)
        setup, _ = timed(['make', 'setup'], clone, env)
        run, log = timed(['make', 'run'], clone, env)
        again, log2 = timed(['make', 'run'], clone, env)
    res = {'setup_s': round(setup, 1), 'run_s': round(run, 1), 'fresh_total_s': round(setup + run, 1),
           'phases_s': phases(log), 'cached_run_s': round(again, 1), 'cached_phases_s': phases(log2),
           'load_avg_end': round(os.getloadavg()[0], 2), 'cpus': os.cpu_count(), 'python': platform.python_version()}
    raw = json.dumps(res, indent=2)
    md = render(json.loads(raw))
    atomic_write_text(ROOT/'nbs'/'results'/'make_run.json', raw)
    atomic_write_text(ROOT/'nbs'/'results'/'make_run.md', md)
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
