"""PyTorch eager reference training benchmark for mechlab's AR-32 model.

Mirrors the associative-recall setup of Arora et al., "Mechanistic evaluation
of Transformers and state space models" (arXiv 2505.15105), zoology-style
backbone, exactly as mechlab implements it:

Task (AR-32): vocabulary 8196 (PAD 0, BOS 1, EOS 2, keys 3..4098, values
4099..8194, id 8195 unused). Each sequence holds n=16 pairs,
``BOS k1 v1 ... k16 v16 EOS kq vq EOS`` (37 tokens); keys are distinct
(sampled without replacement from 4096), values are distinct independently
and paired by index, and the queried pair q is uniform over the 16. Only the
answer is supervised: cross-entropy of the logits at position 34 (kq)
predicting the token at position 35 (vq).

Model: tied word embedding and learned absolute position embedding (1024
positions), both N(0, 0.02); 2 pre-LN blocks
``r = r + Attn(LN1(r)); r = r + MLP(LN2(r))`` (LayerNorm eps 1e-5);
MLP = Linear(d, 4d) -> exact GELU -> Linear(4d, d); single-head attention with
Wqkv = Linear(d, 3d, no bias), causal softmax(q k^T / sqrt(d)) v where masked
scores get -10000 added (not -inf), and out_proj = Linear(d, d). Final
LayerNorm; the LM head (embedding weight transposed, no bias) is applied only
at the query position. Linear weights N(0, 0.02) and biases 0, except out_proj
and fc2 weights N(0, 0.02 / sqrt(2 * layers)).

Training: AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0), fp32, no
gradient clipping. Batches are generated up front from a fixed seed, then
``--warmup`` untimed steps run before ``--steps`` timed steps
(forward + backward + optimizer). One line of JSON is printed.

Other mixers (``--mixer``, default ``attention``): the paper's model for each,
with the mixers of tests/reference/mixers.py (formulas in
tests/reference/make_fixtures.py) and no position embedding:
  based      layer 0 BaseConv (short causal conv, kernel 3), layer 1 Based
             linear attention (Taylor feature map, feature dim 8), alternating
  base_conv  layer 0 BaseConv kernel 3, layer 1 BaseConv with the implicit
             long convolution (MLP 3 -> 16 -> d on positional features,
             l_max 1024), alternating
  h3         H3: shift SSM on k, diagonal (S4D) SSM on k v^T; state
             ``--h3-state`` (64) and head dim ``--h3-head-dim`` (1)
  hyena      order-2 Hyena, short filter 3, implicit filter width 64, l_max 1024
  mamba      Mamba-1 blocks ``r = r + Mamba(RMSNorm(r))`` with no MLP
             (d_inner 2d, d_state 16, d_conv 4, dt_rank ceil(d/16)); the
             selective scan is a sequential loop over positions
  delta_net  flash-linear-attention's DeltaNet in every layer (2 heads, short
             convs of 4 without bias, l2-normalised q/k, beta); the delta rule
             is a sequential loop over positions (fla's naive recurrence)
  gla        flash-linear-attention's GatedLinearAttention in every layer (2
             heads, keys d/2, low-rank gate 16, swish output gate through a
             per-head RMSNorm); the recurrence is a sequential loop over
             positions (fla's naive_recurrent_gla)
  mamba2     mamba_ssm's Mamba2 (bias=False) in Mamba blocks: d_inner 2d, one
             group, d_conv 4, heads of 64 and d_state 128 where 64 divides 2d,
             else heads of 8 and d_state 16; the SSD recurrence is a sequential
             loop over positions
All other blocks keep the MLP. Long convolutions use rfft/irfft at 2L. Init
(approximate; this is a speed benchmark): every nn.Linear and the embedding
N(0, 0.02), biases 0, out_proj and fc2 weights N(0, 0.02 / sqrt(2 * layers)),
convolutions PyTorch's default, SSM parameters their own initialisation
(Mamba's A_log, D, dt_proj; H3's S4D-Lin log_dt, A, B and random C; Hyena's
positional features, Sin frequency 1 and filter bias).

Usage: python bench/torch_ar.py --d-model 64 --steps 200 --warmup 20 --batch 32 --threads 2
       python bench/torch_ar.py --mixer hyena --d-model 64 --steps 50 --warmup 5 --threads 2
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import mixers  # noqa: E402

VOCAB = 8196
BOS, EOS = 1, 2
KEY_BASE, VALUE_BASE, NUM_KEYS = 3, 4099, 4096
PAIRS = 16
SEQ_LEN = 2 * PAIRS + 5  # BOS, pairs, EOS, kq, vq, EOS
QUERY_POS = 2 * PAIRS + 2  # position of kq
ANSWER_POS = QUERY_POS + 1  # position of vq
MAX_POSITIONS = 1024
LAYERS = 2
INIT_STD = 0.02
MASK_VALUE = -10000.0
EXPECTED_PARAMS = {64: 689_792, 16: 154_016}  # attention
MIXERS = ("attention", "based", "base_conv", "h3", "hyena", "mamba", "delta_net", "gla", "mamba2")


def make_batches(rng: np.random.Generator, count: int, batch: int) -> torch.Tensor:
    """Return `count` AR-32 batches as an int64 tensor of shape (count, batch, SEQ_LEN)."""
    seqs = np.empty((count * batch, SEQ_LEN), dtype=np.int64)
    for row in seqs:
        keys = KEY_BASE + rng.choice(NUM_KEYS, PAIRS, replace=False)
        values = VALUE_BASE + rng.choice(NUM_KEYS, PAIRS, replace=False)
        q = rng.integers(PAIRS)
        row[0] = BOS
        row[1 : 2 * PAIRS + 1 : 2] = keys
        row[2 : 2 * PAIRS + 1 : 2] = values
        row[2 * PAIRS + 1] = EOS
        row[QUERY_POS] = keys[q]
        row[ANSWER_POS] = values[q]
        row[SEQ_LEN - 1] = EOS
    return torch.from_numpy(seqs).view(count, batch, SEQ_LEN)


class Attention(nn.Module):
    """Single-head causal self-attention with an additive -10000 mask."""

    def __init__(self, d: int, seq_len: int = SEQ_LEN):
        super().__init__()
        self.Wqkv = nn.Linear(d, 3 * d, bias=False)
        self.out_proj = nn.Linear(d, d)
        self.scale = 1.0 / math.sqrt(d)
        mask = torch.triu(torch.full((seq_len, seq_len), MASK_VALUE), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.Wqkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) * self.scale + self.mask
        return self.out_proj(scores.softmax(dim=-1) @ v)


def make_mixer(mixer: str, d: int, layer: int, h3_state: int = 64, h3_head_dim: int = 1) -> nn.Module:
    """The sequence mixer of block `layer` for a non-attention model."""
    if mixer == "based":
        return mixers.BaseConv(d, kernel=3) if layer % 2 == 0 else mixers.Based(d)
    if mixer == "base_conv":
        return mixers.BaseConv(d, kernel=3 if layer % 2 == 0 else None, l_max=MAX_POSITIONS)
    if mixer == "h3":
        return mixers.H3(d, d_state=h3_state, head_dim=h3_head_dim)
    if mixer == "hyena":
        return mixers.Hyena(d, l_max=MAX_POSITIONS)
    if mixer == "mamba":
        return mixers.Mamba(d)
    if mixer == "delta_net":
        return mixers.DeltaNet(d)
    if mixer == "gla":
        return mixers.GLA(d)
    raise ValueError(f"unknown mixer {mixer!r}")


class Block(nn.Module):
    """Pre-LN block; with ``mlp=False`` it is mixer only (no LN2/MLP).

    The mixer is single-head attention unless a module is passed.
    """

    def __init__(self, d: int, seq_len: int = SEQ_LEN, mlp: bool = True, mixer: nn.Module = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, seq_len) if mixer is None else mixer
        self.mlp = mlp
        if mlp:
            self.ln2 = nn.LayerNorm(d, eps=1e-5)
            self.fc1 = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r + self.attn(self.ln1(r))
        if not self.mlp:
            return r
        return r + self.fc2(F.gelu(self.fc1(self.ln2(r))))


class MambaBlock(nn.Module):
    """``r = r + Mamba(RMSNorm(r))`` (or Mamba-2's): no MLP."""

    def __init__(self, d: int, mixer: nn.Module = None):
        super().__init__()
        self.norm = mixers.RMSNorm(d)
        self.mixer = mixers.Mamba(d) if mixer is None else mixer

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r + self.mixer(self.norm(r))


class Model(nn.Module):
    """The AR model; the keyword defaults give the AR-32 benchmark model."""

    def __init__(
        self,
        d: int,
        vocab: int = VOCAB,
        layers: int = LAYERS,
        seq_len: int = SEQ_LEN,
        query_pos: int = QUERY_POS,
        mlp: bool = True,
        mixer: str = "attention",
        h3_state: int = 64,
        h3_head_dim: int = 1,
    ):
        super().__init__()
        self.layers = layers
        self.query_pos = query_pos
        self.word_embeddings = nn.Embedding(vocab, d)
        if mixer == "attention":
            self.position_embeddings = nn.Embedding(MAX_POSITIONS, d)
            self.blocks = nn.ModuleList(Block(d, seq_len, mlp) for _ in range(layers))
        elif mixer == "mamba":
            self.position_embeddings = None
            self.blocks = nn.ModuleList(MambaBlock(d) for _ in range(layers))
        elif mixer == "mamba2":
            # mamba_ssm's heads of 64 and d_state 128 where 64 divides 2d; else heads of 8 and
            # d_state 16 (mechlab's ModelConfig::fitted).
            fits = (2 * d) % 64 == 0
            self.position_embeddings = None
            self.blocks = nn.ModuleList(
                MambaBlock(d, mixers.Mamba2(d, d_state=128 if fits else 16, headdim=64 if fits else 8))
                for _ in range(layers)
            )
        else:
            self.position_embeddings = None
            self.blocks = nn.ModuleList(
                Block(d, seq_len, mlp, make_mixer(mixer, d, l, h3_state, h3_head_dim)) for l in range(layers)
            )
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self._init_weights()

    def _init_weights(self) -> None:
        residual_std = INIT_STD / math.sqrt(2 * self.layers)
        for name, module in self.named_modules():
            if getattr(module, "_no_reinit", False):  # Mamba's dt_proj keeps its own init
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(("out_proj", "fc2")) else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits at the query position only, shape (batch, vocab)."""
        r = self.word_embeddings(tokens)
        if self.position_embeddings is not None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
            r = r + self.position_embeddings(positions)
        for block in self.blocks:
            r = block(r)
        hidden = self.ln_f(r)[:, self.query_pos]
        return hidden @ self.word_embeddings.weight.t()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed training steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixer", choices=MIXERS, default="attention")
    parser.add_argument("--h3-state", type=int, default=64, help="H3 state size N")
    parser.add_argument("--h3-head-dim", type=int, default=1, help="H3 head dimension")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (timed between synchronisations)")
    args = parser.parse_args()
    device = torch.device(args.device)
    # The reference mixers build masks and index tensors without naming a device.
    torch.set_default_device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batches = make_batches(np.random.default_rng(args.seed), args.warmup + args.steps, args.batch).to(device)

    model = Model(args.d_model, mixer=args.mixer, h3_state=args.h3_state, h3_head_dim=args.h3_head_dim).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    if args.mixer == "attention" and args.d_model in EXPECTED_PARAMS:
        assert n_params == EXPECTED_PARAMS[args.d_model], n_params
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
    )

    def step(tokens: torch.Tensor) -> None:
        logits = model(tokens)
        loss = F.cross_entropy(logits, tokens[:, ANSWER_POS])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for tokens in batches[: args.warmup]:
        step(tokens)
    sync()
    start = time.perf_counter()
    for tokens in batches[args.warmup :]:
        step(tokens)
    sync()
    seconds = time.perf_counter() - start

    print(json.dumps({
        "impl": "pytorch-eager",
        "device": args.device,
        "mixer": args.mixer,
        "d_model": args.d_model,
        "batch": args.batch,
        "seq_len": SEQ_LEN,
        "steps": args.steps,
        "params": n_params,
        "seconds": round(seconds, 4),
        "tokens_per_s": round(args.steps * args.batch * SEQ_LEN / seconds, 1),
        "torch_version": torch.__version__,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
