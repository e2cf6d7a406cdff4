#!/usr/bin/env python3
"""Golden fixtures for the fp32 numerics mode: transformers' DeepseekV4ForCausalLM (float32, CPU).

For each tiny random config this writes, under OUT/<config>/:
  hf/        config.json + model.safetensors exactly as transformers' save_pretrained writes them (BF16)
  official/  the same weights in DeepSeek's official layout (FP8 e4m3 + ue8m0 128x128 block scales,
             MXFP4 routed experts, BF16 / F32 / I64 elsewhere), config.json (HF root spelling as
             DeepSeek ships it) and inference/config.json (official spelling)
  case.json  ids, chunk sizes, seed, what the config exercises, agreement numbers
  {hf,official}_{prefill,decode,chunks}.npy   float32 logits [L, vocab] for three call patterns:
             prefill = one forward over all ids; decode = prefill L-1 ids then decode the last one;
             chunks  = prefill chunks c1, c2 then decode the remaining ids one at a time.
The hf_* logits come from the bf16-valued weights, the official_* logits from the dequantized
FP8/FP4 weights read back from the written official files.

Run on a machine with torch + transformers 5.17 (CPU only), e.g.
  CUDA_VISIBLE_DEVICES= python3 tools/gen_reference.py --out tests/data/golden
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

HASH, MOE = "hash_moe", "moe"
SWA, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"

# Each case: transformers config kwargs + how to drive it. Every inner dim feeding an FP8/FP4 GEMM
# is a multiple of 128, head_dim - rope a multiple of 64, index_head_dim a power of two.
CASES = {
    "csa_hca_yarn": {
        "description": "sliding, CSA (ratio 4: overlap compressor + Lightning Indexer whose index_topk "
        "is below the number of compressed entries, so selection drops entries) and HCA "
        "(ratio 8); YaRN on the compress rope (factor 4, original 32); 1 hash-routed MoE layer "
        "then score-routed MoE with e_score_correction_bias; 4 heads x 128 (rope 64), "
        "o_groups 4; index head 128 (64 nope + 64 rope); official checkpoint in 2 shards with "
        "an index; compress_ratios carry one extra trailing 0 (MTP slot, n_mtp_layers 0).",
        "config": {
            "vocab_size": 384,
            "hidden_size": 128,
            "num_hidden_layers": 3,
            "layer_types": [SWA, CSA, HCA],
            "mlp_layer_types": [HASH, MOE, MOE],
            "compress_rates": {CSA: 4, HCA: 8},
            "num_attention_heads": 4,
            "head_dim": 128,
            "partial_rotary_factor": 0.5,
            "q_lora_rank": 128,
            "o_groups": 4,
            "o_lora_rank": 32,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 128,
            "index_n_heads": 8,
            "index_head_dim": 128,
            "index_topk": 8,
            "sliding_window": 16,
            "rope_theta": 10000.0,
            "compress_rope_theta": 160000.0,
            "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                "beta_fast": 32, "beta_slow": 1},
            "routed_scaling_factor": 1.5,
        },
        "length": 72,
        "chunks": [13, 29],
        "seed": 1000,
        "expert_gain": 1.0,
        "shards": 2,
        "mtp_tail_entry": True,
        "topk_fallback": False,
    },
    "hca16_csa_hash_hd256": {
        "description": "HCA (ratio 16) as the first layer, then CSA (ratio 4, index_topk below the "
        "number of entries unless that gave near-ties); every layer hash-routed MoE "
        "(num_hash_layers = num_hidden_layers) on compressed layers; 2 heads x 256 (rope 64 = "
        "partial 0.25, nope 192), o_groups 2; index head 64 (rope only); YaRN factor 8 / original "
        "64 on compress_rope_theta 40000; rope_theta 50000; routed_scaling_factor 2.5; sliding "
        "window 24; routed expert weights scaled up so the SwiGLU clamp (10) is hit; "
        "single-file official checkpoint.",
        "config": {
            "vocab_size": 256,
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "layer_types": [HCA, CSA],
            "mlp_layer_types": [HASH, HASH],
            "compress_rates": {CSA: 4, HCA: 16},
            "num_attention_heads": 2,
            "head_dim": 256,
            "partial_rotary_factor": 0.25,
            "q_lora_rank": 128,
            "o_groups": 2,
            "o_lora_rank": 64,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 128,
            "index_n_heads": 8,
            "index_head_dim": 64,
            "index_topk": 12,
            "sliding_window": 24,
            "rope_theta": 50000.0,
            "compress_rope_theta": 40000.0,
            "rope_parameters": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                                "beta_fast": 32, "beta_slow": 1},
            "routed_scaling_factor": 2.5,
        },
        "length": 72,
        "chunks": [13, 29],
        "seed": 2000,
        "expert_gain": 4.0,
        "shards": 1,
        "mtp_tail_entry": False,
        "topk_fallback": True,
    },
}

COMMON_CONFIG = {
    "num_key_value_heads": 1,
    "n_shared_experts": 1,
    "scoring_func": "sqrtsoftplus",
    "norm_topk_prob": True,
    "swiglu_limit": 10.0,
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "hc_eps": 1e-6,
    "rms_norm_eps": 1e-6,
    "num_nextn_predict_layers": 0,
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
}

AGREE_TOL = 1e-5      # transformers' own call patterns must agree this well (relative L2 per position)
MARGIN_TOL = 2e-4     # smallest relative gap allowed at a discrete top-k boundary (indexer, router)

# ---------------------------------------------------------------------------------------------
# Number formats (own implementation; torch's float8 dtypes are used only as containers).

E2M1_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def pow2_scale(amax, qmax):
    """Power-of-two scale 2^ceil(log2(amax/qmax)); tiny (2^-127) for all-zero blocks."""
    amax = np.asarray(amax, dtype=np.float64)
    exp = np.where(amax > 0, np.ceil(np.log2(np.where(amax > 0, amax, 1.0) / qmax)), -127.0)
    return np.exp2(np.clip(exp, -127, 127))


def round_e4m3(x):
    """Round float64 values (already scaled into [-448, 448]) to e4m3fn, nearest-even."""
    mag = np.abs(x)
    exp = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    step = np.exp2(np.maximum(exp, -6.0) - 3.0)          # 3 mantissa bits; subnormal step 2^-9
    q = np.round(mag / step) * step                      # np.round is half-to-even
    return np.sign(x) * np.minimum(q, 448.0)


def round_e2m1_codes(x):
    """Round float64 values (already scaled into [-6, 6]) to e2m1 codes (bit 3 = sign), nearest-even."""
    mag = np.minimum(np.abs(x), 6.0)
    hi = np.clip(np.searchsorted(E2M1_GRID, mag, side="left"), 0, 7)
    lo = np.clip(hi - 1, 0, 7)
    d_lo, d_hi = mag - E2M1_GRID[lo], E2M1_GRID[hi] - mag
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo)
    sign = (x < 0) & (code > 0)
    return (code | (sign.astype(np.int64) << 3)).astype(np.uint8)


def quant_fp8_block(w, block=128):
    """[out, in] float -> (e4m3 tensor [out, in], ue8m0 scale tensor [ceil(out/128), ceil(in/128)])."""
    w = w.double().numpy()
    out_f, in_f = w.shape
    nb_o, nb_i = -(-out_f // block), -(-in_f // block)
    padded = np.zeros((nb_o * block, nb_i * block))
    padded[:out_f, :in_f] = w
    blocks = padded.reshape(nb_o, block, nb_i, block)
    scale = pow2_scale(np.abs(blocks).max(axis=(1, 3)), 448.0)
    q = round_e4m3(blocks / scale[:, None, :, None]).reshape(nb_o * block, nb_i * block)[:out_f, :in_f]
    q_t = torch.from_numpy(q.astype(np.float32)).to(torch.float8_e4m3fn)
    assert torch.equal(q_t.float(), torch.from_numpy(q.astype(np.float32))), "e4m3 value not representable"
    return q_t, ue8m0_tensor(scale)


def quant_fp4_mx(w, block=32):
    """[out, in] float -> (int8 packed e2m1 [out, in/2], ue8m0 scale [out, in/32])."""
    w = w.double().numpy()
    out_f, in_f = w.shape
    assert in_f % block == 0
    blocks = w.reshape(out_f, in_f // block, block)
    scale = pow2_scale(np.abs(blocks).max(axis=2), 6.0)
    codes = round_e2m1_codes(blocks / scale[:, :, None]).reshape(out_f, in_f)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return torch.from_numpy(packed.view(np.int8).copy()), ue8m0_tensor(scale)


def ue8m0_tensor(scale):
    """Exact powers of two -> float8_e8m0fnu tensor (byte = exponent + 127)."""
    exp = np.log2(scale)
    assert np.all(exp == np.round(exp)) and exp.min() >= -127 and exp.max() <= 127
    return torch.from_numpy((exp + 127).astype(np.uint8)).view(torch.float8_e8m0fnu)


def ue8m0_values(scale_t):
    return torch.exp2(scale_t.view(torch.uint8).to(torch.float64) - 127.0)


def dequant_fp8_block(q, scale, block=128):
    out_f, in_f = q.shape
    s = ue8m0_values(scale).repeat_interleave(block, 0).repeat_interleave(block, 1)[:out_f, :in_f]
    return (q.to(torch.float64) * s).float()


def dequant_fp4_mx(packed, scale, block=32):
    b = packed.view(torch.uint8).to(torch.int64)
    codes = torch.stack([b & 0xF, b >> 4], dim=-1).flatten(-2)          # low nibble = even index
    mag = torch.tensor(E2M1_GRID, dtype=torch.float64)[codes & 7]
    val = torch.where((codes & 8) != 0, -mag, mag)
    return (val * ue8m0_values(scale).repeat_interleave(block, 1)).float()


def self_test_formats():
    """Check the own rounding against torch's float8 casts and the packers against the unpackers."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=g) * torch.exp2(torch.randint(-12, 9, (4096,), generator=g).float())
    x = x.clamp(-448, 448)
    mine = torch.from_numpy(round_e4m3(x.double().numpy()))
    ref = x.to(torch.float8_e4m3fn).double()
    assert torch.equal(mine, ref), "e4m3 rounding differs from torch"
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -2.5, 6.0, 7.0, 0.0, -0.1])
    want = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 0.0, -2.0, 6.0, 6.0, 0.0, 0.0]
    codes = torch.from_numpy(round_e2m1_codes(ties.double().numpy()).astype(np.int64))
    got = torch.tensor(E2M1_GRID)[codes & 7] * torch.where((codes & 8) != 0, -1.0, 1.0).double()
    assert got.tolist() == want, got.tolist()
    w = (torch.randn(130, 256, generator=g) * 0.05).to(torch.bfloat16).float()
    q, s = quant_fp8_block(w)
    assert s.shape == (2, 2) and (dequant_fp8_block(q, s) - w).abs().max() <= w.abs().max() / 16
    q4, s4 = quant_fp4_mx(w)
    assert q4.shape == (130, 128) and s4.shape == (130, 8)
    assert (dequant_fp4_mx(q4, s4) - w).abs().max() <= w.abs().max() / 4


