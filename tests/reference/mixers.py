"""Sequence mixers of mechlab's reference models, in plain PyTorch.

Shared by tests/reference/make_fixtures.py (tiny seeded fixtures) and
bench/torch_ar.py (training throughput). The exact formulas are documented in
make_fixtures.py's module docstring; this file implements them.

Every mixer is a pure function ``mixer(u, p)``: ``u`` is [batch, L, d] (float32)
and ``p`` maps *local* parameter names (the reference name without the
``backbone.layers.{l}.sequence_mixer.`` prefix, e.g. ``"projection.weight"``)
to tensors. Sizes (kernel width, state size, l_max, heads, ...) are read off the
parameter shapes. The ``nn.Module`` classes at the end hold parameters under
the same local names (``dict(module.named_parameters())`` plus buffers is a
valid ``p``) and give them their usual initialisation; bench/torch_ar.py
trains them.

Layout conventions: time is dim -2 of activations ([b, L, C]); a long filter
is [L, C] (filter tap t for channel c at h[t, c]).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-5
RMS_EPS = 1e-5
MASK_VALUE = -10000.0
FEATURE_DIM = 8  # Based: width of q and k before the Taylor feature map


# ----------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------


def short_conv(u, weight, bias):
    """Causal depthwise conv: Conv1d(groups=C, padding=k-1), first L outputs.

    u [b, L, C], weight [C, 1, k], bias [C] -> [b, L, C].
    """
    L, C = u.shape[-2], u.shape[-1]
    k = weight.shape[-1]
    y = F.conv1d(u.transpose(-1, -2), weight, bias, padding=k - 1, groups=C)
    return y[..., :L].transpose(-1, -2)


def causal_conv_fft(u, h):
    """y[t, c] = sum_{s<=t} h[t-s, c] u[s, c] with rfft/irfft at n = 2L.

    u [..., L, C], h [L, C] (or broadcastable to u) -> [..., L, C].
    """
    L = u.shape[-2]
    n = 2 * L
    u_f = torch.fft.rfft(u.transpose(-1, -2), n=n)
    h_f = torch.fft.rfft(h.transpose(-1, -2), n=n)
    return torch.fft.irfft(u_f * h_f, n=n)[..., :L].transpose(-1, -2)


def causal_conv_direct(u, h):
    """The same causal convolution as an explicit Toeplitz sum (no FFT)."""
    L = u.shape[-2]
    idx = torch.arange(L)
    lag = idx[:, None] - idx[None, :]  # [t, s] = t - s
    toeplitz = h[lag.clamp(min=0)] * (lag >= 0)[..., None].to(h.dtype)  # [t, s, C]
    return torch.einsum("tsc,...sc->...tc", toeplitz, u)


def causal_conv(u, h, direct=False):
    return causal_conv_direct(u, h) if direct else causal_conv_fft(u, h)


def positional_features(l_max):
    """z[i] = [i/(l_max-1), cos(2 pi 1e-4 i / l_max), -sin(2 pi 1e-4 i / l_max)].

    Computed in float64, rounded to float32; shape [1, l_max, 3].
    """
    i = torch.arange(l_max, dtype=torch.float64)
    angle = 2 * math.pi * 1e-4 * i / l_max
    z = torch.stack([i / (l_max - 1), torch.cos(angle), -torch.sin(angle)], dim=-1)
    return z[None].to(torch.float32)


def unit_ramp(l_max):
    """t[i] = i/(l_max-1) (= torch.linspace(0, 1, l_max)), float64 rounded to float32."""
    return (torch.arange(l_max, dtype=torch.float64) / (l_max - 1)).to(torch.float32)


def hyena_deltas(d):
    """torch.linspace(ln(1e-2)/1.5, ln(1e-2)/0.3, d), float64 rounded to float32."""
    lo, hi = math.log(1e-2) / 1.5, math.log(1e-2) / 0.3
    j = torch.arange(d, dtype=torch.float64)
    return (lo + (hi - lo) * j / (d - 1)).to(torch.float32)


def layer_norm(x, weight, bias):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)


def rms_norm(x, weight):
    """x * rsqrt(mean(x^2, -1) + 1e-5) * weight."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS) * weight


# ----------------------------------------------------------------------------
# Attention and Based
# ----------------------------------------------------------------------------


