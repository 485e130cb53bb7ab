"""The reference models' state-dict names and shapes, written down from their module code.

Source: zoology (the fork tinylang uses) and tinylang's `model/zoology.py`: `LMBackbone` with
`TransformerBlock` (`norm1`, `sequence_mixer`, `norm2`, `state_mixer` = `MLP(fc1, fc2)`) or
`MambaBlock` (`norm`, `sequence_mixer`), `ln_f`, tied `lm_head`; the mixers `MHA` (attention),
`BaseConv` (`ShortConvolution` or `ImplicitLongConvolution`), `Hybrid` (based: `.mixer` wraps
BaseConv on even layers and `Based` on odd ones), `Hyena` (`Filter` with `PositionalEmbedding`,
a `Sin` module shared three times in `implicit_filter`, `ExponentialModulation`; `t` and `deltas`
are buffers), `H3` (`SSKernelShift`, `SSKernelDiag`), `mamba_simple.Mamba` (and tinylang's
`MambaWithoutConv`, which keeps Mamba's default `conv1d` of kernel 4 but never uses it).

Every `kind` is one of: `param` (counted by `model.parameters()`), `buffer` (in the state dict,
not a parameter), `shared` (the same Parameter listed again under another name, counted once)
and `tied` (`lm_head.weight`, the word embedding). The script checks the parameter counts
against the paper's table (`reference/paper-setup.md` §2) before it writes
`tests/fixtures/state_dicts.json`; `tests/export_names.rs` holds mechlab's exports to it.

    python tests/reference/state_dicts.py
"""

import json
import math
from pathlib import Path

L_MAX = 1024
POSITIONS = 1024