# ---------------------------------------------------------------------------------------------
# Model construction and randomisation


def build_config(case, index_topk=None):
    from transformers import DeepseekV4Config

    kw = dict(COMMON_CONFIG)
    kw.update(copy.deepcopy(case["config"]))
    if index_topk is not None:
        kw["index_topk"] = index_topk
    rp = kw["rope_parameters"]
    kw["max_position_embeddings"] = int(rp["factor"] * rp["original_max_position_embeddings"])
    cfg = DeepseekV4Config(**kw)
    comp = cfg.rope_parameters["compress"]
    assert comp["rope_type"] == "yarn" and comp.get("attention_factor") == 1.0, cfg.rope_parameters
    assert cfg.qk_rope_head_dim == 64 and (cfg.head_dim - 64) % 64 == 0
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"    # the plain per-expert loop of the modeling file
    return cfg


def randomize(model, cfg, seed, expert_gain):
    """Give every parameter and persistent buffer a random, bf16-representable value."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g) * std + mean

    hc_in = cfg.hc_mult * cfg.hidden_size
    tensors = dict(model.named_parameters())
    tensors.update({n: b for n, b in model.named_buffers() if "inv_freq" not in n})
    for name, t in sorted(tensors.items()):
        shape = t.shape
        if name.endswith("tid2eid"):
            rows = [torch.randperm(cfg.n_routed_experts, generator=g)[: cfg.num_experts_per_tok]
                    for _ in range(shape[0])]
            t.data.copy_(torch.stack(rows))
            continue
        if name.endswith("embed_tokens.weight"):
            v = normal(shape, 1.0)
        elif name == "lm_head.weight":
            v = normal(shape, 2.0 / math.sqrt(shape[1]))
        elif name.endswith("norm.weight"):
            v = normal(shape, 0.1, 1.0)
        elif name.endswith("sinks"):
            v = normal(shape, 1.0)
        elif name.endswith("position_bias"):
            v = normal(shape, 0.5)
        elif name.endswith(("hc.fn", "hc_fn")):
            v = normal(shape, 1.0 / math.sqrt(hc_in))
        elif name.endswith(("hc.base", "hc_base")):
            v = normal(shape, 0.5)
        elif name.endswith(("hc.scale", "hc_scale")):
            v = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith("e_score_correction_bias"):
            v = normal(shape, 0.1)
        elif name.endswith("experts.gate_up_proj"):
            v = normal(shape, expert_gain / math.sqrt(shape[2]))
        elif name.endswith("experts.down_proj"):
            v = normal(shape, 1.0 / math.sqrt(shape[2]))
        elif name.endswith(".weight") and t.dim() == 2:
            v = normal(shape, 1.0 / math.sqrt(shape[1]))
        else:
            raise ValueError(f"no random init rule for {name} {tuple(shape)}")
        t.data.copy_(v.to(torch.bfloat16).float())


def make_model(cfg, seed, expert_gain):
    from transformers import DeepseekV4ForCausalLM

    torch.manual_seed(seed)
    model = DeepseekV4ForCausalLM(cfg).float().eval()
    randomize(model, cfg, seed, expert_gain)
    return model


# ---------------------------------------------------------------------------------------------
# Official layout


def official_entries(cfg):
    """(official name, transformers state-dict name, kind) for every official tensor except experts."""
    out = [("embed.weight", "model.embed_tokens.weight", "bf16"),
           ("head.weight", "lm_head.weight", "bf16"),
           ("norm.weight", "model.norm.weight", "bf16"),
           ("hc_head_fn", "model.hc_head.hc_fn", "f32"),
           ("hc_head_base", "model.hc_head.hc_base", "f32"),
           ("hc_head_scale", "model.hc_head.hc_scale", "f32")]
    for i, lt in enumerate(cfg.layer_types):
        o, h = f"layers.{i}.", f"model.layers.{i}."
        out += [(o + "attn_norm.weight", h + "input_layernorm.weight", "bf16"),
                (o + "ffn_norm.weight", h + "post_attention_layernorm.weight", "bf16")]
        for site, hsite in (("attn", "attn_hc"), ("ffn", "ffn_hc")):
            for part in ("fn", "base", "scale"):
                out.append((f"{o}hc_{site}_{part}", f"{h}{hsite}.{part}", "f32"))
        a, ha = o + "attn.", h + "self_attn."
        out += [(a + "attn_sink", ha + "sinks", "f32"),
                (a + "wq_a", ha + "q_a_proj.weight", "fp8"),
                (a + "q_norm.weight", ha + "q_a_norm.weight", "bf16"),
                (a + "wq_b", ha + "q_b_proj.weight", "fp8"),
                (a + "wkv", ha + "kv_proj.weight", "fp8"),
                (a + "kv_norm.weight", ha + "kv_norm.weight", "bf16"),
                (a + "wo_a.weight", ha + "o_a_proj.weight", "bf16"),
                (a + "wo_b", ha + "o_b_proj.weight", "fp8")]
        comps = [] if lt == SWA else [(a + "compressor.", ha + "compressor.")]
        if lt == CSA:
            comps.append((a + "indexer.compressor.", ha + "compressor.indexer."))
            out += [(a + "indexer.wq_b", ha + "compressor.indexer.q_b_proj.weight", "fp8"),
                    (a + "indexer.weights_proj.weight", ha + "compressor.indexer.scorer.weights_proj.weight", "bf16")]
        for oc, hc in comps:
            out += [(oc + "wkv.weight", hc + "kv_proj.weight", "bf16"),
                    (oc + "wgate.weight", hc + "gate_proj.weight", "bf16"),
                    (oc + "ape", hc + "position_bias", "f32"),
                    (oc + "norm.weight", hc + "kv_norm.weight", "bf16")]
        f, hf = o + "ffn.", h + "mlp."
        out.append((f + "gate.weight", hf + "gate.weight", "bf16"))
        if cfg.mlp_layer_types[i] == HASH:
            out.append((f + "gate.tid2eid", hf + "gate.tid2eid", "i64"))
        else:
            out.append((f + "gate.bias", hf + "gate.e_score_correction_bias", "f32"))
        for w, part in (("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")):
            out.append((f"{f}shared_experts.{w}", f"{hf}shared_experts.{part}.weight", "fp8"))
    return out


def to_official(sd, cfg):
    """transformers state dict (fp32, bf16-valued) -> {official name: tensor in the official dtype}."""
    out = {}
    for oname, hname, kind in official_entries(cfg):
        t = sd[hname]
        if kind == "fp8":
            out[oname + ".weight"], out[oname + ".scale"] = quant_fp8_block(t)
        elif kind == "bf16":
            out[oname] = t.to(torch.bfloat16)
        elif kind == "f32":
            out[oname] = t.float().clone()
        else:
            out[oname] = t.to(torch.int64).clone()
    inter = cfg.moe_intermediate_size
    for i in range(cfg.num_hidden_layers):
        gate_up = sd[f"model.layers.{i}.mlp.experts.gate_up_proj"]
        down = sd[f"model.layers.{i}.mlp.experts.down_proj"]
        for e in range(cfg.n_routed_experts):
            p = f"layers.{i}.ffn.experts.{e}."
            for w, t in (("w1", gate_up[e, :inter]), ("w3", gate_up[e, inter:]), ("w2", down[e])):
                out[p + w + ".weight"], out[p + w + ".scale"] = quant_fp4_mx(t)
    return out


def from_official(tensors, cfg):
    """Official tensors -> transformers state dict in float32 (dequantized)."""
    sd = {}
    for oname, hname, kind in official_entries(cfg):
        if kind == "fp8":
            sd[hname] = dequant_fp8_block(tensors[oname + ".weight"], tensors[oname + ".scale"])
        elif kind == "i64":
            sd[hname] = tensors[oname]
        else:
            sd[hname] = tensors[oname].float()
    for i in range(cfg.num_hidden_layers):
        w = {k: [] for k in ("w1", "w2", "w3")}
        for e in range(cfg.n_routed_experts):
            for k in w:
                p = f"layers.{i}.ffn.experts.{e}.{k}"
                w[k].append(dequant_fp4_mx(tensors[p + ".weight"], tensors[p + ".scale"]))
        sd[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([a, b], 0) for a, b in zip(w["w1"], w["w3"])])
        sd[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack(w["w2"])
    return sd


def layer_ratios(cfg):
    return [0 if lt == SWA else cfg.compress_rates[lt] for lt in cfg.layer_types]


def official_hf_config(cfg, case):
    """config.json in the Hugging Face root spelling that DeepSeek's V4 repositories ship."""
    comp = cfg.rope_parameters["compress"]
    ratios = layer_ratios(cfg) + ([0] if case["mtp_tail_entry"] else [])
    return {
        "architectures": ["DeepseekV4ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "expert_dtype": "fp4",
        "hc_eps": cfg.hc_eps,
        "hc_mult": cfg.hc_mult,
        "hc_sinkhorn_iters": cfg.hc_sinkhorn_iters,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "hidden_size": cfg.hidden_size,
        "index_head_dim": cfg.index_head_dim,
        "index_n_heads": cfg.index_n_heads,
        "index_topk": cfg.index_topk,
        "initializer_range": 0.02,
        "max_position_embeddings": cfg.max_position_embeddings,
        "model_type": "deepseek_v4",
        "moe_intermediate_size": cfg.moe_intermediate_size,
        "n_routed_experts": cfg.n_routed_experts,
        "n_shared_experts": cfg.n_shared_experts,
        "norm_topk_prob": True,
        "num_attention_heads": cfg.num_attention_heads,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_hash_layers": cfg.mlp_layer_types.count(HASH),
        "num_key_value_heads": 1,
        "num_nextn_predict_layers": 0,
        "o_groups": cfg.o_groups,
        "o_lora_rank": cfg.o_lora_rank,
        "q_lora_rank": cfg.q_lora_rank,
        "qk_rope_head_dim": cfg.qk_rope_head_dim,
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "scale_fmt": "ue8m0", "weight_block_size": [128, 128]},
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_scaling": {"beta_fast": comp["beta_fast"], "beta_slow": comp["beta_slow"],
                         "factor": comp["factor"],
                         "original_max_position_embeddings": comp["original_max_position_embeddings"],
                         "type": "yarn"},
        "rope_theta": cfg.rope_theta,
        "routed_scaling_factor": cfg.routed_scaling_factor,
        "scoring_func": cfg.scoring_func,
        "sliding_window": cfg.sliding_window,
        "swiglu_limit": cfg.swiglu_limit,
        "tie_word_embeddings": False,
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.1",
        "use_cache": True,
        "vocab_size": cfg.vocab_size,
        "compress_rope_theta": cfg.compress_rope_theta,
        "compress_ratios": ratios,
    }