def attention(x, p):
    d = x.shape[-1]
    qkv = x @ p["Wqkv.weight"].T
    q, k, v = qkv.split(d, dim=-1)
    L = x.shape[1]
    mask = torch.triu(torch.full((L, L), MASK_VALUE), diagonal=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
    y = torch.softmax(scores, dim=-1) @ v
    return F.linear(y, p["out_proj.weight"], p["out_proj.bias"])


def feature_map(x):
    """Taylor feature map: [1, x / f**0.25, vec(x x^T) / (sqrt(2) sqrt(f))]."""
    f = x.shape[-1]
    ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    linear = x / f**0.25
    quad = (x[..., :, None] * x[..., None, :]).flatten(-2) / (math.sqrt(2) * math.sqrt(f))
    return torch.cat([ones, linear, quad], dim=-1)


def based(u, p):
    q = feature_map(u @ p["proj_q.weight"].T)
    k = feature_map(u @ p["proj_k.weight"].T)
    v = u @ p["proj_v.weight"].T
    a = torch.tril(q @ k.transpose(-1, -2))
    y = (a @ v) / (a.sum(dim=-1, keepdim=True) + 1e-12)
    return y @ p["proj_o.weight"].T


# ----------------------------------------------------------------------------
# BaseConv (short and implicit long convolution)
# ----------------------------------------------------------------------------


def implicit_long_filter(p, L, prefix="conv."):
    """h = Linear2(ReLU(Linear0(z[:L]))) -> [L, d]."""
    z = p[f"{prefix}pos_emb.z"][0, :L]
    h = F.relu(F.linear(z, p[f"{prefix}mlp.0.weight"], p[f"{prefix}mlp.0.bias"]))
    return F.linear(h, p[f"{prefix}mlp.2.weight"], p[f"{prefix}mlp.2.bias"])


def base_conv(u, p, direct=False):
    """BaseConv: y = conv(u) * projection(u) + u.

    The conv is short (``conv.conv.weight`` [d,1,k]) or the implicit long
    convolution (``conv.pos_emb.z`` + ``conv.mlp.*``), whichever p holds;
    the long one is causalconv(u, h) + u.
    """
    if "conv.conv.weight" in p:
        c = short_conv(u, p["conv.conv.weight"], p["conv.conv.bias"])
    else:
        c = causal_conv(u, implicit_long_filter(p, u.shape[1]), direct) + u
    proj = F.linear(u, p["projection.weight"], p["projection.bias"])
    return c * proj + u


# ----------------------------------------------------------------------------
# Mamba-1
# ----------------------------------------------------------------------------


def selective_scan_loop(x, delta, A, B, C):
    """Sequential selective scan; returns sum_n h_t[:, :, n] C_t[:, n] (no D term).

    x, delta [b, L, di]; A [di, N]; B, C [b, L, N].
    h_t = exp(delta_t A) * h_{t-1} + (delta_t x_t) outer B_t, h_{-1} = 0.
    """
    b, L, di = x.shape
    h = x.new_zeros(b, di, A.shape[1])
    ys = []
    for t in range(L):
        d_a = torch.exp(delta[:, t, :, None] * A)
        h = d_a * h + (delta[:, t] * x[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, dim=1)


def selective_scan_closed(x, delta, A, B, C):
    """The same scan in closed form (float64, O(L^2)):

    y_t = sum_{s<=t} exp((S_t - S_s) A) . (delta_s x_s) (B_s . C_t),
    S_t = sum_{r<=t} delta_r.
    """
    dt = torch.float64
    x_dtype = x.dtype
    x, delta, A, B, C = (v.to(dt) for v in (x, delta, A, B, C))
    L = x.shape[1]
    S = torch.cumsum(delta, dim=1)  # [b, L, di]
    diff = S[:, :, None, :] - S[:, None, :, :]  # [b, t, s, di]
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))
    decay = torch.exp(diff[..., None] * A)  # [b, t, s, di, N]
    decay = decay * mask[None, :, :, None, None]
    bc = torch.einsum("bsn,btn->btsn", B, C)  # [b, t, s, N]
    y = torch.einsum("btsdn,btsn,bsd->btd", decay, bc, delta * x)
    return y.to(x_dtype)


def mamba(u, p, closed_form=False):
    """Mamba-1 mixer (see make_fixtures.py). No conv when p has no conv1d.weight.

    closed_form=True swaps the sequential scan for selective_scan_closed (a check).
    """
    scan = selective_scan_closed if closed_form else selective_scan_loop
    d_inner = p["in_proj.weight"].shape[0] // 2
    N = p["A_log"].shape[1]
    R = p["dt_proj.weight"].shape[1]
    xz = F.linear(u, p["in_proj.weight"])
    x, z = xz.split(d_inner, dim=-1)
    if "conv1d.weight" in p:
        x = short_conv(x, p["conv1d.weight"], p["conv1d.bias"])
    x = F.silu(x)
    dt, B, C = F.linear(x, p["x_proj.weight"]).split([R, N, N], dim=-1)
    delta = F.softplus(F.linear(dt, p["dt_proj.weight"], p["dt_proj.bias"]))
    A = -torch.exp(p["A_log"])
    y = scan(x, delta, A, B, C) + x * p["D"]
    y = y * F.silu(z)
    return F.linear(y, p["out_proj.weight"])


