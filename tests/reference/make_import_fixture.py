"""A DeltaNet and a GLA language model whose state dicts are written by flash-linear-attention's
own `DeltaNet` and `GatedLinearAttention` modules (`module.state_dict()`: their names, layouts
and shapes), in zoology's LM names
(`backbone.layers.{l}.sequence_mixer.…`, LayerNorm blocks with a GELU MLP, tied head), for
`tests/cli/import.rs` and `tests/reference_numerics.rs`: mechlab imports it (`model.weights`)
and must compute the logits PyTorch computes for it.

  tests/fixtures/import/{delta_net,gla}_fla.safetensors     the state dict, nothing else
  tests/fixtures/import/{delta_net,gla}_fla_io.safetensors  input.tokens (i64 [2, 11]) and
                                                            output.logits (f32 [2, 11, 20],
                                                            float64 computed, rounded)

Sizes: TINY's AR task of the CLI tests (vocab 20), d_model 16, 2 layers, 2 heads (DeltaNet: short
convs of 4; GLA: fla's defaults otherwise). fla cannot run its layers on a CPU (Triton), so the
logits come from the reference formulas (tests/reference/mixers.py: delta_net, gla), on the
modules' own parameters.

    pip install fla-core einops transformers    # flash-linear-attention, CPU is enough
    python tests/reference/make_import_fixture.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fla.layers import DeltaNet, GatedLinearAttention  # noqa: E402

import mixers  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402

V, D, LAYERS = 20, 16, 2
OUT = Path(__file__).resolve().parent.parent / "fixtures" / "import"


# kind -> (seed, the fla module of layer l, its norm weight's name, the reference formulas)
KINDS = {
    "delta_net": (
        26,
        lambda l: DeltaNet(hidden_size=D, num_heads=2, conv_size=4, layer_idx=l),
        "o_norm",
        mixers.delta_net,
    ),
    "gla": (
        27,
        lambda l: GatedLinearAttention(hidden_size=D, num_heads=2, layer_idx=l),
        "g_norm_swish_gate",
        mixers.gla,
    ),
}


def build(kind):
    seed, make, norm, formula = KINDS[kind]
    torch.manual_seed(seed)
    state = {"backbone.embeddings.word_embeddings.weight": 0.5 * torch.randn(V, D)}
    for l in range(LAYERS):
        p = f"backbone.layers.{l}"
        module = make(l)
        with torch.no_grad():
            weight = getattr(module, norm).weight
            weight.add_(0.1 * torch.randn(weight.shape))
        state[f"{p}.norm1.weight"] = 1 + 0.1 * torch.randn(D)
        state[f"{p}.norm1.bias"] = 0.1 * torch.randn(D)
        for name, tensor in module.state_dict().items():
            state[f"{p}.sequence_mixer.{name}"] = tensor.detach().clone()
        state[f"{p}.norm2.weight"] = 1 + 0.1 * torch.randn(D)
        state[f"{p}.norm2.bias"] = 0.1 * torch.randn(D)
        state[f"{p}.state_mixer.fc1.weight"] = 0.3 * torch.randn(4 * D, D)
        state[f"{p}.state_mixer.fc1.bias"] = 0.1 * torch.randn(4 * D)
        state[f"{p}.state_mixer.fc2.weight"] = 0.3 * torch.randn(D, 4 * D)
        state[f"{p}.state_mixer.fc2.bias"] = 0.1 * torch.randn(D)
    state["backbone.ln_f.weight"] = 1 + 0.1 * torch.randn(D)
    state["backbone.ln_f.bias"] = 0.1 * torch.randn(D)
    tokens = torch.randint(0, V, (2, 11), dtype=torch.int64)

    w = {k: v.double() for k, v in state.items()}
    r = w["backbone.embeddings.word_embeddings.weight"][tokens]
    for l in range(LAYERS):
        p = f"backbone.layers.{l}"
        m = f"{p}.sequence_mixer."
        local = {k[len(m):]: v for k, v in w.items() if k.startswith(m)}
        r = r + formula(mixers.layer_norm(r, w[f"{p}.norm1.weight"], w[f"{p}.norm1.bias"]), local)
        h = mixers.layer_norm(r, w[f"{p}.norm2.weight"], w[f"{p}.norm2.bias"])
        h = F.linear(h, w[f"{p}.state_mixer.fc1.weight"], w[f"{p}.state_mixer.fc1.bias"])
        h = F.linear(F.gelu(h), w[f"{p}.state_mixer.fc2.weight"], w[f"{p}.state_mixer.fc2.bias"])
        r = r + h
    logits = mixers.layer_norm(r, w["backbone.ln_f.weight"], w["backbone.ln_f.bias"]) @ w[
        "backbone.embeddings.word_embeddings.weight"
    ].T

    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "tests/reference/make_import_fixture.py", "torch": torch.__version__}
    write_safetensors(OUT / f"{kind}_fla.safetensors", state, meta)
    io = {"input.tokens": tokens, "output.logits": logits.float()}
    write_safetensors(OUT / f"{kind}_fla_io.safetensors", io, meta)
    print(f"{kind}: wrote {len(state)} tensors and the logits to {OUT}")


def main():
    for kind in KINDS:
        build(kind)


if __name__ == "__main__":
    main()