def official_inference_config(cfg, case):
    """inference/config.json in the spelling of DeepSeek's inference/model.py ModelArgs."""
    comp = cfg.rope_parameters["compress"]
    ratios = layer_ratios(cfg) + ([0] if case["mtp_tail_entry"] else [])
    return {
        "vocab_size": cfg.vocab_size,
        "dim": cfg.hidden_size,
        "moe_inter_dim": cfg.moe_intermediate_size,
        "n_layers": cfg.num_hidden_layers,
        "n_hash_layers": cfg.mlp_layer_types.count(HASH),
        "n_mtp_layers": 0,
        "n_heads": cfg.num_attention_heads,
        "n_routed_experts": cfg.n_routed_experts,
        "n_shared_experts": cfg.n_shared_experts,
        "n_activated_experts": cfg.num_experts_per_tok,
        "score_func": cfg.scoring_func,
        "route_scale": cfg.routed_scaling_factor,
        "swiglu_limit": cfg.swiglu_limit,
        "q_lora_rank": cfg.q_lora_rank,
        "head_dim": cfg.head_dim,
        "rope_head_dim": cfg.qk_rope_head_dim,
        "norm_eps": cfg.rms_norm_eps,
        "o_groups": cfg.o_groups,
        "o_lora_rank": cfg.o_lora_rank,
        "window_size": cfg.sliding_window,
        "original_seq_len": comp["original_max_position_embeddings"],
        "rope_theta": cfg.rope_theta,
        "rope_factor": comp["factor"],
        "beta_fast": comp["beta_fast"],
        "beta_slow": comp["beta_slow"],
        "index_n_heads": cfg.index_n_heads,
        "index_head_dim": cfg.index_head_dim,
        "index_topk": cfg.index_topk,
        "hc_mult": cfg.hc_mult,
        "hc_sinkhorn_iters": cfg.hc_sinkhorn_iters,
        "hc_eps": cfg.hc_eps,
        "dtype": "fp8",
        "scale_fmt": "ue8m0",
        "expert_dtype": "fp4",
        "compress_rope_theta": cfg.compress_rope_theta,
        "compress_ratios": ratios,
    }


