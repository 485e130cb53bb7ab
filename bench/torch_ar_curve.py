"""PyTorch reference learning curve on a reduced associative-recall task.

Calibrates mechlab's training: it trains the same model as ``torch_ar.py``
(imported from it) on a small AR task and prints test accuracy and loss as
training proceeds.

Task (AR, single query): ``--num-kv`` key and value tokens, split evenly,
K = num_kv / 2 keys with ids 3..3+K-1 and K values with ids 3+K..3+2K-1
(PAD 0, BOS 1, EOS 2; vocabulary num_kv + 4). A sequence of n = ``--pairs``
pairs is ``BOS k1 v1 ... kn vn EOS kq vq EOS`` (2n + 5 tokens): keys are
distinct, values are distinct independently and paired by index, and the
queried pair q is uniform over the n. The loss is the cross-entropy of the
logits at the query position 2n + 2 predicting the answer token at 2n + 3;
accuracy is the argmax over the full vocabulary.

Data: a fixed training set of ``--train-size`` sequences generated once from
``--train-seed`` and read in the same order every epoch (batch i is rows
(i*B + j) mod N, j < B); a test set of 1024 sequences from ``--test-seed``,
of which the first ``--eval-size`` (320) are evaluated.

Model: ``torch_ar.Model`` (tied embedding, 1024 learned positions, N(0, 0.02)
init with out_proj/fc2 at N(0, 0.02 / sqrt(2 * layers)), pre-LN blocks with
LayerNorm eps 1e-5, GELU MLP unless ``--no-mlp``, single-head attention with
an additive -10000 causal mask, LM head only at the query position).

Training: AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0), fp32, no
clipping, one thread. Learning rate: linear warmup over W = max(1,
round(0.1 * steps)) steps, lr * (step + 1) / W, then cosine to 0,
lr * 0.5 * (1 + cos(pi * (step - W) / (steps - W))), or constant lr after the
warmup with ``--schedule constant``. Every ``--eval-every`` steps (and after
the last step) one JSON line is printed:
``{"step", "test_acc", "test_loss", "train_loss_recent"}``, the last being
the mean training loss since the previous line.

Usage: python bench/torch_ar_curve.py --num-kv 64 --pairs 4 --d-model 64 --lr 1e-3 --steps 4000 --eval-every 500
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ar import BOS, EOS, Model  # noqa: E402

TEST_SIZE = 1024


def make_sequences(rng: np.random.Generator, count: int, num_kv: int, pairs: int) -> torch.Tensor:
    """Return `count` AR sequences as an int64 tensor of shape (count, 2 * pairs + 5)."""
    num_keys = num_kv // 2
    key_base, value_base = 3, 3 + num_keys
    # Distinct keys / values per row: the first `pairs` entries of a random permutation.
    keys = key_base + rng.random((count, num_keys)).argsort(axis=1)[:, :pairs]
    values = value_base + rng.random((count, num_keys)).argsort(axis=1)[:, :pairs]
    q = rng.integers(pairs, size=count)
    rows = np.arange(count)
    seqs = np.empty((count, 2 * pairs + 5), dtype=np.int64)
    seqs[:, 0] = BOS
    seqs[:, 1 : 2 * pairs + 1 : 2] = keys
    seqs[:, 2 : 2 * pairs + 1 : 2] = values
    seqs[:, 2 * pairs + 1] = EOS
    seqs[:, 2 * pairs + 2] = keys[rows, q]
    seqs[:, 2 * pairs + 3] = values[rows, q]
    seqs[:, 2 * pairs + 4] = EOS
    return torch.from_numpy(seqs)


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Learning rate for 0-based `step`: linear warmup, then cosine to 0 or constant."""
    warmup = max(1, round(0.1 * args.steps))
    if step < warmup:
        return args.lr * (step + 1) / warmup
    if args.schedule == "constant":
        return args.lr
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-kv", type=int, default=64, help="key + value tokens (even)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--no-mlp", action="store_true", help="attention-only blocks")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--train-size", type=int, default=64000)
    parser.add_argument("--eval-size", type=int, default=320, help="test rows evaluated")
    parser.add_argument("--seed", type=int, default=0, help="model init seed")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=2)
    args = parser.parse_args()
    if args.num_kv % 2 or args.pairs > args.num_kv // 2:
        parser.error("--num-kv must be even and at least 2 * --pairs")
    if not 0 < args.eval_size <= TEST_SIZE:
        parser.error(f"--eval-size must be in 1..{TEST_SIZE}")

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    seq_len = 2 * args.pairs + 5
    query_pos, answer_pos = 2 * args.pairs + 2, 2 * args.pairs + 3
    train = make_sequences(np.random.default_rng(args.train_seed), args.train_size, args.num_kv, args.pairs)
    test = make_sequences(np.random.default_rng(args.test_seed), TEST_SIZE, args.num_kv, args.pairs)
    test = test[: args.eval_size]

    model = Model(
        args.d_model,
        vocab=args.num_kv + 4,
        layers=args.layers,
        seq_len=seq_len,
        query_pos=query_pos,
        mlp=not args.no_mlp,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
    )

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits = model(test)
            target = test[:, answer_pos]
            loss = F.cross_entropy(logits, target).item()
            acc = (logits.argmax(dim=-1) == target).float().mean().item()
        model.train()
        return acc, loss

    offsets = torch.arange(args.batch)
    recent = []
    for step in range(args.steps):
        tokens = train[(step * args.batch + offsets) % args.train_size]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        loss = F.cross_entropy(model(tokens), tokens[:, answer_pos])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent.append(loss.item())
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            acc, test_loss = evaluate()
            print(json.dumps({
                "step": done,
                "test_acc": round(acc, 4),
                "test_loss": round(test_loss, 4),
                "train_loss_recent": round(sum(recent) / len(recent), 4),
            }), flush=True)
            recent = []


if __name__ == "__main__":
    main()
