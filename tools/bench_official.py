"""Generation speed of the official implementation on a fixture, for scale (BENCHMARKS.md).

    HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/bench_official.py fixtures/small [N_TOKENS]

Text-only greedy generation with the KV cache (artemis-vlm 0.1.4's generate() drops images when
the cache is on, so image prompts are not timed here), f32 on CPU, torch threads = all cores.
"""
import json
import sys
import time

import torch
import artemis_vlm  # noqa: F401  (registers the artemis_vlm model type)
from transformers import AutoModelForCausalLM, AutoTokenizer

ckpt = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
tok = AutoTokenizer.from_pretrained(ckpt)
model = AutoModelForCausalLM.from_pretrained(ckpt).float().eval()
prompt = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "Tell me about the quick brown fox."}]}],
                                 tokenize=False, add_generation_prompt=True)
ids = tok(prompt, return_tensors="pt")["input_ids"]
with torch.no_grad():
    model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)  # warm-up
    t0 = time.perf_counter()
    out = model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    dt = time.perf_counter() - t0
gen = out.shape[1] - ids.shape[1]
print(json.dumps({"checkpoint": ckpt, "prompt_tokens": ids.shape[1], "generated": gen, "seconds": round(dt, 3),
                  "tok_per_s": round(gen / dt, 1), "torch_threads": torch.get_num_threads()}))