def write_official(tensors, cfg, case, out_dir):
    from safetensors.torch import save_file

    os.makedirs(os.path.join(out_dir, "inference"), exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        hf_cfg = int_if_integral(official_hf_config(cfg, case))
        hf_cfg["rope_scaling"] = int_if_integral(hf_cfg["rope_scaling"])
        json.dump(hf_cfg, f, indent=2)
    with open(os.path.join(out_dir, "inference", "config.json"), "w") as f:
        json.dump(int_if_integral(official_inference_config(cfg, case)), f, indent=2)
    names = sorted(tensors)
    n = case["shards"]
    if n == 1:
        save_file({k: tensors[k].contiguous() for k in names}, os.path.join(out_dir, "model.safetensors"),
                  metadata={"format": "pt"})
        return ["model.safetensors"]
    # Split by layer: embed + first half of the layers, then the rest + head/norm/hc_head.
    half = cfg.num_hidden_layers // 2

    def shard_of(name):
        if name.startswith("layers."):
            return 0 if int(name.split(".")[1]) < half else 1
        return 0 if name.startswith("embed") else 1

    files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map, total = {}, 0
    for i, fname in enumerate(files):
        part = {k: tensors[k].contiguous() for k in names if shard_of(k) == i}
        save_file(part, os.path.join(out_dir, fname), metadata={"format": "pt"})
        for k, t in part.items():
            weight_map[k] = fname
            total += t.numel() * t.element_size()
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    return files


def read_official(out_dir):
    from safetensors import safe_open

    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))
    tensors = {}
    for fname in files:
        with safe_open(os.path.join(out_dir, fname), framework="pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    return tensors


# ---------------------------------------------------------------------------------------------
# Running the three call patterns


class MarginProbe:
    """Records the smallest relative gap at the top-k boundary of the indexer and the router,
    and how often the routed experts' SwiGLU clamp is hit."""

    def __init__(self, model, cfg):
        from transformers.models.deepseek_v4 import modeling_deepseek_v4 as m

        self.cfg, self.active, self.index_gap, self.router_gap = cfg, False, math.inf, math.inf
        self.clamp = {"gate_above_limit": 0, "up_outside_limit": 0, "values": 0}
        self.handles, self.experts = [], []
        for mod in model.modules():
            if isinstance(mod, m.DeepseekV4IndexerScorer):
                self.handles.append(mod.register_forward_hook(self._index_hook))
            elif isinstance(mod, m.DeepseekV4TopKRouter):
                self.handles.append(mod.register_forward_hook(self._router_hook))
            elif isinstance(mod, m.DeepseekV4Experts):
                mod._apply_gate = self._counting_gate(mod, type(mod)._apply_gate.__get__(mod))
                self.experts.append(mod)

    def _counting_gate(self, mod, inner):
        def gate(gate_up):
            if self.active:
                g, u = gate_up.chunk(2, dim=-1)
                self.clamp["gate_above_limit"] += int((g > mod.limit).sum())
                self.clamp["up_outside_limit"] += int((u.abs() > mod.limit).sum())
                self.clamp["values"] += g.numel()
            return inner(gate_up)
        return gate

    @staticmethod
    def _gap(sorted_desc, k):
        scale = sorted_desc.abs().max().clamp_min(1e-30)
        return float((sorted_desc[..., k - 1] - sorted_desc[..., k]) / scale)

    def _index_hook(self, mod, inputs, scores):
        if not self.active:
            return
        ratio, k = self.cfg.compress_rates[CSA], self.cfg.index_topk
        for p in range(scores.shape[1]):          # prefill from position 0: query p sees (p+1)//ratio
            n = (p + 1) // ratio
            if n > k:
                s = scores[0, p, :n].double().sort(descending=True).values
                self.index_gap = min(self.index_gap, self._gap(s, k))

    def _router_hook(self, mod, inputs, outputs):
        if not self.active:
            return
        logits = outputs[0].double()
        s = torch.sqrt(torch.nn.functional.softplus(logits)) + mod.e_score_correction_bias.double()
        s = s.sort(dim=-1, descending=True).values
        k = mod.top_k
        scale = s.abs().max(dim=-1).values.clamp_min(1e-30)
        self.router_gap = min(self.router_gap, float(((s[:, k - 1] - s[:, k]) / scale).min()))

    def remove(self):
        for h in self.handles:
            h.remove()
        for mod in self.experts:
            del mod._apply_gate


def run_pattern(model, cfg, ids, chunks):
    """Logits [L, vocab] feeding `chunks` as prefill calls, then the remaining ids one at a time."""
    from transformers import DynamicCache

    cache = DynamicCache(config=cfg)
    sizes = list(chunks) + [1] * (len(ids) - sum(chunks))
    outs, pos = [], 0
    with torch.no_grad():
        for n in sizes:
            x = torch.tensor([ids[pos:pos + n]], dtype=torch.long)
            outs.append(model(input_ids=x, past_key_values=cache, use_cache=True).logits[0].float())
            pos += n
    return torch.cat(outs).numpy()


def rel_l2(a, b):
    """Max over positions of ||a - b|| / ||b||."""
    num = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=-1)
    den = np.linalg.norm(b.astype(np.float64), axis=-1)
    return float((num / np.maximum(den, 1e-30)).max())


