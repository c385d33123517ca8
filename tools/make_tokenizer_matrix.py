"""Tokenizer-setup matrix (issue 9): tokenizer-only variants of the `tiny` checkpoint and the
official prompt ids / greedy ids for each.  Imported by make_fixtures.py (`--only tokenizers`
regenerates just this part, from the committed tiny checkpoint).

Each setup differs from tiny's tokenizer files in the tokenizer.json post-processor (built with
the `tokenizers` library's own processor classes and serialized by it), the tokenizer_config.json
keys (add_bos_token / add_eos_token / eos_token / tokenizer_class: present, absent or
contradicting) and whether the chat template emits `{{ bos_token }}`.  The vocabulary and the
model weights are tiny's.  The truth for each setup is what transformers itself does after
loading the assembled directory with AutoTokenizer / AutoModelForCausalLM, as a user would.

Output:
    <out>/tokenizers/<setup>/tokenizer.json, tokenizer_config.json, chat_template.jinja
    <out>/golden/tokenizers.json   per setup: description, the special ids the loaded tokenizer
        adds around a plain text (official_prefix_ids / official_suffix_ids), and per case the
        rendered prompt, input_ids, greedy ids (full-forward argmax loop) and margins.
A test assembles tiny's config.json + model.safetensors + preprocessor_config.json with one
setup's three files in a temp dir, exactly as done here.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, processors
from transformers import AutoModelForCausalLM, AutoTokenizer

BOS, EOS_S = ("<s>", 1), ("</s>", 2)
IM_START = ("<|im_start|>", 24)


def _tp(single: str, specials) -> processors.TemplateProcessing:
    pair = single.replace("$A:0", "$A:0 $B:1") if "$A" in single else "$A:0 $B:1"
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=list(specials))


BYTE_LEVEL = processors.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)

# name -> (description, post_processor (object, None = JSON null, "absent" = no key),
#          tokenizer_config changes (None deletes the key), template emits bos_token)
SETUPS = {
    "nokey_bytelevel_tmplbos": (
        "no add_bos_token key, ByteLevel post-processor, template emits {{ bos_token }}",
        BYTE_LEVEL, {"add_bos_token": None, "add_eos_token": None}, True),
    "keytrue_bytelevel": (
        "add_bos_token true (contradicted: ByteLevel adds nothing), template without BOS",
        BYTE_LEVEL, {"add_bos_token": True}, False),
    "tp_bos_plain": (
        "Mistral-Nemo style: TemplateProcessing <s> $A, add_bos_token true, template without BOS",
        _tp("<s>:0 $A:0", [BOS]), {}, False),
    "tp_bos_tmplbos": (
        "TemplateProcessing <s> $A and a template that emits BOS too: the official prompt has two",
        _tp("<s>:0 $A:0", [BOS]), {}, True),
    "tp_bos_keyfalse": (
        "TemplateProcessing <s> $A, add_bos_token false (contradicting), no tokenizer_class",
        _tp("<s>:0 $A:0", [BOS]), {"add_bos_token": False, "tokenizer_class": None}, False),
    "null_pp_keytrue": (
        "post_processor null, add_bos_token true and add_eos_token true (both ignored)",
        None, {"add_bos_token": True, "add_eos_token": True}, False),
    "absent_pp_nokeys_tmplbos": (
        "no post_processor key, no add_* keys, template emits BOS",
        "absent", {"add_bos_token": None, "add_eos_token": None}, True),
    "seq_bytelevel_tp_bos": (
        "Sequence[ByteLevel, TemplateProcessing <s> $A], no add_* keys",
        processors.Sequence([BYTE_LEVEL, _tp("<s>:0 $A:0", [BOS])]),
        {"add_bos_token": None, "add_eos_token": None}, False),
    "tp_bos_eos": (
        "TemplateProcessing <s> $A </s> with eos_token </s>, add_eos_token false (contradicting)",
        _tp("<s>:0 $A:0 </s>:0", [BOS, EOS_S]), {"eos_token": "</s>", "add_eos_token": False}, False),
    "tp_eos_only": (
        "TemplateProcessing $A </s>, eos_token </s>, add_bos_token true (contradicting), template emits BOS",
        _tp("$A:0 </s>:0", [EOS_S]), {"eos_token": "</s>"}, True),
    "tp_no_specials": (
        "TemplateProcessing $A only, add_bos_token true",
        _tp("$A:0", []), {}, False),
    "roberta": (
        "RobertaProcessing (cls <s>, sep </s>), eos_token </s>, add_* keys false",
        processors.RobertaProcessing(EOS_S, BOS, trim_offsets=True, add_prefix_space=False),
        {"eos_token": "</s>", "add_bos_token": False, "add_eos_token": False}, False),
    "bert_tmplbos": (
        "BertProcessing (cls <s>, sep </s>), eos_token </s>, template emits BOS (two BOS)",
        processors.BertProcessing(EOS_S, BOS), {"eos_token": "</s>"}, True),
    "gpt2_class_bytelevel": (
        "tokenizer_class GPT2TokenizerFast, ByteLevel, add_bos_token true (ignored)",
        BYTE_LEVEL, {"tokenizer_class": "GPT2TokenizerFast", "add_bos_token": True}, False),
}

# Setups the converter must refuse without an explicit --add-bos/--add-eos: no goldens, files only.
REFUSED = {
    "unknown_pp_type": (
        "a post-processor type this converter does not know (hand-written JSON)",
        {"type": "FancyProcessing", "prefix": "<s>"}, {}, False),
    "tp_prefix_not_bos": (
        "TemplateProcessing <|im_start|> $A: prepends a token that is not the BOS",
        _tp("<|im_start|>:0 $A:0", [IM_START]), {}, False),
}

CASE_NAMES = ("img_square", "text")


def _pp_json(pp):
    if isinstance(pp, dict):
        return pp
    tok = Tokenizer.from_str(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}))
    tok.post_processor = pp
    return json.loads(tok.to_str())["post_processor"]


def write_setup(base: Path, dest: Path, pp, tc_changes: dict, template_bos: bool, chat_template: str) -> None:
    dest.mkdir(parents=True)
    tj = json.loads((base / "tokenizer.json").read_text())
    if isinstance(pp, str) and pp == "absent":
        tj.pop("post_processor")
    else:
        tj["post_processor"] = None if pp is None else _pp_json(pp)
    (dest / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False) + "\n")
    tc = json.loads((base / "tokenizer_config.json").read_text())
    for k, v in tc_changes.items():
        if v is None:
            tc.pop(k, None)
        else:
            tc[k] = v
    (dest / "tokenizer_config.json").write_text(json.dumps(dict(sorted(tc.items())), indent=2, ensure_ascii=False) + "\n")
    (dest / "chat_template.jinja").write_text(("{{- bos_token -}}\n" if template_bos else "") + chat_template)


def assemble(tiny: Path, setup_dir: Path, into: Path) -> None:
    for f in ("config.json", "model.safetensors", "preprocessor_config.json", "generation_config.json"):
        shutil.copy(tiny / f, into / f)
    for f in setup_dir.iterdir():
        shutil.copy(f, into / f.name)


def added_specials(tok) -> tuple[list[int], list[int]]:
    """The ids the loaded tokenizer adds around a plain text (tokenizer(text), the processor's call)."""
    text = "Hello world"
    plain = tok(text, add_special_tokens=False)["input_ids"]
    full = tok(text)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    raise AssertionError(("text not found in the tokenized output", full, plain))


def make(out: Path, mf) -> None:
    """mf = the make_fixtures module (its CHAT_TEMPLATE, prepare_case, greedy, processor)."""
    from artemis_vlm import ArtemisVLMForConditionalGeneration, ArtemisVLMProcessor

    tiny, root = out / "tiny", out / "tokenizers"
    if root.exists():
        shutil.rmtree(root)
    records = {}
    for name, (desc, pp, tc_changes, tmpl_bos) in {**SETUPS, **REFUSED}.items():
        write_setup(tiny, root / name, pp, tc_changes, tmpl_bos, mf.CHAT_TEMPLATE)
        if name in REFUSED:
            records[name] = dict(description=desc, refused=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp)
            assemble(tiny, root / name, ckpt)
            tok = AutoTokenizer.from_pretrained(ckpt)
            model = AutoModelForCausalLM.from_pretrained(ckpt)
            assert isinstance(model, ArtemisVLMForConditionalGeneration)
            model = model.float().eval()
            processor = ArtemisVLMProcessor(
                tokenizer=tok, vision_config=model.visual.config, min_pixels=32 * 32, max_pixels=512 * 512
            )
            prefix, suffix = added_specials(tok)
            cases = []
            for cname in CASE_NAMES:
                c = mf.prepare_case(processor, cname, out / "images")
                gid, margins, _, _ = mf.greedy(model, c, mf.N_GREEDY)
                cases.append(dict(
                    name=cname, image=c["image"], prompt=c["prompt"], input_ids=c["input_ids"],
                    n_image_tokens=sum(1 for t in c["input_ids"] if t == processor.image_token_id),
                    greedy_ids=gid, greedy_min_margin=round(min(margins), 6),
                ))
                print(f"[tokenizers] {name} {cname}: {len(c['input_ids'])} ids, starts {c['input_ids'][:3]}, "
                      f"ends {c['input_ids'][-2:]}, min margin {min(margins):.4f}", flush=True)
            records[name] = dict(
                description=desc, tokenizer_class=type(tok).__name__,
                bos_token=tok.bos_token, eos_token=tok.eos_token,
                official_prefix_ids=prefix, official_suffix_ids=suffix, cases=cases,
            )
    (out / "golden" / "tokenizers.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