# ----------------------------------------------------------------------------
# Hyena (order 2)
# ----------------------------------------------------------------------------


def hyena_filter(p, L, d):
    """Implicit filter h [L, d] with exponential-decay modulation."""
    z = p["filter_fn.pos_emb.z"][0, :L]
    f = p["filter_fn.implicit_filter.1.freq"]
    pre = "filter_fn.implicit_filter."
    h = torch.sin(f * F.linear(z, p[pre + "0.weight"], p[pre + "0.bias"]))
    h = torch.sin(f * F.linear(h, p[pre + "2.weight"], p[pre + "2.bias"]))
    h = torch.sin(f * F.linear(h, p[pre + "4.weight"], p[pre + "4.bias"]))
    h = F.linear(h, p[pre + "6.weight"])
    l_max = p["filter_fn.pos_emb.z"].shape[1]
    t = unit_ramp(l_max)[:L, None]
    return h * torch.exp(-t * hyena_deltas(d).abs())


def hyena(u, p, direct=False):
    d = u.shape[-1]
    L = u.shape[1]
    w = F.linear(u, p["in_proj.weight"], p["in_proj.bias"])
    uc = short_conv(w, p["short_filter.weight"], p["short_filter.bias"])
    x1, x2, v = uc.split(d, dim=-1)
    v = v * x1
    h = hyena_filter(p, L, d)
    # As the reference (zoology Hyena built with bias=False): the bias is multiplied by 0.
    v = causal_conv(v, h, direct) + v * (0 * p["filter_fn.bias"])
    v = v * x2
    return F.linear(v, p["out_proj.weight"], p["out_proj.bias"])


# ----------------------------------------------------------------------------
# H3
# ----------------------------------------------------------------------------


def h3_shift_kernel(B, C, L):
    """ks[c, t] = sum_{n: n+t<N} B[c, n] C[c, n+t] for t < L, via FFT at 2N.

    B, C [d, N] -> [L, d] (zero for t >= N).
    """
    N = B.shape[-1]
    k = torch.fft.irfft(torch.fft.rfft(B, n=2 * N).conj() * torch.fft.rfft(C, n=2 * N), n=2 * N)
    k = k[..., : min(N, L)]
    if L > N:
        k = F.pad(k, (0, L - N))
    return k.transpose(0, 1)


def h3_shift_kernel_direct(B, C, L):
    N = B.shape[-1]
    cols = []
    for t in range(L):
        cols.append((B[:, : N - t] * C[:, t:]).sum(-1) if t < N else B.new_zeros(B.shape[0]))
    return torch.stack(cols, dim=0)


def h3_diag_kernel(p, L):
    """S4D kernel, bilinear discretisation, computed in float64 -> [L, H] (dtype of log_dt).

    K[h, t] = 2 Re(sum_n Cp_n dA_n^t),  Cp = B C dt / (1 - dtA/2),
    dA = (1 + dtA/2) / (1 - dtA/2), A = -exp(inv_A_real) + i A_imag.
    """
    f64 = torch.float64
    pre = "kernel.kernel."
    dt = torch.exp(p[pre + "log_dt"].to(f64))[:, None]  # [H, 1]
    A = torch.complex(-torch.exp(p[pre + "inv_A_real"].to(f64)), p[pre + "A_imag"].to(f64))
    Bp, Cp = p[pre + "B"].to(f64), p[pre + "C"][0].to(f64)
    Bc = torch.complex(Bp[..., 0], Bp[..., 1])
    Cc = torch.complex(Cp[..., 0], Cp[..., 1])
    dtA = A * dt
    coef = Bc * Cc * dt / (1 - dtA / 2)
    dA = (1 + dtA / 2) / (1 - dtA / 2)
    powers = torch.exp(torch.log(dA)[..., None] * torch.arange(L, dtype=f64))  # [H, n, L]
    K = 2 * torch.einsum("hn,hnl->hl", coef, powers).real
    return K.to(p[pre + "log_dt"].dtype).transpose(0, 1)