def run_all(model, cfg, ids, chunks):
    """The three patterns plus agreement and top-k margins."""
    probe = MarginProbe(model, cfg)
    probe.active = True
    prefill = run_pattern(model, cfg, ids, [len(ids)])
    probe.active = False
    probe.remove()
    decode = run_pattern(model, cfg, ids, [len(ids) - 1])
    chunked = run_pattern(model, cfg, ids, chunks)
    stats = {"decode_vs_prefill": rel_l2(decode, prefill), "chunks_vs_prefill": rel_l2(chunked, prefill),
             "min_index_gap": probe.index_gap, "min_router_gap": probe.router_gap,
             "swiglu_clamp_prefill": probe.clamp}
    return {"prefill": prefill, "decode": decode, "chunks": chunked}, stats


def acceptable(stats):
    return (stats["decode_vs_prefill"] <= AGREE_TOL and stats["chunks_vs_prefill"] <= AGREE_TOL
            and stats["min_index_gap"] >= MARGIN_TOL and stats["min_router_gap"] >= MARGIN_TOL)


# ---------------------------------------------------------------------------------------------
# One case end to end


def save_hf(model, out_dir):
    """What `from_pretrained(dtype=bfloat16).save_pretrained()` writes: BF16, except the tensors
    transformers keeps in float32 (_keep_in_fp32_modules_strict). The values are bf16-exact."""
    from transformers import DeepseekV4ForCausalLM

    tmp = out_dir + ".fp32"
    model.save_pretrained(tmp, safe_serialization=True)
    bf = DeepseekV4ForCausalLM.from_pretrained(tmp, dtype=torch.bfloat16, experts_implementation="eager")
    bf.save_pretrained(out_dir, safe_serialization=True)
    shutil.rmtree(tmp)
    p = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)


