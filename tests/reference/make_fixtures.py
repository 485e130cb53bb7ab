"""Reference fixtures for mechlab: two tiny language models built in PyTorch.

Run from anywhere:  python tests/reference/make_fixtures.py
Writes tests/fixtures/attention.safetensors and tests/fixtures/based.safetensors
(resolved relative to this script). Everything is float32 on CPU and seeded, so
reruns produce the same tensors.

Common config: vocab V=12, d_model d=8, 2 layers.
  tokens  = [[1,4,7,5,9,2,3],[1,3,8,6,10,2,11]]  (int64 [2,7])
  query   = [3, 5]                                (int64 [2])
  targets = [7, 3]                                (int64 [2])

Parameters: every parameter ~ N(0, 0.5) (std 0.5), except LayerNorm weights
= 1 + N(0, 0.1). Drawn in the order they are declared below, after
torch.manual_seed(0) (attention) or torch.manual_seed(1) (based).

Backbone:
  r = E[tokens]  (+ P[0..L) for attention only; P has 16 rows)
  for each layer l:
    r = r + mixer_l(LN1_l(r))
    r = r + fc2_l(gelu_exact(fc1_l(LN2_l(r))))   fc1: d->4d, fc2: 4d->d, with bias
  h = LN_f(r)                                     all LayerNorms eps 1e-5, weight+bias
  logits = h @ E.T                                tied head, [2,7,12]
  loss = mean_b cross_entropy(logits[b, query[b]], targets[b])

Attention mixer (both layers of "attention"):
  q, k, v = split(x @ Wqkv.T, 3, dim=-1)          Wqkv [3d, d], no bias
  scores = q @ k.T / sqrt(d) + M,  M[t,s] = -10000 if s > t else 0
  out = out_proj(softmax(scores) @ v)             out_proj with bias

"based" model: layer 0 = BaseConv, layer 1 = Based linear attention.
  BaseConv(u):
    conv = depthwise Conv1d(d, d, k=3, groups=d, padding=2, bias) on u^T,
           first L outputs kept (causal), transposed back
    y = conv * projection(u) + u                  projection: d->d with bias
  Based(u):
    q = proj_q(u), k = proj_k(u)                  d->8, no bias
    v = proj_v(u)                                 d->d, no bias
    phi(x) = [1, x / 8**0.25, flatten(x x^T) / (sqrt(2) sqrt(8))]   (dim 73)
    A[t,s] = phi(q_t).phi(k_s) for s <= t, else 0
    y_t = sum_s A[t,s] v_s / (sum_s A[t,s] + 1e-12)
    out = proj_o(y)                               d->d, no bias

Each file holds the weights under their own names, `input.*`, `output.logits`,
`output.loss` (shape [1]) and `grad.<weight name>` = d loss / d weight.
"""

import json
import math
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

V = 12
D = 8
N_LAYERS = 2
N_POS = 16
FEATURE_DIM = 8
LN_EPS = 1e-5
MASK_VALUE = -10000.0

TOKENS = torch.tensor([[1, 4, 7, 5, 9, 2, 3], [1, 3, 8, 6, 10, 2, 11]], dtype=torch.int64)
QUERY = torch.tensor([3, 5], dtype=torch.int64)
TARGETS = torch.tensor([7, 3], dtype=torch.int64)

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures"


def param_shapes(kind):
    """Ordered (name, shape) list for a model kind ("attention" or "based")."""
    shapes = [("backbone.embeddings.word_embeddings.weight", (V, D))]
    if kind == "attention":
        shapes.append(("backbone.embeddings.position_embeddings.weight", (N_POS, D)))
    for l in range(N_LAYERS):
        p = f"backbone.layers.{l}"
        shapes += [
            (f"{p}.norm1.weight", (D,)),
            (f"{p}.norm1.bias", (D,)),
            (f"{p}.norm2.weight", (D,)),
            (f"{p}.norm2.bias", (D,)),
        ]
        m = f"{p}.sequence_mixer"
        if kind == "attention":
            shapes += [
                (f"{m}.Wqkv.weight", (3 * D, D)),
                (f"{m}.out_proj.weight", (D, D)),
                (f"{m}.out_proj.bias", (D,)),
            ]
        elif l == 0:
            shapes += [
                (f"{m}.projection.weight", (D, D)),
                (f"{m}.projection.bias", (D,)),
                (f"{m}.conv.conv.weight", (D, 1, 3)),
                (f"{m}.conv.conv.bias", (D,)),
            ]
        else:
            shapes += [
                (f"{m}.proj_q.weight", (FEATURE_DIM, D)),
                (f"{m}.proj_k.weight", (FEATURE_DIM, D)),
                (f"{m}.proj_v.weight", (D, D)),
                (f"{m}.proj_o.weight", (D, D)),
            ]
        shapes += [
            (f"{p}.state_mixer.fc1.weight", (4 * D, D)),
            (f"{p}.state_mixer.fc1.bias", (4 * D,)),
            (f"{p}.state_mixer.fc2.weight", (D, 4 * D)),
            (f"{p}.state_mixer.fc2.bias", (D,)),
        ]
    shapes += [("backbone.ln_f.weight", (D,)), ("backbone.ln_f.bias", (D,))]
    return shapes


def is_layernorm_weight(name):
    return name.endswith(("norm1.weight", "norm2.weight", "ln_f.weight"))