def h3_ssm_recurrent(kv, p):
    """Runs the diagonal SSM as a recurrence (float64) instead of a convolution.

    kv [b, L, H, i, j]: x_t = dA x_{t-1} + (dt/(1-dtA/2)) B u_t, y_t = 2 Re(C x_t).
    Returns y (without the D skip), in kv's dtype.
    """
    f64 = torch.float64
    pre = "kernel.kernel."
    dt = torch.exp(p[pre + "log_dt"].to(f64))[:, None]
    A = torch.complex(-torch.exp(p[pre + "inv_A_real"].to(f64)), p[pre + "A_imag"].to(f64))
    Bp, Cp = p[pre + "B"].to(f64), p[pre + "C"][0].to(f64)
    Bc = torch.complex(Bp[..., 0], Bp[..., 1])
    Cc = torch.complex(Cp[..., 0], Cp[..., 1])
    dtA = A * dt
    dB = dt / (1 - dtA / 2) * Bc  # [H, n]
    dA = (1 + dtA / 2) / (1 - dtA / 2)
    u = kv.to(f64)
    b, L, H, hd, _ = u.shape
    x = torch.zeros(b, H, hd, hd, dA.shape[1], dtype=torch.complex128)
    ys = []
    for t in range(L):
        x = dA[:, None, None, :] * x + dB[:, None, None, :] * u[:, t, ..., None]
        ys.append(2 * (x * Cc[:, None, None, :]).sum(-1).real)
    return torch.stack(ys, dim=1).to(kv.dtype)


def h3(u, p, direct=False, recurrent=False):
    """H3 with shift SSM on k and diagonal SSM on k v^T; output channel j*H + h.

    direct=True: shift kernel and convolutions without FFT; recurrent=True: the
    diagonal SSM as a recurrence instead of its kernel (both are checks).
    """
    b, L, d = u.shape
    q = F.linear(u, p["q_proj.weight"], p["q_proj.bias"])
    k = F.linear(u, p["k_proj.weight"], p["k_proj.bias"])
    v = F.linear(u, p["v_proj.weight"], p["v_proj.bias"])
    shift = h3_shift_kernel_direct if direct else h3_shift_kernel
    ks = shift(p["ssm_k_kernel.kernel.B"], p["ssm_k_kernel.kernel.C"][0], L)
    k = causal_conv(k, ks, direct) + k * p["ssm_k_D"]
    H = p["D"].shape[0]
    hd = d // H
    kv = k.view(b, L, H, hd, 1) * v.view(b, L, H, 1, hd)  # [b, L, h, i, j]
    if recurrent:
        y = h3_ssm_recurrent(kv, p)
    else:
        K = h3_diag_kernel(p, L)  # [L, H]
        K = K[:, :, None].expand(L, H, hd * hd).reshape(L, H * hd * hd)
        y = causal_conv(kv.reshape(b, L, H * hd * hd), K, direct).view(b, L, H, hd, hd)
    y = y + kv * p["D"][:, None, None]
    out = (q.view(b, L, H, hd, 1) * y).sum(3)  # [b, L, h, j]
    out = out.transpose(-1, -2).reshape(b, L, hd * H)  # channel j*H + h
    return F.linear(out, p["output_linear.weight"], p["output_linear.bias"])


# ----------------------------------------------------------------------------
# DeltaNet (flash-linear-attention's layer, as zoology's copy of it configures it)
# ----------------------------------------------------------------------------

L2_EPS = 1e-6  # fla's l2norm: x / sqrt(sum x^2 + 1e-6)


def l2_normalise(x):
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) + L2_EPS)


