"""Reference fixtures for mechlab: tiny language models built in PyTorch.

Run from anywhere:  python tests/reference/make_fixtures.py
Writes tests/fixtures/<kind>.safetensors for every kind below (resolved
relative to this script), then checks each mixer against a second formulation
and prints the largest differences. Weights are float32, drawn from seeded
generators; outputs and gradients are computed from them in float64 and
rounded to float32 (see build_fixture), so reruns produce the same bytes.
The same computation in float32 is stored under `torch32.*` (its distance
from the exact answer is PyTorch's own rounding error). The mixers themselves live in
tests/reference/mixers.py (shared with bench/torch_ar.py).

  kind         seed  block     layer 0                        layer 1
  attention    0     standard  attention                      attention
  based        1     standard  BaseConv, short conv k=3       Based
  base_conv    2     standard  BaseConv, short conv k=3       BaseConv, implicit long conv
  based_long   3     standard  BaseConv, implicit long conv   Based
  based_k1     4     standard  BaseConv, short conv k=1       Based
  mamba        5     Mamba     Mamba, d_conv 4                Mamba, d_conv 4
  mamba_conv2  6     Mamba     Mamba, d_conv 2                Mamba, d_conv 2
  mamba_conv0  7     Mamba     Mamba, no conv                 Mamba, no conv
  hyena        8     standard  Hyena                          Hyena
  h3           9     standard  H3                             H3
  delta_net    10    standard  DeltaNet                       DeltaNet
  gla          11    standard  GLA                            GLA
  mamba2       12    Mamba     Mamba-2, 2 heads, d_state 4     Mamba-2, 2 heads, d_state 4

Common config: vocab V=12, d_model d=8, 2 layers, sequence length L=7,
l_max=16 (the maximum length: rows of the position embedding, length of the
positional features z, and H3's state size N).
  tokens  = [[1,4,7,5,9,2,3],[1,3,8,6,10,2,11]]  (int64 [2,7])
  query   = [3, 5]                                (int64 [2])
  targets = [7, 3]                                (int64 [2])

Parameters: every parameter ~ N(0, 0.5) (std 0.5: 0.5 * torch.randn(shape)),
except LayerNorm and RMSNorm weights = 1 + N(0, 0.1) (1 + 0.1 * torch.randn),
and the per-mixer exceptions listed below. Drawn one tensor at a time in the
order they are declared below (which is also their order in the file), after
torch.manual_seed(seed). A tensor marked FIXED is computed, draws no random
numbers, is stored under its name but is not trained (no grad entry).
Unless stated otherwise a draw has the tensor's full shape.

Declaration order, standard block (prefix p = backbone.layers.{l}):
  backbone.embeddings.word_embeddings.weight      [V, d]
  backbone.embeddings.position_embeddings.weight  [16, d]   (attention only)
  for l in 0, 1:
    p.norm1.weight [d], p.norm1.bias [d], p.norm2.weight [d], p.norm2.bias [d]
    the mixer's tensors, under m = p.sequence_mixer, in the order listed below
    p.state_mixer.fc1.weight [4d, d], p.state_mixer.fc1.bias [4d],
    p.state_mixer.fc2.weight [d, 4d], p.state_mixer.fc2.bias [d]
  backbone.ln_f.weight [d], backbone.ln_f.bias [d]
Mamba block: the same, except that layer l holds p.norm.weight [d] followed by
the mixer's tensors (no norm1, norm2 or state_mixer).

Backbone, standard block (every kind but the mamba ones):
  r = E[tokens]  (+ P[0..L) for attention only; P has 16 rows)
  for each layer l:
    r = r + mixer_l(LN1_l(r))
    r = r + fc2_l(gelu_exact(fc1_l(LN2_l(r))))   fc1: d->4d, fc2: 4d->d, with bias
  h = LN_f(r)                                     all LayerNorms eps 1e-5, weight+bias
  logits = h @ E.T                                tied head, [2,7,12]
  loss = mean_b cross_entropy(logits[b, query[b]], targets[b])
Backbone, Mamba block (mamba, mamba_conv2, mamba_conv0): no position embedding, no MLP:
  for each layer l:  r = r + Mamba_l(RMSNorm_l(r))
  RMSNorm(x) = x * rsqrt(mean(x^2 over the d channels) + 1e-5) * weight   (no bias)
  then h = LN_f(r) (a LayerNorm with weight and bias), logits and loss as above.

Notation. A linear map is x @ W.T (+ b), W [out, in]. silu(x) = x * sigmoid(x);
softplus(x) = ln(1 + e^x) (torch's F.softplus, which returns x for x > 20).
"shortconv_k(u; w, b)" = causal depthwise Conv1d(C, C, k, groups=C,
padding=k-1) with bias over the time axis, first L outputs kept:
  y[t, c] = b[c] + sum_{j=0}^{k-1} w[c, 0, j] * u[t - (k-1) + j, c]   (u = 0 at negative times)
"causalconv(u, h)" for a filter h [L, C] (tap t, channel c):
  y[t, c] = sum_{s<=t} h[t-s, c] * u[s, c]
(computed with rfft/irfft at n = 2L; the checks compare it with this sum).
Positional features z [1, l_max, 3], l_max = 16, computed in float64 and
rounded to float32:
  z[0, i] = [i/(l_max-1), cos(2*pi*1e-4*i/l_max), -sin(2*pi*1e-4*i/l_max)],  i < l_max
and a filter of length L uses z[0, :L].

Attention mixer (both layers of "attention"):
  m.Wqkv.weight [3d, d], m.out_proj.weight [d, d], m.out_proj.bias [d]
  q, k, v = split(x @ Wqkv.T, 3, dim=-1)          Wqkv [3d, d], no bias
  scores = q @ k.T / sqrt(d) + M,  M[t,s] = -10000 if s > t else 0
  out = out_proj(softmax(scores) @ v)             out_proj with bias

BaseConv, short conv kernel k (k = 3: layer 0 of based and base_conv; k = 1:
layer 0 of based_k1):
  m.projection.weight [d, d], m.projection.bias [d],
  m.conv.conv.weight [d, 1, k], m.conv.conv.bias [d]
  y = shortconv_k(u; conv.conv.weight, conv.conv.bias) * projection(u) + u
BaseConv, implicit long conv (layer 1 of base_conv, layer 0 of based_long):
  m.projection.weight [d, d], m.projection.bias [d],
  m.conv.pos_emb.z [1, 16, 3]        FIXED: exactly the positional features z
  m.conv.mlp.0.weight [16, 3], m.conv.mlp.0.bias [16],
  m.conv.mlp.2.weight [d, 16], m.conv.mlp.2.bias [d]
  h = mlp.2(relu(mlp.0(z[0, :L])))                [L, d]
  c = causalconv(u, h) + u
  y = c * projection(u) + u
Based (layer 1 of based, based_long, based_k1):
  m.proj_q.weight [8, d], m.proj_k.weight [8, d], m.proj_v.weight [d, d], m.proj_o.weight [d, d]
  q = proj_q(u), k = proj_k(u)                    d->8, no bias
  v = proj_v(u)                                   d->d, no bias
  phi(x) = [1, x / 8**0.25, flatten(x x^T) / (sqrt(2) sqrt(8))]   (dim 73)
  A[t,s] = phi(q_t).phi(k_s) for s <= t, else 0
  y_t = sum_s A[t,s] v_s / (sum_s A[t,s] + 1e-12)
  out = proj_o(y)                                 d->d, no bias

Mamba (Mamba-1; both layers of mamba, mamba_conv2, mamba_conv0): d_inner
E = 2d = 16, state N = 16, dt_rank R = ceil(d/16) = 1, conv width K = 4
(mamba), 2 (mamba_conv2), none (mamba_conv0: no conv1d tensors at all).
  m.in_proj.weight   [2E, d]       no bias
  m.conv1d.weight    [E, 1, K]     (not in mamba_conv0)
  m.conv1d.bias      [E]           (not in mamba_conv0)
  m.x_proj.weight    [R + 2N, E]   = [33, 16], no bias
  m.dt_proj.weight   [E, R]
  m.dt_proj.bias     [E]           draw: -2 + 0.5 * randn([E])
  m.A_log            [E, N]        draw: log(arange(1, N+1)) (one row, broadcast over E) + 0.1 * randn([E, N])
  m.D                [E]           draw: 1 + 0.1 * randn([E])
  m.out_proj.weight  [d, E]        no bias
  xz = in_proj(u); x = xz[..., :E], z = xz[..., E:]
  x = silu(shortconv_K(x; conv1d.weight, conv1d.bias))      (mamba_conv0: x = silu(x))
  dt, B, C = split(x_proj(x), [R, N, N], dim=-1)            B, C [b, L, N]
  delta = softplus(dt_proj(dt))                             [b, L, E], dt_proj with bias
  A = -exp(A_log)                                           [E, N]
  h_{-1} = 0;  h_t[e, n] = exp(delta_t[e] A[e, n]) h_{t-1}[e, n] + delta_t[e] x_t[e] B_t[n]
  y_t[e] = sum_n h_t[e, n] C_t[n] + D[e] x_t[e]             (sequential loop over t)
  y = y * silu(z);  out = out_proj(y)

Hyena (order 2, both layers of hyena), filter width F = 64:
  m.in_proj.weight [3d, d], m.in_proj.bias [3d]
  m.short_filter.weight [3d, 1, 3], m.short_filter.bias [3d]
  m.filter_fn.bias [d]
  m.filter_fn.pos_emb.z [1, 16, 3]                 TRAINED; draw: z + 0.05 * randn([1, 16, 3])
  m.filter_fn.implicit_filter.0.weight [F, 3], m.filter_fn.implicit_filter.0.bias [F]
  m.filter_fn.implicit_filter.1.freq [1, F]        draw: 1 + 0.1 * randn([1, F])
  m.filter_fn.implicit_filter.2.weight [F, F]      draw: 0.2 * randn
  m.filter_fn.implicit_filter.2.bias [F]
  m.filter_fn.implicit_filter.4.weight [F, F]      draw: 0.2 * randn
  m.filter_fn.implicit_filter.4.bias [F]
  m.filter_fn.implicit_filter.6.weight [d, F]      draw: 0.2 * randn; no bias
  m.out_proj.weight [d, d], m.out_proj.bias [d]
  Buffers (not stored, not trained; float64 rounded to float32):
    t[i] = i / (l_max - 1), i < l_max                (= torch.linspace(0, 1, l_max))
    deltas[j] = a + (b - a) j / (d - 1), j < d, a = ln(1e-2)/1.5, b = ln(1e-2)/0.3
  w = in_proj(u)                                              [b, L, 3d]
  uc = shortconv_3(w; short_filter.weight, short_filter.bias) over all 3d channels
  x1 = uc[..., :d], x2 = uc[..., d:2d], v = uc[..., 2d:]
  v = v * x1
  f = implicit_filter.1.freq (one frequency vector, shared by all three sines)
  h = L6(sin(f * L4(sin(f * L2(sin(f * L0(z[0, :L])))))))     [L, d]; Li = implicit_filter.i
  h = h * exp(-t[:L, None] * |deltas|[None, :])
  v = causalconv(v, h) + v * (0 * filter_fn.bias)   (the reference: bias=False zeroes it)
  v = v * x2
  out = out_proj(v)

H3 (both layers of h3): head_dim 2, H = d/2 = 4 heads, state N = l_max = 16.
  m.q_proj.weight [d, d], m.q_proj.bias [d]
  m.k_proj.weight [d, d], m.k_proj.bias [d]
  m.v_proj.weight [d, d], m.v_proj.bias [d]
  m.output_linear.weight [d, d], m.output_linear.bias [d]
  m.ssm_k_kernel.kernel.B [d, N]          draw: e_0 + 0.1 * randn([d, N])  (e_0[:, n] = 1 if n == 0 else 0)
  m.ssm_k_kernel.kernel.C [1, d, N]
  m.ssm_k_D [d]
  m.kernel.kernel.log_dt [H]              draw: ln(1e-3) + (ln(1e-1) - ln(1e-3)) * torch.rand([H])
  m.kernel.kernel.C [1, H, N/2, 2]        last axis = (real, imag)
  m.kernel.kernel.B [H, N/2, 2]           last axis = (real, imag)
  m.kernel.kernel.inv_A_real [H, N/2]     draw: ln(0.5) + 0.1 * randn([H, N/2])
  m.kernel.kernel.A_imag [H, N/2]         draw: pi * n + 0.1 * randn([H, N/2]), n = column index (float32)
  m.D [H]
  q, k, v = q_proj(u), k_proj(u), v_proj(u)                   [b, L, d], with bias
  Shift SSM on k (Bs = ssm_k_kernel.kernel.B, Cs = ssm_k_kernel.kernel.C[0], both [d, N]):
    ks[t, c] = sum_{n: n + t < N} Bs[c, n] * Cs[c, n + t],  t < L
      (= irfft(conj(rfft(Bs, 2N)) * rfft(Cs, 2N), 2N)[:, :L]^T)
    k = causalconv(k, ks) + ssm_k_D * k
  Diagonal SSM kernel (S4D, bilinear), computed in float64 and cast to float32:
    for head h and mode n < N/2:
      dt = exp(log_dt[h]);  A = -exp(inv_A_real[h, n]) + i * A_imag[h, n];  dtA = A * dt
      Bc = B[h, n, 0] + i B[h, n, 1];  Cc = C[0, h, n, 0] + i C[0, h, n, 1]
      Cp = Bc * Cc * dt / (1 - dtA/2);  dA = (1 + dtA/2) / (1 - dtA/2)
    K[t, h] = 2 * Re(sum_n Cp[h, n] * dA[h, n]^t),  t < L     (dA^t as exp(t * log dA))
    (gradients flow back through the float64 computation)
  For head h and i, j in {0, 1}:
    kv[b, t, h, i, j] = k[b, t, 2h + i] * v[b, t, 2h + j]
    y[b, :, h, i, j] = causalconv(kv[b, :, h, i, j], K[:, h]) + D[h] * kv[b, :, h, i, j]
    o[b, t, j*H + h] = sum_i q[b, t, 2h + i] * y[b, t, h, i, j]      (channel j*H + h, NOT 2h + j)
  out = output_linear(o)

DeltaNet (both layers of delta_net; flash-linear-attention's layer as zoology
configures it): H = 2 heads of dh = d/H = 4, short convs of K = 4 without bias.
  m.q_proj.weight [d, d], m.k_proj.weight [d, d], m.v_proj.weight [d, d]   no bias
  m.b_proj.weight [H, d]                                                  no bias
  m.q_conv1d.weight [d, 1, 4], m.k_conv1d.weight [d, 1, 4], m.v_conv1d.weight [d, 1, 4]
  m.o_norm.weight [dh]                    draw: 1 + 0.1 * randn([dh])
  m.o_proj.weight [d, d]                                                  no bias
  q = silu(shortconv_4(q_proj(u); q_conv1d.weight, no bias)), k and v alike
  heads: q[b, t, h, i] = q[b, t, h*dh + i] (k, v alike)
  q, k = each / sqrt(sum_i x_i^2 + 1e-6)  per head      (fla's l2norm)
  beta = sigmoid(b_proj(u))                              [b, L, H]
  per head, S_{-1} = 0 [dh, dh]:
    w_t = beta_t (v_t - S_{t-1}^T k_t);  S_t = S_{t-1} + k_t w_t^T;  o_t = S_t^T q_t / sqrt(dh)
  o = RMSNorm over each head's dh values (one weight o_norm.weight for all heads, eps 1e-5)
  out = o_proj(o merged back to [b, L, d])
  (the checks compare it with the chunked WY form of fla's chunk kernel, chunks of 4)

GLA (both layers of gla; flash-linear-attention's GatedLinearAttention as
zoology configures it): H = 2 heads, dk = d/(2H) = 2, dv = d/H = 4, low-rank
gate R = 16, no short convs.
  m.q_proj.weight [d/2, d], m.k_proj.weight [d/2, d]                      no bias
  m.v_proj.weight [d, d], m.g_proj.weight [d, d]                          no bias
  m.gk_proj.0.weight [R, d] (no bias), m.gk_proj.1.weight [d/2, R], m.gk_proj.1.bias [d/2]
  m.o_proj.weight [d, d]                                                  no bias
  m.g_norm_swish_gate.weight [dv]         draw: 1 + 0.1 * randn([dv])
  q, k, v = q_proj(u), k_proj(u), v_proj(u); heads channel-major (as DeltaNet)
  g = logsigmoid(gk_proj.1(gk_proj.0(u))) / 16            [b, L, H, dk], log-decays
  per head, S_{-1} = 0 [dk, dv]:
    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T;  o_t = S_t^T q_t / sqrt(dk)
  o = RMSNorm over each head's dv values (one weight for all heads, eps 1e-5)
      * silu(g_proj(u)) per head
  out = o_proj(o merged back to [b, L, d])
  (the checks compare it with the chunked form of fla's chunk_gla, chunks of 4)

Mamba-2 (both layers of mamba2; mamba_ssm's Mamba2 with bias=False, in Mamba
blocks): d_inner i = 2d = 16, H = 2 heads of p = 8, d_state N = 4 (the
reference's 64-wide heads and N = 128 do not fit d = 8), d_conv 4, one group.
  m.dt_bias [H], m.A_log [H], m.D [H]
  m.in_proj.weight [2i + 2N + H, d]                                       no bias
  m.conv1d.weight [i + 2N, 1, 4], m.conv1d.bias [i + 2N]
  m.norm.weight [i]                       draw: 1 + 0.1 * randn([i])
  m.out_proj.weight [d, i]                                                no bias
  z, xBC, dt = split(in_proj(u), [i, i + 2N, H])
  x, B, C = split(silu(shortconv_4(xBC) + bias), [i, N, N])
  dt = softplus(dt + dt_bias);  A = -exp(A_log)          per head
  per head h (x_t[h] = x_t[h*p:(h+1)*p]), S_{-1} = 0 [p, N]:
    S_t = exp(dt_t A) S_{t-1} + (dt_t x_t[h]) B_t^T;  y_t[h] = S_t C_t + D[h] x_t[h]
  out = out_proj(RMSNorm(y * silu(z)) over all i channels (eps 1e-5) * norm.weight)
  (the checks compare it with the state space dual's chunked form, chunks of 4)

Each file holds the weights under their own names (FIXED ones included),
`input.*`, `output.logits`, `output.loss` (shape [1]) and `grad.<weight name>`
= d loss / d weight for every trained weight, in this order: weights in
declaration order, grads in the same order, input.tokens, input.query,
input.targets, output.logits, output.loss; then the float32 run:
torch32.grad.<weight name> (same order), torch32.output.logits,
torch32.output.loss.
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json  # noqa: E402
import struct  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mixers  # noqa: E402

V = 12
D = 8
N_LAYERS = 2
N_POS = 16
L_MAX = 16
FEATURE_DIM = mixers.FEATURE_DIM
IMPLICIT_HIDDEN = 16  # BaseConv implicit filter MLP width
HYENA_ORDER = 64  # Hyena implicit filter width
MAMBA_EXPAND = 2
MAMBA_STATE = 16
H3_HEAD_DIM = 2
DELTA_NET_HEADS = 2
DELTA_NET_CONV = 4
GLA_HEADS = 2
MAMBA2_HEADS = 2
MAMBA2_STATE = 4

TOKENS = torch.tensor([[1, 4, 7, 5, 9, 2, 3], [1, 3, 8, 6, 10, 2, 11]], dtype=torch.int64)
QUERY = torch.tensor([3, 5], dtype=torch.int64)
TARGETS = torch.tensor([7, 3], dtype=torch.int64)

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures"

# kind -> (seed, per-layer mixer, block style)
KINDS = {
    "attention": (0, ("attention", "attention"), "standard"),
    "based": (1, ("short3", "based"), "standard"),
    "base_conv": (2, ("short3", "long"), "standard"),
    "based_long": (3, ("long", "based"), "standard"),
    "based_k1": (4, ("short1", "based"), "standard"),
    "mamba": (5, ("mamba4", "mamba4"), "mamba"),
    "mamba_conv2": (6, ("mamba2", "mamba2"), "mamba"),
    "mamba_conv0": (7, ("mamba0", "mamba0"), "mamba"),
    "hyena": (8, ("hyena", "hyena"), "standard"),
    "h3": (9, ("h3", "h3"), "standard"),
    "delta_net": (10, ("delta_net", "delta_net"), "standard"),
    "gla": (11, ("gla", "gla"), "standard"),
    "mamba2": (12, ("ssd", "ssd"), "mamba"),
}


def mixer_prefix(kind, l):
    """The reference's hybrid wrapper (the `based` family) nests each layer's mixer one level
    deeper, under `sequence_mixer.mixer`."""
    return f"backbone.layers.{l}.sequence_mixer" + (".mixer" if kind.startswith("based") else "")


# --- draws: each takes the shape and returns a tensor (None = FIXED, no draw) ---


def normal(shape):
    return 0.5 * torch.randn(shape)


def norm_weight(shape):
    return 1.0 + 0.1 * torch.randn(shape)


def scaled(std):
    return lambda shape: std * torch.randn(shape)


def offset(base, std):
    return lambda shape: base + std * torch.randn(shape)


def fixed_features(shape):
    return mixers.positional_features(shape[1])


def hyena_z(shape):
    return mixers.positional_features(shape[1]) + 0.05 * torch.randn(shape)


def mamba_a_log(shape):
    return torch.log(torch.arange(1, shape[1] + 1, dtype=torch.float32)) + 0.1 * torch.randn(shape)


def h3_log_dt(shape):
    lo, hi = math.log(1e-3), math.log(1e-1)
    return lo + (hi - lo) * torch.rand(shape)


def h3_a_imag(shape):
    return math.pi * torch.arange(shape[1], dtype=torch.float32) + 0.1 * torch.randn(shape)


def h3_shift_b(shape):
    e0 = torch.zeros(shape)
    e0[:, 0] = 1.0
    return e0 + 0.1 * torch.randn(shape)


FIXED = {fixed_features}


def mixer_specs(mixer, m):
    """Ordered (name, shape, draw) of one mixer's tensors under prefix m."""
    if mixer == "attention":
        return [
            (f"{m}.Wqkv.weight", (3 * D, D), normal),
            (f"{m}.out_proj.weight", (D, D), normal),
            (f"{m}.out_proj.bias", (D,), normal),
        ]
    if mixer.startswith("short"):
        k = int(mixer[len("short"):])
        return [
            (f"{m}.projection.weight", (D, D), normal),
            (f"{m}.projection.bias", (D,), normal),
            (f"{m}.conv.conv.weight", (D, 1, k), normal),
            (f"{m}.conv.conv.bias", (D,), normal),
        ]
    if mixer == "long":
        return [
            (f"{m}.projection.weight", (D, D), normal),
            (f"{m}.projection.bias", (D,), normal),
            (f"{m}.conv.pos_emb.z", (1, L_MAX, 3), fixed_features),
            (f"{m}.conv.mlp.0.weight", (IMPLICIT_HIDDEN, 3), normal),
            (f"{m}.conv.mlp.0.bias", (IMPLICIT_HIDDEN,), normal),
            (f"{m}.conv.mlp.2.weight", (D, IMPLICIT_HIDDEN), normal),
            (f"{m}.conv.mlp.2.bias", (D,), normal),
        ]
    if mixer == "based":
        return [
            (f"{m}.proj_q.weight", (FEATURE_DIM, D), normal),
            (f"{m}.proj_k.weight", (FEATURE_DIM, D), normal),
            (f"{m}.proj_v.weight", (D, D), normal),
            (f"{m}.proj_o.weight", (D, D), normal),
        ]
    if mixer.startswith("mamba"):
        k = int(mixer[len("mamba"):])
        e, n, r = MAMBA_EXPAND * D, MAMBA_STATE, math.ceil(D / 16)
        specs = [(f"{m}.in_proj.weight", (2 * e, D), normal)]
        if k > 0:
            specs += [
                (f"{m}.conv1d.weight", (e, 1, k), normal),
                (f"{m}.conv1d.bias", (e,), normal),
            ]
        return specs + [
            (f"{m}.x_proj.weight", (r + 2 * n, e), normal),
            (f"{m}.dt_proj.weight", (e, r), normal),
            (f"{m}.dt_proj.bias", (e,), offset(-2.0, 0.5)),
            (f"{m}.A_log", (e, n), mamba_a_log),
            (f"{m}.D", (e,), offset(1.0, 0.1)),
            (f"{m}.out_proj.weight", (D, e), normal),
        ]
    if mixer == "hyena":
        f = HYENA_ORDER
        fi = f"{m}.filter_fn.implicit_filter"
        return [
            (f"{m}.in_proj.weight", (3 * D, D), normal),
            (f"{m}.in_proj.bias", (3 * D,), normal),
            (f"{m}.short_filter.weight", (3 * D, 1, 3), normal),
            (f"{m}.short_filter.bias", (3 * D,), normal),
            (f"{m}.filter_fn.bias", (D,), normal),
            (f"{m}.filter_fn.pos_emb.z", (1, L_MAX, 3), hyena_z),
            (f"{fi}.0.weight", (f, 3), normal),
            (f"{fi}.0.bias", (f,), normal),
            (f"{fi}.1.freq", (1, f), offset(1.0, 0.1)),
            (f"{fi}.2.weight", (f, f), scaled(0.2)),
            (f"{fi}.2.bias", (f,), normal),
            (f"{fi}.4.weight", (f, f), scaled(0.2)),
            (f"{fi}.4.bias", (f,), normal),
            (f"{fi}.6.weight", (D, f), scaled(0.2)),
            (f"{m}.out_proj.weight", (D, D), normal),
            (f"{m}.out_proj.bias", (D,), normal),
        ]
    if mixer == "h3":
        h, n = D // H3_HEAD_DIM, L_MAX
        specs = []
        for proj in ("q_proj", "k_proj", "v_proj", "output_linear"):
            specs += [(f"{m}.{proj}.weight", (D, D), normal), (f"{m}.{proj}.bias", (D,), normal)]
        return specs + [
            (f"{m}.ssm_k_kernel.kernel.B", (D, n), h3_shift_b),
            (f"{m}.ssm_k_kernel.kernel.C", (1, D, n), normal),
            (f"{m}.ssm_k_D", (D,), normal),
            (f"{m}.kernel.kernel.log_dt", (h,), h3_log_dt),
            (f"{m}.kernel.kernel.C", (1, h, n // 2, 2), normal),
            (f"{m}.kernel.kernel.B", (h, n // 2, 2), normal),
            (f"{m}.kernel.kernel.inv_A_real", (h, n // 2), offset(math.log(0.5), 0.1)),
            (f"{m}.kernel.kernel.A_imag", (h, n // 2), h3_a_imag),
            (f"{m}.D", (h,), normal),
        ]
    if mixer == "delta_net":
        h, k = DELTA_NET_HEADS, DELTA_NET_CONV
        return [
            (f"{m}.q_proj.weight", (D, D), normal),
            (f"{m}.k_proj.weight", (D, D), normal),
            (f"{m}.v_proj.weight", (D, D), normal),
            (f"{m}.b_proj.weight", (h, D), normal),
            (f"{m}.q_conv1d.weight", (D, 1, k), normal),
            (f"{m}.k_conv1d.weight", (D, 1, k), normal),
            (f"{m}.v_conv1d.weight", (D, 1, k), normal),
            (f"{m}.o_norm.weight", (D // h,), norm_weight),
            (f"{m}.o_proj.weight", (D, D), normal),
        ]
    if mixer == "ssd":
        i, h, n = 2 * D, MAMBA2_HEADS, MAMBA2_STATE
        return [
            (f"{m}.dt_bias", (h,), normal),
            (f"{m}.A_log", (h,), normal),
            (f"{m}.D", (h,), normal),
            (f"{m}.in_proj.weight", (2 * i + 2 * n + h, D), normal),
            (f"{m}.conv1d.weight", (i + 2 * n, 1, 4), normal),
            (f"{m}.conv1d.bias", (i + 2 * n,), normal),
            (f"{m}.norm.weight", (i,), norm_weight),
            (f"{m}.out_proj.weight", (D, i), normal),
        ]
    if mixer == "gla":
        r = mixers.GLA_GATE_RANK
        return [
            (f"{m}.q_proj.weight", (D // 2, D), normal),
            (f"{m}.k_proj.weight", (D // 2, D), normal),
            (f"{m}.v_proj.weight", (D, D), normal),
            (f"{m}.g_proj.weight", (D, D), normal),
            (f"{m}.gk_proj.0.weight", (r, D), normal),
            (f"{m}.gk_proj.1.weight", (D // 2, r), normal),
            (f"{m}.gk_proj.1.bias", (D // 2,), normal),
            (f"{m}.o_proj.weight", (D, D), normal),
            (f"{m}.g_norm_swish_gate.weight", (D // GLA_HEADS,), norm_weight),
        ]
    raise ValueError(mixer)


def param_specs(kind):
    """Ordered (name, shape, draw) list for a model kind."""
    _, layer_mixers, block = KINDS[kind]
    specs = [("backbone.embeddings.word_embeddings.weight", (V, D), normal)]
    if kind == "attention":
        specs.append(("backbone.embeddings.position_embeddings.weight", (N_POS, D), normal))
    for l, mixer in enumerate(layer_mixers):
        p = f"backbone.layers.{l}"
        if block == "mamba":
            specs.append((f"{p}.norm.weight", (D,), norm_weight))
        else:
            specs += [
                (f"{p}.norm1.weight", (D,), norm_weight),
                (f"{p}.norm1.bias", (D,), normal),
                (f"{p}.norm2.weight", (D,), norm_weight),
                (f"{p}.norm2.bias", (D,), normal),
            ]
        specs += mixer_specs(mixer, mixer_prefix(kind, l))
        if block != "mamba":
            specs += [
                (f"{p}.state_mixer.fc1.weight", (4 * D, D), normal),
                (f"{p}.state_mixer.fc1.bias", (4 * D,), normal),
                (f"{p}.state_mixer.fc2.weight", (D, 4 * D), normal),
                (f"{p}.state_mixer.fc2.bias", (D,), normal),
            ]
    specs += [
        ("backbone.ln_f.weight", (D,), norm_weight),
        ("backbone.ln_f.bias", (D,), normal),
    ]
    return specs


def init_params(kind):
    """Draw every parameter in declaration order from a seeded generator."""
    torch.manual_seed(KINDS[kind][0])
    params = {}
    for name, shape, draw in param_specs(kind):
        value = draw(shape)
        assert tuple(value.shape) == tuple(shape), (name, value.shape, shape)
        params[name] = value.requires_grad_(draw not in FIXED)
    return params


def local(params, m):
    """The tensors under prefix m, keyed by their local names."""
    return {k[len(m) + 1:]: v for k, v in params.items() if k.startswith(m + ".")}


def run_mixer(mixer, u, p, alt=False):
    """One mixer; alt=True uses the second formulation (the checks)."""
    if mixer == "attention":
        return mixers.attention(u, p)
    if mixer == "based":
        return mixers.based(u, p)
    if mixer.startswith("short") or mixer == "long":
        return mixers.base_conv(u, p, direct=alt)
    if mixer.startswith("mamba"):
        return mixers.mamba(u, p, closed_form=alt)
    if mixer == "hyena":
        return mixers.hyena(u, p, direct=alt)
    if mixer == "h3":
        return mixers.h3(u, p, direct=alt, recurrent=alt)
    if mixer == "delta_net":
        return mixers.delta_net(u, p, chunked=alt)
    if mixer == "gla":
        return mixers.gla(u, p, chunked=alt)
    if mixer == "ssd":
        return mixers.mamba2(u, p, chunked=alt)
    raise ValueError(mixer)


def layer_norm(x, params, prefix):
    return mixers.layer_norm(x, params[f"{prefix}.weight"], params[f"{prefix}.bias"])


def forward(kind, params, alt=False):
    """Return (logits [2,7,V], scalar loss)."""
    _, layer_mixers, block = KINDS[kind]
    emb = params["backbone.embeddings.word_embeddings.weight"]
    r = emb[TOKENS]
    if kind == "attention":
        L = TOKENS.shape[1]
        r = r + params["backbone.embeddings.position_embeddings.weight"][:L]
    for l, mixer in enumerate(layer_mixers):
        p = f"backbone.layers.{l}"
        sub = local(params, mixer_prefix(kind, l))
        if block == "mamba":
            r = r + run_mixer(mixer, mixers.rms_norm(r, params[f"{p}.norm.weight"]), sub, alt)
            continue
        r = r + run_mixer(mixer, layer_norm(r, params, f"{p}.norm1"), sub, alt)
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


def build_fixture(kind):
    """Weights are drawn in float32; outputs and gradients are computed from them in float64 and
    rounded, so a fixture holds the exact answer for its float32 weights. (A float32 reference
    carries its own rounding: for mamba_conv0 it is 4.5e-5 off in some gradients, more than the
    1e-5 the Rust side is held to.)"""
    params = init_params(kind)
    wide = {name: p.detach().double().requires_grad_(p.requires_grad) for name, p in params.items()}
    logits, loss = forward(kind, wide)
    loss.backward()
    logits, loss = logits.float(), loss.float()
    tensors = {name: p.detach().clone() for name, p in params.items()}
    tensors.update({f"grad.{name}": p.grad.detach().float() for name, p in wide.items() if p.requires_grad})
    # PyTorch's own float32 answer, so the Rust side can hold mechlab to "within 1e-5, or at
    # least as close to the exact answer as PyTorch float32 gets".
    logits32, loss32 = forward(kind, params)
    loss32.backward()
    tensors.update({f"torch32.grad.{n}": p.grad.detach().clone() for n, p in params.items() if p.requires_grad})
    tensors["torch32.output.logits"] = logits32.detach().clone()
    tensors["torch32.output.loss"] = loss32.detach().reshape(1).clone()
    tensors["input.tokens"] = TOKENS.clone()
    tensors["input.query"] = QUERY.clone()
    tensors["input.targets"] = TARGETS.clone()
    tensors["output.logits"] = logits.detach().clone()
    tensors["output.loss"] = loss.detach().reshape(1).clone()
    path = FIXTURE_DIR / f"{kind}.safetensors"
    metadata = {"generator": "tests/reference/make_fixtures.py", "torch": torch.__version__}
    write_safetensors(path, tensors, metadata)
    return path, loss.item()


# ----------------------------------------------------------------------------
# Sanity checks: each new mixer against a second formulation
# ----------------------------------------------------------------------------


def max_diff(a, b):
    return (a.detach().double() - b.detach().double()).abs().max().item()


def check_components():
    """Building blocks on random inputs; returns {check: max abs diff}."""
    g = torch.Generator().manual_seed(123)
    out = {}
    u = torch.randn(2, 7, 5, generator=g)
    h = torch.randn(7, 5, generator=g)
    out["causalconv fft vs direct sum"] = max_diff(mixers.causal_conv_fft(u, h), mixers.causal_conv_direct(u, h))
    loop = torch.zeros_like(u)
    for t in range(7):
        for s in range(t + 1):
            loop[:, t] += h[t - s] * u[:, s]
    out["causalconv fft vs python loop"] = max_diff(mixers.causal_conv_fft(u, h), loop)
    # shortconv_k against its written formula
    for k in (1, 2, 3, 4):
        w = torch.randn(5, 1, k, generator=g)
        b = torch.randn(5, generator=g)
        ref = b.expand(2, 7, 5).clone()
        for t in range(7):
            for j in range(k):
                s = t - (k - 1) + j
                if s >= 0:
                    ref[:, t] += w[:, 0, j] * u[:, s]
        out[f"shortconv k={k} vs formula"] = max_diff(mixers.short_conv(u, w, b), ref)
    # positional features against the formula (float32 arithmetic)
    z = mixers.positional_features(L_MAX)
    i = torch.arange(L_MAX, dtype=torch.float32)
    ang = 2 * math.pi * 1e-4 * i / L_MAX
    z32 = torch.stack([i / (L_MAX - 1), torch.cos(ang), -torch.sin(ang)], -1)[None]
    out["positional features vs float32 formula"] = max_diff(z, z32)
    out["hyena t vs torch.linspace"] = max_diff(mixers.unit_ramp(L_MAX), torch.linspace(0, 1, L_MAX))
    lo, hi = math.log(1e-2) / 1.5, math.log(1e-2) / 0.3
    out["hyena deltas vs torch.linspace"] = max_diff(mixers.hyena_deltas(D), torch.linspace(lo, hi, D))
    # shift kernel: FFT correlation vs direct sum
    B = torch.randn(D, L_MAX, generator=g)
    C = torch.randn(D, L_MAX, generator=g)
    for L in (7, 16, 20):
        out[f"h3 shift kernel fft vs direct (L={L})"] = max_diff(
            mixers.h3_shift_kernel(B, C, L), mixers.h3_shift_kernel_direct(B, C, L)
        )
    return out


def h3_naive(u, p):
    """H3 written index by index from the docstring (float64, explicit loops)."""
    u, p = u.double(), {k: v.detach().double() for k, v in p.items()}
    b, L, d = u.shape
    q, k, v = (u @ p[f"{n}.weight"].T + p[f"{n}.bias"] for n in ("q_proj", "k_proj", "v_proj"))
    Bs, Cs = p["ssm_k_kernel.kernel.B"], p["ssm_k_kernel.kernel.C"][0]
    N = Bs.shape[1]
    ks = torch.zeros(L, d, dtype=torch.float64)
    for t in range(L):
        for n in range(N - t):
            ks[t] += Bs[:, n] * Cs[:, n + t]
    k2 = p["ssm_k_D"] * k
    for t in range(L):
        for s in range(t + 1):
            k2[:, t] += ks[t - s] * k[:, s]
    H = p["D"].shape[0]
    K = torch.zeros(L, H, dtype=torch.float64)
    for h in range(H):
        dt = math.exp(p["kernel.kernel.log_dt"][h])
        for n in range(N // 2):
            A = complex(-math.exp(p["kernel.kernel.inv_A_real"][h, n]), p["kernel.kernel.A_imag"][h, n])
            Bc = complex(*p["kernel.kernel.B"][h, n].tolist())
            Cc = complex(*p["kernel.kernel.C"][0, h, n].tolist())
            cp = Bc * Cc * dt / (1 - A * dt / 2)
            da = (1 + A * dt / 2) / (1 - A * dt / 2)
            for t in range(L):
                K[t, h] += 2 * (cp * da**t).real
    o = torch.zeros(b, L, d, dtype=torch.float64)
    for h in range(H):
        for i in range(2):
            for j in range(2):
                kv = k2[:, :, 2 * h + i] * v[:, :, 2 * h + j]
                y = p["D"][h] * kv
                for t in range(L):
                    for s in range(t + 1):
                        y[:, t] += K[t - s, h] * kv[:, s]
                o[:, :, j * H + h] += q[:, :, 2 * h + i] * y
    return o @ p["output_linear.weight"].T + p["output_linear.bias"]


def hyena_naive(u, p):
    """Hyena written step by step from the docstring (float64, explicit conv loops)."""
    u, p = u.double(), {k: v.detach().double() for k, v in p.items()}
    b, L, d = u.shape
    w = u @ p["in_proj.weight"].T + p["in_proj.bias"]
    sw, sb = p["short_filter.weight"], p["short_filter.bias"]
    uc = sb.expand(b, L, 3 * d).clone()
    for t in range(L):
        for j in range(3):
            if t - 2 + j >= 0:
                uc[:, t] += sw[:, 0, j] * w[:, t - 2 + j]
    x1, x2, v = uc[..., :d], uc[..., d:2 * d], uc[..., 2 * d:]
    v = v * x1
    f = p["filter_fn.implicit_filter.1.freq"]

    def lin(x, i):
        pre = f"filter_fn.implicit_filter.{i}"
        return x @ p[f"{pre}.weight"].T + p.get(f"{pre}.bias", 0)

    h = lin(torch.sin(f * lin(torch.sin(f * lin(torch.sin(f * lin(p["filter_fn.pos_emb.z"][0, :L], 0)), 2)), 4)), 6)
    l_max = p["filter_fn.pos_emb.z"].shape[1]
    t_ = torch.tensor([i / (l_max - 1) for i in range(L)], dtype=torch.float64)
    a, c = math.log(1e-2) / 1.5, math.log(1e-2) / 0.3
    deltas = torch.tensor([a + (c - a) * j / (d - 1) for j in range(d)], dtype=torch.float64)
    h = h * torch.exp(-t_[:, None] * deltas.abs()[None, :])
    y = v * (0 * p["filter_fn.bias"])  # the reference's bias=False filter
    for t in range(L):
        for s in range(t + 1):
            y[:, t] += h[t - s] * v[:, s]
    y = y * x2
    return y @ p["out_proj.weight"].T + p["out_proj.bias"]


def mamba_naive(u, p):
    """Mamba written step by step from the docstring (float64, explicit loops)."""
    u, p = u.double(), {k: v.detach().double() for k, v in p.items()}
    b, L, d = u.shape
    E, N = p["A_log"].shape
    xz = u @ p["in_proj.weight"].T
    x, z = xz[..., :E], xz[..., E:]
    if "conv1d.weight" in p:
        w, K = p["conv1d.weight"], p["conv1d.weight"].shape[-1]
        xc = p["conv1d.bias"].expand(b, L, E).clone()
        for t in range(L):
            for j in range(K):
                if t - (K - 1) + j >= 0:
                    xc[:, t] += w[:, 0, j] * x[:, t - (K - 1) + j]
        x = xc
    x = x * torch.sigmoid(x)
    dbc = x @ p["x_proj.weight"].T
    R = dbc.shape[-1] - 2 * N
    dt, B, C = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
    delta = torch.log1p(torch.exp(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"]))
    A = -torch.exp(p["A_log"])
    y = torch.zeros(b, L, E, dtype=torch.float64)
    for bi in range(b):
        h = torch.zeros(E, N, dtype=torch.float64)
        for t in range(L):
            h = torch.exp(delta[bi, t][:, None] * A) * h + (delta[bi, t] * x[bi, t])[:, None] * B[bi, t][None, :]
            y[bi, t] = (h * C[bi, t][None, :]).sum(-1) + p["D"] * x[bi, t]
    y = y * (z * torch.sigmoid(z))
    return y @ p["out_proj.weight"].T


def check_mixers(kind, params):
    """Each layer's mixer on a random input: primary vs alternative formulation."""
    out = {}
    g = torch.Generator().manual_seed(7)
    _, layer_mixers, _ = KINDS[kind]
    for l, mixer in enumerate(layer_mixers):
        sub = {k: v.detach() for k, v in local(params, mixer_prefix(kind, l)).items()}
        u = torch.randn(2, 7, D, generator=g)
        a = run_mixer(mixer, u, sub)
        b = run_mixer(mixer, u, sub, alt=True)
        out[f"layer {l} {mixer}: mixer output, alt formulation"] = max_diff(a, b)
        if mixer == "h3":
            out[f"layer {l} h3: vs index-by-index float64 version"] = max_diff(a, h3_naive(u, sub))
        if mixer.startswith("mamba"):
            out[f"layer {l} {mixer}: vs step-by-step float64 version"] = max_diff(a, mamba_naive(u, sub))
        if mixer == "hyena":
            out[f"layer {l} hyena: vs step-by-step float64 version"] = max_diff(a, hyena_naive(u, sub))
        if mixer == "h3":
            out[f"layer {l} h3: direct convs only"] = max_diff(a, mixers.h3(u, sub, direct=True))
            out[f"layer {l} h3: recurrent diag SSM only"] = max_diff(a, mixers.h3(u, sub, recurrent=True))
            K = mixers.h3_diag_kernel(sub, 7)
            imp = torch.zeros(1, 7, 4, 2, 2)
            imp[:, 0] = 1.0
            Kr = mixers.h3_ssm_recurrent(imp, sub)[0, :, :, 0, 0]
            out[f"layer {l} h3: kernel K vs recurrence impulse response"] = max_diff(K, Kr)
        module = bench_module(mixer)
        if module is not None:
            state = {k: v for k, v in sub.items() if k != "conv.pos_emb.z"}
            if mixer == "hyena":  # the shared Sin appears at .1, .3 and .5 of the Sequential
                for i in (3, 5):
                    state[f"filter_fn.implicit_filter.{i}.freq"] = state["filter_fn.implicit_filter.1.freq"]
            module.load_state_dict(state, strict=True)
            out[f"layer {l} {mixer}: nn.Module (bench) vs function"] = max_diff(module(u), a)
    return out


def bench_module(mixer):
    """The bench's nn.Module for this fixture mixer (sizes of the fixture)."""
    if mixer.startswith("short"):
        return mixers.BaseConv(D, kernel=int(mixer[len("short"):]))
    if mixer == "long":
        return mixers.BaseConv(D, kernel=None, l_max=L_MAX)
    if mixer == "based":
        return mixers.Based(D)
    if mixer.startswith("mamba"):
        return mixers.Mamba(D, d_state=MAMBA_STATE, d_conv=int(mixer[len("mamba"):]))
    if mixer == "hyena":
        return mixers.Hyena(D, l_max=L_MAX, order=HYENA_ORDER)
    if mixer == "h3":
        return mixers.H3(D, d_state=L_MAX, head_dim=H3_HEAD_DIM)
    if mixer == "delta_net":
        return mixers.DeltaNet(D, heads=DELTA_NET_HEADS, conv=DELTA_NET_CONV)
    if mixer == "gla":
        return mixers.GLA(D, heads=GLA_HEADS)
    if mixer == "ssd":
        return mixers.Mamba2(D, d_state=MAMBA2_STATE, headdim=2 * D // MAMBA2_HEADS)
    return None


def model_pass(kind, alt=False, dtype=torch.float32):
    """Forward + backward with the fixture's weights (cast to dtype)."""
    params = {k: v.detach().to(dtype).requires_grad_(v.requires_grad) for k, v in init_params(kind).items()}
    logits, loss = forward(kind, params, alt=alt)
    loss.backward()
    grads = {k: v.grad for k, v in params.items() if v.requires_grad}
    return params, logits, loss, grads


def compare(a, b):
    """(max |logits diff|, |loss diff|, max |grad diff|) of two model passes."""
    grads = max(max_diff(a[3][k], b[3][k]) for k in a[3])
    return max_diff(a[1], b[1]), max_diff(a[2], b[2]), grads


def check_model(kind):
    """Whole model, every mixer in its alternative formulation; float32 and float64."""
    out = {}
    f32, f32_alt = model_pass(kind), model_pass(kind, alt=True)
    f64, f64_alt = model_pass(kind, dtype=torch.float64), model_pass(kind, alt=True, dtype=torch.float64)
    for label, a, b in (
        ("float32 primary vs alt", f32, f32_alt),
        ("float64 primary vs alt", f64, f64_alt),
        ("float32 fixture vs float64 primary", f32, f64),
    ):
        logits, loss, grads = compare(a, b)
        out[f"{label}: logits / loss / grads"] = (logits, loss, grads)
    scale = max(g.abs().max().item() for g in f64[3].values())
    out["(max |grad|, for scale)"] = scale
    out.update(check_mixers(kind, f32[0]))
    return out


def check_against_fla():
    """When flash-linear-attention is installed (pip install fla-core; its naive recurrences are
    plain PyTorch and run on a CPU): our delta rule and GLA recurrence against fla's own naive
    ones, and our DeltaNet and GLA parameter lists against the names and shapes of fla's modules."""
    try:
        from fla.layers import DeltaNet, GatedLinearAttention
        from fla.ops.delta_rule.naive import delta_rule_recurrence
        from fla.ops.gla.naive import naive_recurrent_gla
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"  (flash-linear-attention not importable, its checks skipped: {type(e).__name__})")
        return {}
    g = torch.Generator().manual_seed(11)
    q, k = (mixers.l2_normalise(torch.randn(2, 9, 2, 4, generator=g, dtype=torch.float64)) for _ in range(2))
    v = torch.randn(2, 9, 2, 4, generator=g, dtype=torch.float64)
    beta = torch.rand(2, 9, 2, generator=g, dtype=torch.float64)
    ours = mixers.delta_rule_recurrent(q, k, v, beta)
    head_first = [x.transpose(1, 2) for x in (q, k, v, beta)]
    theirs, _ = delta_rule_recurrence(*head_first)
    out = {"delta rule (float64) vs fla naive delta_rule_recurrence (which computes in float32)": max_diff(ours, theirs.transpose(1, 2))}
    module = DeltaNet(hidden_size=D, num_heads=DELTA_NET_HEADS, conv_size=DELTA_NET_CONV)
    fla_names = [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    m = mixer_prefix("delta_net", 0)
    ours_names = [(n[len(m) + 1:], tuple(s)) for n, s, _ in mixer_specs("delta_net", m)]
    assert fla_names == ours_names, (fla_names, ours_names)
    out["delta_net parameter names and shapes == fla DeltaNet's (0 = equal)"] = 0.0
    q, k = (torch.randn(2, 9, 2, 3, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 9, 2, 4, generator=g, dtype=torch.float64)
    gk = F.logsigmoid(20 * torch.randn(2, 9, 2, 3, generator=g, dtype=torch.float64)) / mixers.GLA_NORMALISER
    theirs, _ = naive_recurrent_gla(q, k, v, gk)
    out["gla recurrence (float64) vs fla naive_recurrent_gla (which computes in float32)"] = max_diff(
        mixers.gla_recurrent(q, k, v, gk), theirs
    )
    module = GatedLinearAttention(hidden_size=D, num_heads=GLA_HEADS)
    fla_names = [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    m = mixer_prefix("gla", 0)
    ours_names = [(n[len(m) + 1:], tuple(s)) for n, s, _ in mixer_specs("gla", m)]
    assert fla_names == ours_names, (fla_names, ours_names)
    out["gla parameter names and shapes == fla GatedLinearAttention's (0 = equal)"] = 0.0
    return out


def run_checks(kinds):
    """Prints every check; asserts float64 agreement and float32 within rounding."""
    print("checks (max abs difference):")
    for name, diff in {**check_components(), **check_against_fla()}.items():
        print(f"  {name}: {diff:.3e}")
        assert diff < 1e-5, name
    for kind in kinds:
        for name, diff in check_model(kind).items():
            if isinstance(diff, tuple):
                print(f"  {kind}: {name}: " + " / ".join(f"{d:.3e}" for d in diff))
                assert max(diff) < (1e-10 if "float64 primary vs alt" in name else 1e-3), (kind, name)
            else:
                print(f"  {kind}: {name}: {diff:.3e}")
                assert name.startswith("(") or diff < 1e-4, (kind, name)


def main():
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        path, loss = build_fixture(kind)
        print(f"{kind}: loss = {loss:.8f} -> {path}")
    run_checks([k for k in KINDS if k not in ("attention", "based")])


if __name__ == "__main__":
    main()