def check_hf_roundtrip(hf_dir, cfg, ids, ref):
    """Load hf/ back with from_pretrained (float32) and compare the prefill logits."""
    from transformers import DeepseekV4ForCausalLM

    m = DeepseekV4ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, experts_implementation="eager").eval()
    assert m.config._experts_implementation == "eager"
    return rel_l2(run_pattern(m, m.config, ids, [len(ids)]), ref)


def tensor_summary(path_dir):
    """{name: [dtype, shape]} over all safetensors files in a directory."""
    from safetensors import safe_open

    out = {}
    for fname in sorted(f for f in os.listdir(path_dir) if f.endswith(".safetensors")):
        with safe_open(os.path.join(path_dir, fname), framework="pt") as f:
            for k in f.keys():
                t = f.get_slice(k)
                out[k] = [t.get_dtype(), list(t.get_shape())]
    return out


def generate_case(name, case, out_root, max_tries, seed_override=None):
    L, chunks = case["length"], case["chunks"]
    assert sum(chunks) < L and chunks[0] % 4 != 0, "chunks must leave ids to decode; c1 not window-aligned"
    topk_choices = [case["config"]["index_topk"]]
    if case["topk_fallback"]:
        topk_choices.append(L // case["config"]["compress_rates"][CSA])   # keep every entry
    base_seed = case["seed"] if seed_override is None else seed_override
    for topk in topk_choices:
        cfg = build_config(case, topk)
        for attempt in range(max_tries):
            seed = base_seed + attempt
            ids = torch.randint(2, cfg.vocab_size, (L,), generator=torch.Generator().manual_seed(seed + 7)).tolist()
            model = make_model(cfg, seed, case["expert_gain"])
            hf_logits, hf_stats = run_all(model, cfg, ids, chunks)
            print(f"[{name}] seed {seed} index_topk {cfg.index_topk} hf: " + fmt_stats(hf_stats), flush=True)
            if not acceptable(hf_stats):
                continue
            off_tensors = to_official(model.state_dict(), cfg)
            off_model = copy.deepcopy(model)
            off_model.load_state_dict(from_official(off_tensors, cfg), strict=True)
            off_logits, off_stats = run_all(off_model, cfg, ids, chunks)
            print(f"[{name}] seed {seed} official: " + fmt_stats(off_stats), flush=True)
            if acceptable(off_stats):
                return write_case(name, case, cfg, seed, ids, model, hf_logits, hf_stats, off_tensors,
                                  off_model, off_logits, off_stats, out_root)
    raise RuntimeError(f"{name}: no seed within {max_tries} tries passed the agreement / margin checks")


def finite_or_none(stats):
    """JSON has no Infinity: a gap with no top-k boundary to measure becomes null."""
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in stats.items()}