def init_params(kind, seed):
    """Draw every parameter in declaration order from a seeded generator."""
    torch.manual_seed(seed)
    params = {}
    for name, shape in param_shapes(kind):
        if is_layernorm_weight(name):
            value = 1.0 + 0.1 * torch.randn(shape)
        else:
            value = 0.5 * torch.randn(shape)
        params[name] = value.requires_grad_(True)
    return params


def layer_norm(x, params, prefix):
    return F.layer_norm(x, (D,), params[f"{prefix}.weight"], params[f"{prefix}.bias"], LN_EPS)


def attention_mixer(x, params, m):
    qkv = x @ params[f"{m}.Wqkv.weight"].T
    q, k, v = qkv.split(D, dim=-1)
    L = x.shape[1]
    mask = torch.triu(torch.full((L, L), MASK_VALUE), diagonal=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D) + mask
    y = torch.softmax(scores, dim=-1) @ v
    return F.linear(y, params[f"{m}.out_proj.weight"], params[f"{m}.out_proj.bias"])


def base_conv_mixer(u, params, m):
    L = u.shape[1]
    conv = F.conv1d(
        u.transpose(1, 2),
        params[f"{m}.conv.conv.weight"],
        params[f"{m}.conv.conv.bias"],
        padding=2,
        groups=D,
    )[..., :L].transpose(1, 2)
    proj = F.linear(u, params[f"{m}.projection.weight"], params[f"{m}.projection.bias"])
    return conv * proj + u


def feature_map(x):
    """Taylor feature map: [1, x / f**0.25, vec(x x^T) / (sqrt(2) sqrt(f))]."""
    ones = torch.ones(*x.shape[:-1], 1)
    linear = x / FEATURE_DIM**0.25
    quad = (x[..., :, None] * x[..., None, :]).flatten(-2) / (math.sqrt(2) * math.sqrt(FEATURE_DIM))
    return torch.cat([ones, linear, quad], dim=-1)


def based_mixer(u, params, m):
    q = feature_map(u @ params[f"{m}.proj_q.weight"].T)
    k = feature_map(u @ params[f"{m}.proj_k.weight"].T)
    v = u @ params[f"{m}.proj_v.weight"].T
    a = torch.tril(q @ k.transpose(-1, -2))
    y = (a @ v) / (a.sum(dim=-1, keepdim=True) + 1e-12)
    return y @ params[f"{m}.proj_o.weight"].T


def mixer(kind, layer):
    if kind == "attention":
        return attention_mixer
    return base_conv_mixer if layer == 0 else based_mixer


def forward(kind, params):
    """Return (logits [2,7,V], scalar loss)."""
    emb = params["backbone.embeddings.word_embeddings.weight"]
    r = emb[TOKENS]
    if kind == "attention":
        L = TOKENS.shape[1]
        r = r + params["backbone.embeddings.position_embeddings.weight"][:L]
    for l in range(N_LAYERS):
        p = f"backbone.layers.{l}"
        r = r + mixer(kind, l)(layer_norm(r, params, f"{p}.norm1"), params, f"{p}.sequence_mixer")
        h = layer_norm(r, params, f"{p}.norm2")
        h = F.linear(h, params[f"{p}.state_mixer.fc1.weight"], params[f"{p}.state_mixer.fc1.bias"])
        h = F.gelu(h, approximate="none")
        h = F.linear(h, params[f"{p}.state_mixer.fc2.weight"], params[f"{p}.state_mixer.fc2.bias"])
        r = r + h
    logits = layer_norm(r, params, "backbone.ln_f") @ emb.T
    picked = logits[torch.arange(TOKENS.shape[0]), QUERY]
    loss = F.cross_entropy(picked, TARGETS, reduction="mean")
    return logits, loss


SAFETENSORS_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


def write_safetensors(path, tensors, metadata):
    """Write a safetensors file with a fixed header order (byte-reproducible).

    safetensors' own save_file orders __metadata__ keys through a hash map,
    which changes the header bytes from run to run; this writer keeps
    insertion order instead.
    """
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name, tensor in tensors.items():
        dtype, np_dtype = SAFETENSORS_DTYPES[tensor.dtype]
        data = tensor.contiguous().numpy().astype(np_dtype, copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        f.writelines(chunks)


def build_fixture(kind, seed):
    params = init_params(kind, seed)
    logits, loss = forward(kind, params)
    loss.backward()
    tensors = {name: p.detach().clone() for name, p in params.items()}
    tensors.update({f"grad.{name}": p.grad.detach().clone() for name, p in params.items()})
    tensors["input.tokens"] = TOKENS.clone()
    tensors["input.query"] = QUERY.clone()
    tensors["input.targets"] = TARGETS.clone()
    tensors["output.logits"] = logits.detach().clone()
    tensors["output.loss"] = loss.detach().reshape(1).clone()
    path = FIXTURE_DIR / f"{kind}.safetensors"
    metadata = {"generator": "tests/reference/make_fixtures.py", "torch": torch.__version__}
    write_safetensors(path, tensors, metadata)
    return path, loss.item()


def main():
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for kind, seed in (("attention", 0), ("based", 1)):
        path, loss = build_fixture(kind, seed)
        print(f"{kind}: loss = {loss:.8f} -> {path}")


if __name__ == "__main__":
    main()
