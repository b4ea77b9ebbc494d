"""A nanoGPT-style training loop: the config is the script's globals, overridable from the
command line, and wandb logs every eval interval (train/val loss, lr, mfu)."""

import math
import sys
import time

import torch
import torch.nn as nn
from torch.nn import functional as F

# -----------------------------------------------------------------------------
# default config values
out_dir = "out"
eval_interval = 5
log_interval = 1
eval_iters = 2
wandb_log = True
wandb_project = "owt"
wandb_run_name = "gpt2-tiny"
batch_size = 4
block_size = 16
n_embd = 32
vocab_size = 64
learning_rate = 6e-4
max_iters = 20
warmup_iters = 4
lr_decay_iters = 20
min_lr = 6e-5
decay_lr = True
# -----------------------------------------------------------------------------
for arg in sys.argv[1:]:  # poor man's configurator: --key=value
    key, val = arg[2:].split("=")
    globals()[key] = type(globals()[key])(val)
config_keys = [
    k
    for k, v in globals().items()
    if not k.startswith("_") and isinstance(v, (int, float, bool, str))
]
config = {k: globals()[k] for k in config_keys}  # will be useful for logging
# -----------------------------------------------------------------------------

torch.manual_seed(1337)


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.head(torch.tanh(self.emb(idx)))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def get_batch(split):
    data = torch.randint(vocab_size, (batch_size, block_size + 1))
    return data[:, :-1], data[:, 1:]


model = TinyLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            _, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean()
    model.train()
    return out


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


if wandb_log:
    import wandb

    wandb.init(project=wandb_project, name=wandb_run_name, config=config)

iter_num = 0
best_val_loss = 1e9
running_mfu = -1.0
t0 = time.time()
while True:
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    if iter_num % eval_interval == 0:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if wandb_log:
            wandb.log(
                {
                    "iter": iter_num,
                    "train/loss": losses["train"],
                    "val/loss": losses["val"],
                    "lr": lr,
                    "mfu": running_mfu * 100,  # convert to percentage
                }
            )
        if losses["val"] < best_val_loss:
            best_val_loss = losses["val"]
    X, Y = get_batch("train")
    logits, loss = model(X, Y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    t1 = time.time()
    dt = t1 - t0
    t0 = t1
    if iter_num % log_interval == 0:
        running_mfu = 0.01 if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * 0.01
    iter_num += 1
    if iter_num > max_iters:
        break