def int_if_integral(d):
    """DeepSeek's configs spell integral numbers as integers (rope_theta 10000, factor 16)."""
    return {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in d.items()}


def fmt_stats(s):
    return (f"decode {s['decode_vs_prefill']:.2e} chunks {s['chunks_vs_prefill']:.2e} "
            f"index_gap {s['min_index_gap']:.2e} router_gap {s['min_router_gap']:.2e}")


def write_case(name, case, cfg, seed, ids, model, hf_logits, hf_stats, off_tensors, off_model, off_logits,
               off_stats, out_root):
    out_dir = os.path.join(out_root, name)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    hf_dir, off_dir = os.path.join(out_dir, "hf"), os.path.join(out_dir, "official")
    save_hf(model, hf_dir)
    write_official(off_tensors, cfg, case, off_dir)

    # The official reference must be reproducible from the files as written.
    reread = from_official(read_official(off_dir), cfg)
    cur = off_model.state_dict()
    assert all(torch.equal(reread[k], cur[k].to(reread[k].dtype)) for k in reread), "official files mismatch"
    hf_roundtrip = check_hf_roundtrip(hf_dir, cfg, ids, hf_logits["prefill"])
    print(f"[{name}] hf from_pretrained round trip: {hf_roundtrip:.2e}", flush=True)

    for prefix, logits in (("hf", hf_logits), ("official", off_logits)):
        for pattern, arr in logits.items():
            np.save(os.path.join(out_dir, f"{prefix}_{pattern}.npy"), arr.astype(np.float32))

    L, ratio = len(ids), cfg.compress_rates[CSA]
    csa_layers = [i for i, t in enumerate(cfg.layer_types) if t == CSA]
    hca_layers = [i for i, t in enumerate(cfg.layer_types) if t == HCA]
    quant_diff = rel_l2(off_logits["prefill"], hf_logits["prefill"])
    case_json = {
        "name": name,
        "description": case["description"],
        "seed": seed,
        "ids": ids,
        "length": L,
        "chunks": case["chunks"],
        "patterns": {
            "prefill": "one forward over all ids (fresh cache)",
            "decode": f"prefill ids[:{L - 1}] then decode the last id (--chunks {L - 1})",
            "chunks": "prefill chunks of sizes {} then decode the remaining ids one at a time (--chunks {})".format(
                case["chunks"], ",".join(map(str, case["chunks"]))),
        },
        "logits": {f"{p}_{k}.npy": f"float32 [{L}, {cfg.vocab_size}]" for p in ("hf", "official")
                   for k in ("prefill", "decode", "chunks")},
        "layer_types": cfg.layer_types,
        "mlp_layer_types": cfg.mlp_layer_types,
        "compress_ratios": layer_ratios(cfg),
        "sliding_window": cfg.sliding_window,
        "index_topk": cfg.index_topk,
        "csa_layers": csa_layers,
        "csa_entries_at_last_position": L // ratio,
        "csa_positions_where_selection_drops": sum(1 for p in range(L) if (p + 1) // ratio > cfg.index_topk),
        "hca_layers": hca_layers,
        "hca_entries_at_last_position": {str(i): L // cfg.compress_rates[HCA] for i in hca_layers},
        "agreement_rel_l2": {"hf": finite_or_none(hf_stats), "official": finite_or_none(off_stats)},
        "hf_from_pretrained_vs_reference_rel_l2": hf_roundtrip,
        "official_vs_hf_prefill_rel_l2": quant_diff,
        "tolerance_fp32_mode": 1e-4,
        "generator": {"script": "tools/gen_reference.py", "torch": torch.__version__,
                      "transformers": __import__("transformers").__version__},
        "tensors": {"hf": tensor_summary(hf_dir), "official": tensor_summary(off_dir)},
    }
    with open(os.path.join(out_dir, "case.json"), "w") as f:
        json.dump(case_json, f, indent=1, allow_nan=False)
    print(f"[{name}] written: official vs hf prefill {quant_diff:.3e}", flush=True)
    return case_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/golden", help="output folder (one subfolder per case)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--max-tries", type=int, default=12, help="seeds tried per case before giving up")
    ap.add_argument("--seed", type=int, default=None, help="override the base seed of every case")
    ap.add_argument("--length", type=int, default=None, help="override the sequence length (smoke tests)")
    ap.add_argument("--threads", type=int, default=4, help="torch CPU threads")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    import transformers

    transformers.logging.set_verbosity_error()
    self_test_formats()
    os.makedirs(args.out, exist_ok=True)
    for name in args.cases.split(","):
        case = copy.deepcopy(CASES[name])
        if args.length:
            case["length"] = args.length
        generate_case(name, case, args.out, args.max_tries, args.seed)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"total fixture size: {total / 1e6:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
