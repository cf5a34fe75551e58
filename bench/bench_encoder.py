"""Encoder benchmark: `semacdr.encoder.TextEncoder.embed` against sentence-transformers' own `encode`.

Same model (all-MiniLM-L6-v2 unless --model), same texts (real item titles), same process, same batch size and
thread count; the two run alternately `--repeats` times and the best throughput of each is reported, which damps the
noise of a shared machine. The cache is bypassed (it would make ours free on a re-run).

    python bench/bench_encoder.py --n 2000 --threads 2
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path

import torch


def load_texts(n: int) -> tuple[str, list[str]]:
    "Up to `n` real item texts: Food-Kitchen titles when the shared data is there, else the MovieLens item texts."
    from semacdr.core import shared_data_dir
    fk = shared_data_dir('food-kitchen')
    if fk is not None:
        texts = [json.loads(l)['title'] for l in (fk/'items.jsonl').open(encoding='utf-8')]
        return 'food-kitchen titles', texts[::max(1, len(texts)//n)][:n]
    from semacdr.data import load_movielens
    ds = load_movielens()
    return 'ml-100k item texts', [ds.item_text(i) for i in range(min(n, ds.n_items))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=2000, help='texts')
    ap.add_argument('--model', default='sentence-transformers/all-MiniLM-L6-v2')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--json', default=None, help='also write the results here')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer
    from semacdr.encoder import EncoderConfig, TextEncoder
    what, texts = load_texts(a.n)
    ours = TextEncoder(EncoderConfig(model=a.model, batch_size=a.batch_size, device=a.device, progress=False))
    st = SentenceTransformer(ours.path, device=a.device)
    st.max_seq_length = ours.max_length
    ours.embed(texts[:64])
    st.encode(texts[:64], batch_size=a.batch_size)   # warm-up
    t_ours, t_st = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        st_emb = st.encode(texts, batch_size=a.batch_size, convert_to_tensor=True,
                          normalize_embeddings=False)
        t_st.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        our_emb = ours.embed(texts)
        t_ours.append(time.perf_counter() - t0)
    diff = float((st_emb.float().cpu() - our_emb).abs().max())
    res = dict(texts=what, n=len(texts), model=ours.model_id, batch_size=a.batch_size, threads=a.threads,
               device=str(ours.device), torch=torch.__version__,
               ours_items_per_s=round(len(texts)/min(t_ours), 1), st_items_per_s=round(len(texts)/min(t_st), 1),
               ratio=round(min(t_st)/min(t_ours), 3), max_abs_diff=diff,
               ours_s=[round(t, 2) for t in t_ours], st_s=[round(t, 2) for t in t_st])
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    ok = diff <= 1e-5
    print(f"ours {res['ours_items_per_s']} items/s vs sentence-transformers {res['st_items_per_s']} items/s "
          f"(ratio {res['ratio']}), max |diff| {diff:.2e} {'OK' if ok else 'TOO LARGE'}")
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