def mixer_entries(kind, layer, d, conv):
    """(local name, shape, kind) of one layer's sequence mixer."""
    p = "param"
    if kind == "attention":
        return [("Wqkv.weight", [3 * d, d], p), ("out_proj.weight", [d, d], p), ("out_proj.bias", [d], p)]
    if kind == "base_conv_short":
        return [("projection.weight", [d, d], p), ("projection.bias", [d], p),
                ("conv.conv.weight", [d, 1, conv], p), ("conv.conv.bias", [d], p)]
    if kind == "base_conv_long":
        return [("projection.weight", [d, d], p), ("projection.bias", [d], p),
                ("conv.pos_emb.z", [1, L_MAX, 3], p),
                ("conv.mlp.0.weight", [16, 3], p), ("conv.mlp.0.bias", [16], p),
                ("conv.mlp.2.weight", [d, 16], p), ("conv.mlp.2.bias", [d], p)]
    if kind == "based_attention":
        f = 8
        return [("proj_q.weight", [f, d], p), ("proj_k.weight", [f, d], p),
                ("proj_v.weight", [d, d], p), ("proj_o.weight", [d, d], p)]
    if kind == "hyena":
        o = 64
        return [("in_proj.weight", [3 * d, d], p), ("in_proj.bias", [3 * d], p),
                ("out_proj.weight", [d, d], p), ("out_proj.bias", [d], p),
                ("short_filter.weight", [3 * d, 1, 3], p), ("short_filter.bias", [3 * d], p),
                ("filter_fn.bias", [d], p),
                ("filter_fn.pos_emb.z", [1, L_MAX, 3], p), ("filter_fn.pos_emb.t", [1, L_MAX, 1], "buffer"),
                ("filter_fn.implicit_filter.0.weight", [o, 3], p), ("filter_fn.implicit_filter.0.bias", [o], p),
                ("filter_fn.implicit_filter.1.freq", [1, o], p),
                ("filter_fn.implicit_filter.2.weight", [o, o], p), ("filter_fn.implicit_filter.2.bias", [o], p),
                ("filter_fn.implicit_filter.3.freq", [1, o], "shared"),
                ("filter_fn.implicit_filter.4.weight", [o, o], p), ("filter_fn.implicit_filter.4.bias", [o], p),
                ("filter_fn.implicit_filter.5.freq", [1, o], "shared"),
                ("filter_fn.implicit_filter.6.weight", [d, o], p),
                ("filter_fn.modulation.deltas", [1, 1, d], "buffer")]
    if kind == "h3":
        h, n = d // 2, L_MAX  # head_dim 2; d_state = l_max
        return [("q_proj.weight", [d, d], p), ("q_proj.bias", [d], p),
                ("k_proj.weight", [d, d], p), ("k_proj.bias", [d], p),
                ("v_proj.weight", [d, d], p), ("v_proj.bias", [d], p),
                ("ssm_k_kernel.kernel.B", [d, n], p), ("ssm_k_kernel.kernel.C", [1, d, n], p),
                ("ssm_k_D", [d], p),
                ("kernel.kernel.log_dt", [h], p), ("kernel.kernel.C", [1, h, n // 2, 2], p),
                ("kernel.kernel.B", [h, n // 2, 2], p), ("kernel.kernel.inv_A_real", [h, n // 2], p),
                ("kernel.kernel.A_imag", [h, n // 2], p), ("D", [h], p),
                ("output_linear.weight", [d, d], p), ("output_linear.bias", [d], p)]
    if kind == "mamba":
        di, n, r = 2 * d, 16, math.ceil(d / 16)
        k = conv if conv > 0 else 4  # MambaWithoutConv: Mamba's default conv1d, unused
        return [("in_proj.weight", [2 * di, d], p),
                ("conv1d.weight", [di, 1, k], p), ("conv1d.bias", [di], p),
                ("x_proj.weight", [r + 2 * n, di], p),
                ("dt_proj.weight", [di, r], p), ("dt_proj.bias", [di], p),
                ("A_log", [di, n], p), ("D", [di], p), ("out_proj.weight", [d, di], p)]
    if kind == "delta_net":
        h, k = 2, 4  # zoology's add_delta_net: num_heads 2, conv_size 4; no biases, no gate
        return [("q_proj.weight", [d, d], p), ("k_proj.weight", [d, d], p),
                ("v_proj.weight", [d, d], p), ("b_proj.weight", [h, d], p),
                ("q_conv1d.weight", [d, 1, k], p), ("k_conv1d.weight", [d, 1, k], p),
                ("v_conv1d.weight", [d, 1, k], p), ("o_norm.weight", [d // h], p),
                ("o_proj.weight", [d, d], p)]
    if kind == "mamba2":
        # mamba_ssm 2.2.4's Mamba2(bias=False), defaults: expand 2, d_state 128, one group, d_conv 4;
        # headdim 64 does not divide d_inner 32 at d 16 (mamba_ssm asserts): there 4 heads of 8.
        i, n = 2 * d, 128
        h = i // 64 if i % 64 == 0 else 4
        return [("dt_bias", [h], p), ("A_log", [h], p), ("D", [h], p),
                ("in_proj.weight", [2 * i + 2 * n + h, d], p),
                ("conv1d.weight", [i + 2 * n, 1, conv], p), ("conv1d.bias", [i + 2 * n], p),
                ("norm.weight", [i], p), ("out_proj.weight", [d, i], p)]
    if kind == "gla":
        h, r = 2, 16  # zoology's add_gla: num_heads 2; fla's gate_low_rank_dim 16, expand_k 0.5
        return [("q_proj.weight", [d // 2, d], p), ("k_proj.weight", [d // 2, d], p),
                ("v_proj.weight", [d, d], p), ("g_proj.weight", [d, d], p),
                ("gk_proj.0.weight", [r, d], p), ("gk_proj.1.weight", [d // 2, r], p),
                ("gk_proj.1.bias", [d // 2], p), ("o_proj.weight", [d, d], p),
                ("g_norm_swish_gate.weight", [d // h], p)]
    raise ValueError(kind)


def model(name, vocab, d, layers=2):
    """The state dict of the reference's model `name`."""
    mixer, conv = name, 3
    if name == "mamba2":
        mixer, conv = "mamba2", 4
    elif name.startswith("mamba"):
        mixer, conv = "mamba", int(name[len("mamba_conv"):]) if name != "mamba" else 4
    out = [("backbone.embeddings.word_embeddings.weight", [vocab, d], "param")]
    if name == "attention":
        out.append(("backbone.embeddings.position_embeddings.weight", [POSITIONS, d], "param"))
    for l in range(layers):
        p = f"backbone.layers.{l}"
        seq = f"{p}.sequence_mixer"
        if mixer == "attention":
            local = mixer_entries("attention", l, d, conv)
        elif mixer == "base_conv":
            local = mixer_entries("base_conv_short" if l % 2 == 0 else "base_conv_long", l, d, 3)
        elif mixer.startswith("based"):
            seq += ".mixer"  # zoology's Hybrid
            if l % 2 == 1:
                local = mixer_entries("based_attention", l, d, conv)
            elif name == "based_long":
                local = mixer_entries("base_conv_long", l, d, conv)
            else:
                local = mixer_entries("base_conv_short", l, d, 1 if name == "based_k1" else 3)
        else:
            local = mixer_entries(mixer, l, d, conv)
        if mixer in ("mamba", "mamba2"):
            out.append((f"{p}.norm.weight", [d], "param"))
            out += [(f"{seq}.{n}", s, k) for n, s, k in local]
            continue
        out += [(f"{p}.norm1.weight", [d], "param"), (f"{p}.norm1.bias", [d], "param")]
        out += [(f"{seq}.{n}", s, k) for n, s, k in local]
        out += [(f"{p}.norm2.weight", [d], "param"), (f"{p}.norm2.bias", [d], "param"),
                (f"{p}.state_mixer.fc1.weight", [4 * d, d], "param"), (f"{p}.state_mixer.fc1.bias", [4 * d], "param"),
                (f"{p}.state_mixer.fc2.weight", [d, 4 * d], "param"), (f"{p}.state_mixer.fc2.bias", [d], "param")]
    out += [("backbone.ln_f.weight", [d], "param"), ("backbone.ln_f.bias", [d], "param"),
            ("lm_head.weight", [vocab, d], "tied")]
    return out


def count(entries):
    return sum(math.prod(s) for _, s, k in entries if k == "param")


# The paper's parameter counts (reference/paper-setup.md §2): vocab -> mixer -> {d: count}.
PAPER = {
    8196: {"attention": {16: 154_016, 64: 689_792}, "based": {16: 136_656, 64: 604_992},
           "base_conv": {16: 139_568, 64: 604_160}, "h3": {16: 252_480, 64: 1_083_648},
           "hyena": {16: 163_616, 64: 657_920}, "mamba": {16: 137_920, 64: 590_080}},
    26: {"attention": {16: 23_296, 64: 166_912}, "mamba": {16: 7_200, 64: 67_200}},
}

MODELS = ["attention", "based", "base_conv", "h3", "hyena", "mamba",
          "based_long", "based_k1", "mamba_conv0", "mamba_conv2", "delta_net", "gla", "mamba2"]


def check_against_fla():
    """With flash-linear-attention installed (pip install fla-core), DeltaNet's and GLA's lists
    above must be their modules' own named_parameters() at both widths."""
    try:
        from fla.layers import DeltaNet, GatedLinearAttention
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"flash-linear-attention not importable ({type(e).__name__}): its check skipped")
        return
    for d in (16, 64):
        module = DeltaNet(hidden_size=d, num_heads=2, conv_size=4)
        theirs = [(n, list(t.shape)) for n, t in module.named_parameters()]
        ours = [(n, s) for n, s, _ in mixer_entries("delta_net", 1, d, 4)]
        assert theirs == ours, (d, theirs, ours)
        module = GatedLinearAttention(hidden_size=d, num_heads=2)
        theirs = [(n, list(t.shape)) for n, t in module.named_parameters()]
        ours = [(n, s) for n, s, _ in mixer_entries("gla", 1, d, 0)]
        assert theirs == ours, (d, theirs, ours)
    print("delta_net's and gla's names and shapes are fla DeltaNet's and GatedLinearAttention's")


def main():
    check_against_fla()
    for vocab, mixers in PAPER.items():
        for name, cells in mixers.items():
            for d, expected in cells.items():
                got = count(model(name, vocab, d))
                assert got == expected, (vocab, name, d, got, expected)
    out = {"vocab": 8196, "layers": 2, "l_max": L_MAX, "models": {}}
    for name in MODELS:
        for d in (16, 64):
            entries = model(name, 8196, d)
            out["models"][f"{name}/{d}"] = {
                "params": count(entries),
                "entries": [{"name": n, "shape": s, "kind": k} for n, s, k in entries],
            }
    path = Path(__file__).resolve().parents[1] / "fixtures" / "state_dicts.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"parameter counts match the paper; wrote {path}")


if __name__ == "__main__":
    main()
