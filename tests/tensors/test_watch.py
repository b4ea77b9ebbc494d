"""``gradexp.watch``: what it records, when, and that it stops (offline runs, read back
from the run file the SDK writes)."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import torch
from torch import nn

import gradexp
from gradexp.integrations import torch as gx_torch
from gradexp.runfile import RunFile

pytestmark = pytest.mark.torch  # these tests drive torch tensors or models


def _history(run: Any) -> list[dict[str, Any]]:
    """Every history record of a finished offline run: its values plus ``_step``."""
    run_dir = run.dir
    gradexp.finish()
    return [{**r.values, "_step": r.step} for r in RunFile(run_dir) if r.type == "history"]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def _train(model: nn.Module, steps: int, make_input, *, log=True, accumulate: int = 1):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        for _ in range(accumulate):
            model(make_input()).pow(2).mean().backward()
        opt.step()
        if log:
            gradexp.log({"loss": 1.0})


def _param_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def test_mlp_every_log_freq_steps_all_keys_in_one_record():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="all", log_freq=3)
    _train(model, 10, lambda: torch.randn(5, 6))
    rows = _history(run)
    assert len(rows) == 10  # no extra records: everything rides on the user's steps
    sampled = [r["_step"] for r in rows if any(k.startswith("gradients/") for k in r)]
    assert sampled == [0, 3, 6, 9]
    names = _param_names(model)
    expected = (
        {f"gradients/{n}" for n in names}
        | {f"parameters/{n}" for n in names}
        | {f"grad_norm/{n}" for n in names}
        | {"grad_norm/global", "loss", "_step"}
    )
    for row in rows:
        if row["_step"] in sampled:
            assert set(row) == expected
        else:
            assert set(row) == {"loss", "_step"}
    first = rows[0]
    assert first["gradients/0.weight"]["count"] == 48
    assert first["grad_norm/0.weight"] == pytest.approx(first["gradients/0.weight"]["norm"])
    norms = [first[f"grad_norm/{n}"] for n in names]
    assert first["grad_norm/global"] == pytest.approx(math.sqrt(sum(v * v for v in norms)))


def test_each_sampled_step_is_taken_once(monkeypatch):
    taken: list[int] = []
    original = gx_torch._Watcher._capture

    def counting(self: Any) -> None:
        taken.append(self.steps)
        original(self)

    monkeypatch.setattr(gx_torch._Watcher, "_capture", counting)
    model = _mlp()
    gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=3)
    _train(model, 10, lambda: torch.randn(5, 6))
    # step 0 is taken at the end of its backward pass (no optimizer was known yet) and not
    # again by the optimizer's hook; then 3, 6, 9 by the optimizer's
    assert taken == [0, 4, 7, 10]


def test_values_are_taken_before_the_optimizer_applies_them():
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="all", log_freq=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.ones(1, 3)).sum().backward()  # grad = 1 everywhere
    opt.step()  # weight becomes 0.5
    gradexp.log({"loss": 0.0})
    row = _history(run)[0]
    assert row["parameters/weight"]["mean"] == 1.0  # the value the gradient was computed at
    assert row["gradients/weight"]["mean"] == 1.0
    assert row["grad_norm/weight"] == pytest.approx(math.sqrt(3))


def test_small_cnn_gradients_only():
    model = SmallCNN()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=2)  # default: gradients
    _train(model, 4, lambda: torch.randn(3, 1, 8, 8))
    rows = _history(run)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3]
    names = _param_names(model)
    assert set(names) == {
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "head.weight",
        "head.bias",
    }
    for row in rows:
        keys = {k for k in row if "/" in k}
        if row["_step"] in (0, 2):
            assert keys == {f"gradients/{n}" for n in names} | {f"grad_norm/{n}" for n in names} | {
                "grad_norm/global"
            }
        else:
            assert keys == set()
    assert rows[0]["gradients/conv.weight"]["count"] == 4 * 1 * 3 * 3


def test_nothing_after_unwatch_and_every_hook_removed():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="all", log_freq=1)
    first = next(model.parameters())
    assert first._post_accumulate_grad_hooks  # the backward-pass clock, until an optimizer steps
    _train(model, 2, lambda: torch.randn(5, 6))
    gradexp.unwatch(model)
    assert not first._post_accumulate_grad_hooks
    assert gx_torch._optimizer_hook is None and gx_torch._watchers == ()
    _train(model, 3, lambda: torch.randn(5, 6))
    rows = _history(run)
    with_grads = [r["_step"] for r in rows if "gradients/0.weight" in r]
    assert with_grads == [0, 1]
    assert len(rows) == 5


def test_gradient_accumulation_counts_optimizer_steps():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=2)
    fixed = torch.randn(5, 6)
    _train(model, 4, lambda: fixed, accumulate=3)
    rows = _history(run)
    assert [r["_step"] for r in rows if "gradients/0.weight" in r] == [0, 2]
    # what was recorded is the accumulated gradient of the 3 micro-batches
    model2 = _mlp()
    model2(fixed).pow(2).mean().backward()
    single = model2[0].weight.grad.norm().item()
    assert rows[0]["grad_norm/0.weight"] == pytest.approx(3 * single, rel=1e-5)


def test_parameters_without_a_gradient_are_skipped():
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 2)
            self.unused = nn.Linear(4, 2)
            self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = TwoHeads()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="all", log_freq=1)
    _train(model, 1, lambda: torch.randn(2, 4))
    row = _history(run)[0]
    assert "gradients/used.weight" in row and "grad_norm/used.bias" in row
    assert not any(
        k.startswith(("gradients/unused", "grad_norm/unused", "gradients/frozen")) for k in row
    )
    assert "parameters/unused.weight" in row and "parameters/frozen" in row


def test_no_grad_evaluation_records_nothing():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="all", log_freq=1)
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 6))
            gradexp.log({"val_loss": 0.5})
    rows = _history(run)
    assert [set(r) for r in rows] == [{"val_loss", "_step"}] * 3


def test_several_models_are_prefixed():
    gen, disc = _mlp(), SmallCNN()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch([gen, disc], log="gradients", log_freq=1)
    g_opt = torch.optim.SGD(gen.parameters(), lr=0.01)
    d_opt = torch.optim.SGD(disc.parameters(), lr=0.01)
    for _ in range(2):
        g_opt.zero_grad()
        gen(torch.randn(2, 6)).sum().backward()
        g_opt.step()
        d_opt.zero_grad()
        disc(torch.randn(2, 1, 8, 8)).sum().backward()
        d_opt.step()
        gradexp.log({"loss": 0.0})
    rows = _history(run)
    assert [r["_step"] for r in rows] == [0, 1]
    for row in rows:
        assert "gradients/Sequential.0.weight" in row
        assert "gradients/SmallCNN.conv.weight" in row
        assert "grad_norm/Sequential.global" in row and "grad_norm/SmallCNN.global" in row


def test_a_second_watch_call_gets_a_prefix_and_an_explicit_one_wins():
    a, b, c = _mlp(), _mlp(), _mlp()
    gradexp.watch(a)
    gradexp.watch(b)
    gradexp.watch(c, prefix="teacher")
    prefixes = [w.prefix for w in gx_torch._watchers]
    assert prefixes == ["", "Sequential.", "teacher."]
    gradexp.watch(a, log="all")  # again: replaces its settings, keeps one watcher per model
    assert len(gx_torch._watchers) == 3


def test_a_replaced_optimizer_hands_over_the_clock():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=3)
    old = torch.optim.SGD(model.parameters(), lr=0.01)  # kept alive, but no longer stepped
    new = torch.optim.Adam(model.parameters(), lr=0.01)
    for opt in [old] + [new] * 7:
        opt.zero_grad()
        model(torch.randn(2, 6)).sum().backward()
        opt.step()
        gradexp.log({"loss": 0.0})
    rows = _history(run)
    # old: step 0; new steps once as a challenger, then takes over, counting that step too
    assert [r["_step"] for r in rows if "gradients/0.weight" in r] == [0, 3, 6]
    assert old is not None


def test_two_optimizers_on_one_model_count_each_training_step_once():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=2)
    first = torch.optim.SGD(model[0].parameters(), lr=0.01)
    second = torch.optim.SGD(model[2].parameters(), lr=0.01)
    for _ in range(5):
        model.zero_grad()
        model(torch.randn(2, 6)).sum().backward()
        first.step()
        second.step()
        gradexp.log({"loss": 0.0})
    rows = _history(run)
    assert [r["_step"] for r in rows if "gradients/0.weight" in r] == [0, 2, 4]


def test_hand_written_update_loops_count_backward_passes():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=2)
    for _ in range(4):
        model.zero_grad()
        model(torch.randn(3, 6)).sum().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad
        gradexp.log({"loss": 0.0})
    rows = _history(run)
    assert [r["_step"] for r in rows if "gradients/2.weight" in r] == [0, 2]


def test_log_none_records_gradient_norms_only():
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log=None, log_freq=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(5, 6)).pow(2).mean().backward()
    expected = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf).item()
    opt.step()
    gradexp.log({"loss": 0.0})
    row = _history(run)[0]
    keys = {k for k in row if "/" in k}
    assert keys == {f"grad_norm/{n}" for n in _param_names(model)} | {"grad_norm/global"}
    for name, norm in expected.items():
        assert row[f"grad_norm/{name}"] == pytest.approx(norm, rel=1e-6)
    assert row["grad_norm/global"] == pytest.approx(total, rel=1e-6)


def test_non_finite_gradients_show_in_the_norms():
    model = nn.Linear(2, 1)
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log="gradients", log_freq=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.tensor([[float("inf"), 1.0]])).sum().backward()
    opt.step()
    gradexp.log({"loss": 0.0})
    row = _history(run)[0]
    assert row["grad_norm/weight"] == math.inf and row["gradients/weight"]["inf"] == 1
    assert row["grad_norm/global"] == math.inf


def test_watch_before_init_and_without_a_run_is_harmless():
    model = _mlp()
    gradexp.watch(model, log_freq=1)
    _train(model, 2, lambda: torch.randn(2, 6), log=False)  # no run: nothing happens
    run = gradexp.init(project="watch", mode="offline")
    _train(model, 2, lambda: torch.randn(2, 6))
    rows = _history(run)
    # the steps without a run left nothing behind; both steps of the run are sampled
    assert [r["_step"] for r in rows if "gradients/0.weight" in r] == [0, 1]
    assert len(rows) == 2


def test_a_failing_capture_never_breaks_training(monkeypatch):
    model = _mlp()
    run = gradexp.init(project="watch", mode="offline")
    gradexp.watch(model, log_freq=1)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("device lost")

    monkeypatch.setattr(gx_torch, "capture_histogram", broken)
    with pytest.warns(UserWarning, match="device lost") as caught:
        _train(model, 3, lambda: torch.randn(2, 6))
    assert len([w for w in caught if "device lost" in str(w.message)]) == 1
    assert len(_history(run)) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="log must be"):
        gradexp.watch(_mlp(), log="weights")
    with pytest.raises(ValueError, match="log_freq"):
        gradexp.watch(_mlp(), log_freq=0)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        gradexp.watch(object())


def test_watch_from_several_threads_at_once():
    models = [_mlp() for _ in range(8)]
    threads = [threading.Thread(target=gradexp.watch, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(gx_torch._watchers) == 8
    assert len({w.prefix for w in gx_torch._watchers}) == 8
    gradexp.unwatch()
    assert gx_torch._watchers == () and gx_torch._optimizer_hook is None