def delta_rule_recurrent(q, k, v, beta):
    """fla's naive ``delta_rule_recurrence``, step by step, per head (S [dk, dv], S_0 = 0):
    u_t = beta_t (v_t - S_{t-1}^T k_t);  S_t = S_{t-1} + k_t u_t^T;  o_t = S_t^T q_t dk^-1/2.

    q, k [b, L, H, dk] (already l2-normalised), v [b, L, H, dv], beta [b, L, H] -> [b, L, H, dv].
    """
    b, L, H, dk = q.shape
    S = q.new_zeros(b, H, dk, v.shape[-1])
    q = q * dk**-0.5
    out = []
    for t in range(L):
        kt = k[:, t]
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S))
        S = S + kt[..., :, None] * u[..., None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    return torch.stack(out, dim=1)


def delta_rule_chunked(q, k, v, beta, chunk=4):
    """The same rule in the chunked (WY) form of fla's chunk kernel: within a chunk of C
    positions, U = T diag(beta) V and W = T diag(beta) K with T = (I + tril(diag(beta) K K^T, -1))^-1;
    the chunk's corrected values V' = U - W S, its outputs Q S + tril(Q K^T) V', and
    S <- S + K^T V'. Shapes as delta_rule_recurrent."""
    b, L, H, dk = q.shape
    dv = v.shape[-1]
    q, k, v, beta = (x.transpose(1, 2) for x in (q * dk**-0.5, k, v, beta))  # head-first
    S = q.new_zeros(b, H, dk, dv)
    out = []
    for c0 in range(0, L, chunk):
        qc, kc, vc, bc = q[:, :, c0:c0 + chunk], k[:, :, c0:c0 + chunk], v[:, :, c0:c0 + chunk], beta[:, :, c0:c0 + chunk]
        n = qc.shape[2]
        eye = torch.eye(n, dtype=q.dtype)
        a = torch.tril(bc[..., :, None] * (kc @ kc.transpose(-1, -2)), diagonal=-1)
        t_inv = torch.linalg.solve_triangular(eye + a, eye.expand_as(a), upper=False, unitriangular=True)
        w = t_inv @ (bc[..., None] * kc)
        u = t_inv @ (bc[..., None] * vc)
        vp = u - w @ S
        out.append(qc @ S + torch.tril(qc @ kc.transpose(-1, -2)) @ vp)
        S = S + kc.transpose(-1, -2) @ vp
    return torch.cat(out, dim=2).transpose(1, 2)


def delta_net(u, p, chunked=False):
    """DeltaNet: q, k, v projections (no bias), each through its causal depthwise short conv
    (no bias) and SiLU; heads split channel-major (c = h*dh + i); q, k l2-normalised per head;
    beta = sigmoid(b_proj(u)); the delta rule; a per-head RMSNorm (one weight [dv], eps 1e-5);
    o_proj (no bias). The number of heads is b_proj's output width."""
    b, L, _ = u.shape
    H = p["b_proj.weight"].shape[0]
    q, k, v = (
        F.silu(short_conv(u @ p[f"{n}_proj.weight"].T, p[f"{n}_conv1d.weight"], None))
        for n in ("q", "k", "v")
    )
    q, k, v = (x.reshape(b, L, H, -1) for x in (q, k, v))
    q, k = l2_normalise(q), l2_normalise(k)
    beta = torch.sigmoid(u @ p["b_proj.weight"].T)
    rule = delta_rule_chunked if chunked else delta_rule_recurrent
    o = rms_norm(rule(q, k, v, beta), p["o_norm.weight"])
    return o.reshape(b, L, -1) @ p["o_proj.weight"].T


# ----------------------------------------------------------------------------
# GLA (flash-linear-attention's GatedLinearAttention, as zoology's copy of it configures it)
# ----------------------------------------------------------------------------

GLA_GATE_RANK = 16  # fla's gate_low_rank_dim
GLA_NORMALISER = 16  # fla's gate_logit_normalizer


def gla_recurrent(q, k, v, g):
    """fla's ``naive_recurrent_gla``, step by step, per head (S [dk, dv], S_0 = 0):
    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T;  o_t = S_t^T q_t dk^-1/2.

    q, k, g [b, L, H, dk] (g the log-decays, <= 0), v [b, L, H, dv] -> [b, L, H, dv].
    """
    b, L, H, dk = q.shape
    S = q.new_zeros(b, H, dk, v.shape[-1])
    q = q * dk**-0.5
    out = []
    for t in range(L):
        S = torch.exp(g[:, t])[..., None] * S + k[:, t, ..., :, None] * v[:, t, ..., None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    return torch.stack(out, dim=1)


def gla_chunked(q, k, v, g, chunk=4):
    """The same recurrence in the chunked form of fla's ``chunk_gla``: within a chunk, with
    B_t = sum_{r<=t} g_r (the chunk's cumulative log-decay),
    o_t = (q_t exp(B_t))^T S + sum_{r<=t} (sum_i q_ti k_ri exp(B_ti - B_ri)) v_r and
    S <- diag(exp(B_C)) S + sum_r (k_r exp(B_C - B_r)) v_r^T. Shapes as gla_recurrent."""
    b, L, H, dk = q.shape
    dv = v.shape[-1]
    q, k, v, g = (x.transpose(1, 2) for x in (q * dk**-0.5, k, v, g))  # head-first
    S = q.new_zeros(b, H, dk, dv)
    out = []
    for c0 in range(0, L, chunk):
        qc, kc, vc = q[:, :, c0:c0 + chunk], k[:, :, c0:c0 + chunk], v[:, :, c0:c0 + chunk]
        B = torch.cumsum(g[:, :, c0:c0 + chunk], dim=2)
        n = qc.shape[2]
        causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
        span = (B[:, :, :, None, :] - B[:, :, None, :, :]).masked_fill(~causal[:, :, None], 0.0)
        scores = torch.einsum("bhtk,bhrk,bhtrk->bhtr", qc, kc, torch.exp(span)).masked_fill(~causal, 0.0)
        out.append((qc * torch.exp(B)) @ S + scores @ vc)
        last = B[:, :, -1:]
        S = torch.exp(last).transpose(-1, -2) * S + (kc * torch.exp(last - B)).transpose(-1, -2) @ vc
    return torch.cat(out, dim=2).transpose(1, 2)


def gla(u, p, chunked=False):
    """GLA: q, k (d -> d/2), v (d -> d) projections, no bias; heads split channel-major; the
    log-decay g = logsigmoid(gk_proj.1(gk_proj.0(u))) / 16 (low rank 16, the second with bias);
    the gated recurrence; a per-head RMSNorm (one weight [dv], eps 1e-5) times silu(g_proj(u));
    o_proj (no bias). The number of heads is the values' width over the norm's."""
    b, L, D = u.shape
    dv = p["g_norm_swish_gate.weight"].shape[0]
    H = p["v_proj.weight"].shape[0] // dv
    q, k, v = (u @ p[f"{n}_proj.weight"].T for n in ("q", "k", "v"))
    gk = F.linear(u @ p["gk_proj.0.weight"].T, p["gk_proj.1.weight"], p["gk_proj.1.bias"])
    g = F.logsigmoid(gk) / GLA_NORMALISER
    q, k, v, g = (x.reshape(b, L, H, -1) for x in (q, k, v, g))
    rule = gla_chunked if chunked else gla_recurrent
    gate = (u @ p["g_proj.weight"].T).reshape(b, L, H, dv)
    o = rms_norm(rule(q, k, v, g), p["g_norm_swish_gate.weight"]) * F.silu(gate)
    return o.reshape(b, L, -1) @ p["o_proj.weight"].T


# ----------------------------------------------------------------------------
# Mamba-2 (mamba_ssm's Mamba2, as the paper's code names it: bias=False, defaults otherwise)
# ----------------------------------------------------------------------------


def ssd_recurrent(x, dt, A, B, C):
    """The SSD recurrence step by step, per head (S [p, n], S_0 = 0), as mamba_ssm's
    selective_state_update: S_t = exp(dt_t A) S_{t-1} + (dt_t x_t) B_t^T;  y_t = S_t C_t.

    x [b, L, h, p], dt [b, L, h], A [h], B and C [b, L, n] (one group) -> [b, L, h, p].
    """
    b, L, h, p = x.shape
    S = x.new_zeros(b, h, p, B.shape[-1])
    out = []
    for t in range(L):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        S = decay * S + (dt[:, t, :, None] * x[:, t])[..., :, None] * B[:, t, None, None, :]
        out.append(torch.einsum("bhpn,bn->bhp", S, C[:, t]))
    return torch.stack(out, dim=1)


def ssd_chunked(x, dt, A, B, C, chunk=4):
    """The same in the state space dual's chunked form: within a chunk, with a_t = dt_t A and
    c_t = sum_{r<=t} a_r, y_t = sum_{r<=t} exp(c_t - c_r) (C_t . B_r) dt_r x_r + exp(c_t) S C_t,
    then S <- exp(c_last) S + sum_r exp(c_last - c_r) (dt_r x_r) B_r^T. Shapes as ssd_recurrent."""
    b, L, h, p = x.shape
    S = x.new_zeros(b, h, p, B.shape[-1])
    out = []
    for c0 in range(0, L, chunk):
        xc, dtc, Bc, Cc = x[:, c0:c0 + chunk], dt[:, c0:c0 + chunk], B[:, c0:c0 + chunk], C[:, c0:c0 + chunk]
        n = xc.shape[1]
        cum = torch.cumsum(dtc * A, dim=1)  # [b, n, h]
        causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
        span = (cum[:, :, None, :] - cum[:, None, :, :]).masked_fill(~causal[None, :, :, None], 0.0)
        weights = torch.exp(span).masked_fill(~causal[None, :, :, None], 0.0)  # [b, t, r, h]
        scores = torch.einsum("btn,brn->btr", Cc, Bc)
        u = dtc[..., None] * xc  # [b, n, h, p]
        y = torch.einsum("btrh,btr,brhp->bthp", weights, scores, u)
        y = y + torch.exp(cum)[..., None] * torch.einsum("bhpn,btn->bthp", S, Cc)
        out.append(y)
        last = cum[:, -1]  # [b, h]
        tail = torch.exp(last[:, None, :] - cum)  # [b, n, h]
        S = torch.exp(last)[:, :, None, None] * S + torch.einsum("brh,brhp,brn->bhpn", tail, u, Bc)
    return torch.cat(out, dim=1)


def mamba2(u, p, chunked=False):
    """Mamba-2: in_proj (no bias) split [z | x | B | C | dt]; x, B, C through the causal
    depthwise conv (with bias) and SiLU; dt = softplus(dt + dt_bias); A = -exp(A_log) (per
    head); the SSD recurrence with B and C shared by the heads; y + D x (D per head);
    RMSNorm(y * silu(z)) over all inner channels (eps 1e-5) times its weight; out_proj."""
    b, L, _ = u.shape
    h = p["dt_bias"].shape[0]
    inner = p["norm.weight"].shape[0]
    n = (p["in_proj.weight"].shape[0] - 2 * inner - h) // 2
    z, xbc, dt = (u @ p["in_proj.weight"].T).split([inner, inner + 2 * n, h], dim=-1)
    xbc = F.silu(short_conv(xbc, p["conv1d.weight"], p["conv1d.bias"]))
    x, B, C = xbc.split([inner, n, n], dim=-1)
    dt = F.softplus(dt + p["dt_bias"])
    A = -torch.exp(p["A_log"])
    x = x.reshape(b, L, h, inner // h)
    y = (ssd_chunked if chunked else ssd_recurrent)(x, dt, A, B, C) + p["D"][:, None] * x
    y = y.reshape(b, L, inner) * F.silu(z)
    return rms_norm(y, p["norm.weight"]) @ p["out_proj.weight"].T


# ----------------------------------------------------------------------------
# nn.Modules (for training): parameters under the reference's local names
# ----------------------------------------------------------------------------


class Functional(nn.Module):
    """Base: forward(u) = fn(u, {name: tensor} of parameters and buffers)."""

    def tensors(self):
        p = dict(self.named_parameters())
        p.update(self.named_buffers())
        return p


class _Conv(nn.Module):
    def __init__(self, channels, kernel):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, padding=kernel - 1)


class _PosEmb(nn.Module):
    def __init__(self, l_max, trainable):
        super().__init__()
        z = positional_features(l_max)
        if trainable:
            self.z = nn.Parameter(z)
        else:
            self.register_buffer("z", z, persistent=False)


class _ImplicitLongConv(nn.Module):
    def __init__(self, d, l_max, hidden=16):
        super().__init__()
        self.pos_emb = _PosEmb(l_max, trainable=False)
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, d))


