#!/usr/bin/env python3
"""PyTorch side of the encoder benchmark: sentence-transformers all-MiniLM-L6-v2 throughput.

    encoder_torch.py --model DIR --sentences FILE --threads N --batch B [--batch B2 ...]
                     [--tokens 64] [--seconds 5] [--device cpu|cuda]

Normally run through bench/encoder_torch.sh, which provides the venv.

Method. Every input is exactly --tokens tokens long, [CLS] and [SEP] included. That way the C
encoder and PyTorch do the same work per article, whatever the sentence list holds:
  * Each non-empty line of FILE is repeated, joined by a space, until the model's tokenizer gives
    it at least --tokens tokens.
  * model.max_seq_length is set to --tokens, so truncation cuts every input to exactly --tokens, and
    no batch has padding. The script checks this on the tokenizer's output before timing.
  * For batch size B, batch k holds inputs k*B .. k*B+B-1, taken cyclically from the list.
  * One timed run is one call to model.encode(batch, batch_size=B, convert_to_numpy=True). That is
    the whole default pipeline: tokenisation (Rust tokenizers), BERT forward, mean pooling and L2
    normalisation, with a copy to numpy.
  * The first runs are warm-up and are not counted: at least 3 runs, or 1 s, whichever takes
    longer. Then runs repeat until --seconds have passed, with at least 3 runs.
  * Results: articles_per_s = runs * B / elapsed and ms_per_batch = elapsed / runs.
torch.set_num_threads(N) sets the intra-op threads, with one inter-op thread. RAYON_NUM_THREADS=N
applies to the tokenizer. The model runs in float32 under torch.inference_mode(), as encode does.

Output, one line per batch size after an info line (lines starting with '#' are comments):
    BENCH encoder_torch_info torch=2.15.0 sentence_transformers=6.2.0 threads=1
    BENCH encoder_torch_cpu_t1_b16 articles_per_s=123.4 ms_per_batch=129.6 runs=40
"""

import argparse
import os
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="sentence-transformers model folder")
    ap.add_argument("--sentences", required=True, help="text file, one sentence per line")
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads(N)")
    ap.add_argument("--batch", type=int, nargs="+", action="extend", required=True,
                    help="batch size(s); repeat the flag or list several")
    ap.add_argument("--tokens", type=int, default=64, help="tokens per input, specials included (default 64)")
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size (default 5)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    a = ap.parse_args()
    if a.threads < 1 or a.tokens < 3 or a.seconds <= 0 or any(b < 1 for b in a.batch):
        ap.error("--threads and --batch must be >= 1, --tokens >= 3, --seconds > 0")
    return a


def main():
    a = parse_args()
    # Before the tokenizers / torch imports, so the thread pools pick them up.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if a.threads > 1 else "false"

    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("encoder_torch.py: --device cuda but torch.cuda.is_available() is False")

    print(f"BENCH encoder_torch_info torch={torch.__version__.split('+')[0]} "
          f"sentence_transformers={sentence_transformers.__version__} threads={a.threads}", flush=True)

    with open(a.sentences, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f.read().split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        sys.exit(f"encoder_torch.py: no sentences in {a.sentences}")

    model = SentenceTransformer(a.model, device=a.device)
    model.eval()
    tok = model.tokenizer

    def n_tokens(text):
        return len(tok(text, add_special_tokens=True, verbose=False)["input_ids"])

    inputs = []
    for s in lines:
        text = s
        while n_tokens(text) < a.tokens:
            text = text + " " + s
        inputs.append(text)
    model.max_seq_length = a.tokens

    # Check that every input comes out at exactly --tokens tokens, with no padding.
    prep = model.preprocess if hasattr(model, "preprocess") else model.tokenize
    for i in range(0, len(inputs), 64):
        feats = prep(inputs[i:i + 64])
        mask = feats["attention_mask"]
        if tuple(mask.shape) != (len(inputs[i:i + 64]), a.tokens) or int(mask.sum()) != mask.numel():
            sys.exit(f"encoder_torch.py: inputs are not all exactly {a.tokens} tokens (got {tuple(mask.shape)})")

    print(f"# {len(inputs)} inputs of exactly {a.tokens} tokens from {a.sentences}; device {a.device}, "
          f"{a.seconds:g} s per batch size", flush=True)

    def batches(b):
        k = 0
        n = len(inputs)
        while True:
            start = (k * b) % n
            yield [inputs[(start + j) % n] for j in range(b)]
            k += 1

    def run(batch, b):
        emb = model.encode(batch, batch_size=b, convert_to_numpy=True, show_progress_bar=False)
        assert emb.shape[0] == b

    for b in a.batch:
        gen = batches(b)
        t0, warm = time.perf_counter(), 0
        while warm < 3 or time.perf_counter() - t0 < 1.0:
            run(next(gen), b)
            warm += 1
        runs = 0
        t0 = time.perf_counter()
        while True:
            run(next(gen), b)
            runs += 1
            elapsed = time.perf_counter() - t0
            if runs >= 3 and elapsed >= a.seconds:
                break
        print(f"BENCH encoder_torch_{a.device}_t{a.threads}_b{b} articles_per_s={runs * b / elapsed:.1f} "
              f"ms_per_batch={elapsed / runs * 1000:.1f} runs={runs}", flush=True)


if __name__ == "__main__":
    main()