class BaseConv(Functional):
    """kernel = int for a short conv, None for the implicit long conv."""

    def __init__(self, d, kernel=3, l_max=1024):
        super().__init__()
        self.projection = nn.Linear(d, d)
        self.conv = _Conv(d, kernel) if kernel is not None else _ImplicitLongConv(d, l_max)

    def forward(self, u):
        return base_conv(u, self.tensors())


class Based(Functional):
    def __init__(self, d, feature_dim=FEATURE_DIM):
        super().__init__()
        self.proj_q = nn.Linear(d, feature_dim, bias=False)
        self.proj_k = nn.Linear(d, feature_dim, bias=False)
        self.proj_v = nn.Linear(d, d, bias=False)
        self.proj_o = nn.Linear(d, d, bias=False)

    def forward(self, u):
        return based(u, self.tensors())


class Mamba(Functional):
    """Mamba-1 with mamba_ssm's initialisation of A_log, D and dt_proj."""

    def __init__(self, d, d_state=16, d_conv=4, expand=2, dt_min=1e-3, dt_max=1e-1):
        super().__init__()
        di = expand * d
        R = math.ceil(d / 16)
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        if d_conv > 0:
            self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1)
        self.x_proj = nn.Linear(di, R + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(R, di)
        self.dt_proj._no_reinit = True
        nn.init.uniform_(self.dt_proj.weight, -(R**-0.5), R**-0.5)
        dt = torch.exp(torch.rand(di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(di, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, u):
        return mamba(u, self.tensors())


class _Sin(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.freq = nn.Parameter(torch.ones(1, dim))


class _HyenaFilter(nn.Module):
    def __init__(self, d, l_max, order=64):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(d))
        self.pos_emb = _PosEmb(l_max, trainable=True)
        act = _Sin(order)  # one module, shared: its freq is stored once as "1.freq"
        self.implicit_filter = nn.Sequential(
            nn.Linear(3, order), act,
            nn.Linear(order, order), act,
            nn.Linear(order, order), act,
            nn.Linear(order, d, bias=False),
        )


class Hyena(Functional):
    def __init__(self, d, l_max=1024, order=64, short_kernel=3):
        super().__init__()
        self.in_proj = nn.Linear(d, 3 * d)
        self.short_filter = nn.Conv1d(3 * d, 3 * d, short_kernel, groups=3 * d, padding=short_kernel - 1)
        self.filter_fn = _HyenaFilter(d, l_max, order)
        self.out_proj = nn.Linear(d, d)

    def forward(self, u):
        return hyena(u, self.tensors())


class _Holder(nn.Module):
    pass


class H3(Functional):
    """H3 with S4D-Lin initialisation of the diagonal SSM and a shift-SSM B = e_0."""

    def __init__(self, d, d_state=64, head_dim=1):
        super().__init__()
        H = d // head_dim
        n2 = d_state // 2
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.output_linear = nn.Linear(d, d)
        shift = _Holder()
        b = torch.zeros(d, d_state)
        b[:, 0] = 1.0
        shift.B = nn.Parameter(b)
        shift.C = nn.Parameter(torch.randn(1, d, d_state))
        self.ssm_k_kernel = _Holder()
        self.ssm_k_kernel.kernel = shift
        self.ssm_k_D = nn.Parameter(torch.randn(d))
        diag = _Holder()
        diag.log_dt = nn.Parameter(torch.rand(H) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
        diag.C = nn.Parameter(torch.randn(1, H, n2, 2) * 0.5**0.5)
        diag.B = nn.Parameter(torch.stack([torch.ones(H, n2), torch.zeros(H, n2)], dim=-1))
        diag.inv_A_real = nn.Parameter(torch.full((H, n2), math.log(0.5)))
        diag.A_imag = nn.Parameter(math.pi * torch.arange(n2, dtype=torch.float32).repeat(H, 1))
        self.kernel = _Holder()
        self.kernel.kernel = diag
        self.D = nn.Parameter(torch.randn(H))

    def forward(self, u):
        return h3(u, self.tensors())


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return rms_norm(x, self.weight)


class DeltaNet(Functional):
    """fla's DeltaNet layer as zoology configures it (num_heads 2, short convs of 4 without bias,
    beta, no output gate). Linears N(0, 0.02) as zoology's _init_weights draws them; the convs
    keep PyTorch's default U(+-1/sqrt(K)); o_norm.weight = 1."""

    def __init__(self, d, heads=2, conv=4):
        super().__init__()
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.b_proj = nn.Linear(d, heads, bias=False)
        for n in ("q", "k", "v"):
            setattr(self, f"{n}_conv1d", nn.Conv1d(d, d, conv, groups=d, padding=conv - 1, bias=False))
        self.o_norm = RMSNorm(d // heads)
        self.o_proj = nn.Linear(d, d, bias=False)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.b_proj, self.o_proj):
            nn.init.normal_(lin.weight, std=0.02)

    def forward(self, u):
        return delta_net(u, self.tensors())


class GLA(Functional):
    """fla's GatedLinearAttention layer as zoology configures it (num_heads 2, no short convs,
    expand_k 0.5, expand_v 1, low-rank gate 16 with bias, output gate through a per-head RMSNorm).
    Linears N(0, 0.02) with zero bias as zoology's _init_weights draws them;
    g_norm_swish_gate.weight = 1."""

    def __init__(self, d, heads=2):
        super().__init__()
        self.q_proj = nn.Linear(d, d // 2, bias=False)
        self.k_proj = nn.Linear(d, d // 2, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.g_proj = nn.Linear(d, d, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d, GLA_GATE_RANK, bias=False), nn.Linear(GLA_GATE_RANK, d // 2))
        self.o_proj = nn.Linear(d, d, bias=False)
        self.g_norm_swish_gate = RMSNorm(d // heads)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.g_proj, *self.gk_proj, self.o_proj):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.zeros_(self.gk_proj[1].bias)

    def forward(self, u):
        return gla(u, self.tensors())


class Mamba2(Functional):
    """mamba_ssm's Mamba2 with bias=False (the paper's mixer table) and its own init: in_proj and
    out_proj PyTorch's default (zoology divides out_proj by sqrt(layers); the bench's model
    re-initialises Linears anyway), dt_bias the inverse softplus of a log-uniform dt in
    [0.001, 0.1], A_log = log U(1, 16), D = 1, norm weight 1. d_state and headdim default to
    mamba_ssm's 128 and 64."""

    def __init__(self, d, d_state=128, headdim=64, d_conv=4):
        super().__init__()
        inner = 2 * d
        h = inner // headdim
        assert h * headdim == inner, (d, headdim)
        dt = torch.exp(torch.rand(h) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(h).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(h))
        self.in_proj = nn.Linear(d, 2 * inner + 2 * d_state + h, bias=False)
        self.conv1d = nn.Conv1d(inner + 2 * d_state, inner + 2 * d_state, d_conv,
                                groups=inner + 2 * d_state, padding=d_conv - 1)
        self.norm = RMSNorm(inner)
        self.out_proj = nn.Linear(inner, d, bias=False)

    def forward(self, u):
        return mamba2(u, self.tensors())
