"""``gradexp.watch(model)``: gradient and parameter histograms from torch models.

Every ``log_freq`` training steps, for every parameter of the watched model(s), in ONE set
of values attached to the next step the user logs:

- ``gradients/<name>``: histogram and statistics of the gradient (``log="gradients"``, ``"all"``);
- ``parameters/<name>``: histogram and statistics of the value (``log="parameters"``, ``"all"``);
- ``grad_norm/<name>``: the gradient's L2 norm, and ``grad_norm/global``: the norm of all of
  them together, as ``torch.nn.utils.clip_grad_norm_`` computes it (NaN or inf if any
  gradient holds one) (``log="gradients"``, ``"all"`` or ``None``).

What counts as a step: an optimizer step. A global ``torch.optim`` step pre-hook watches
every optimizer; the first one that updates any of a model's parameters becomes that
model's clock (a later one takes over if that one is dropped or replaced), and the values
are taken just before it applies the gradients (so with
gradient accumulation they are the accumulated gradients, and under AMP's ``GradScaler``
the unscaled ones). Until an optimizer steps, backward passes count instead (loops that
update parameters by hand), taken at the end of the backward pass. Evaluation loops under
``torch.no_grad`` step nothing, so they record nothing.

Cost: on steps that are not sampled, one hook call that increments a counter. On a sampled
step, CUDA tensors are reduced on the device without waiting (``gradexp.sdk.values.device``), CPU
tensors are copied and reduced on the stream thread.

torch is only imported inside these functions: a model exists, so torch is loaded.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

from gradexp.protocol.values import decode_value
from gradexp.sdk.values.base import HostArray
from gradexp.sdk.values.histogram import capture_histogram

__all__ = ["unwatch", "watch"]

_LOG_CHOICES = ("gradients", "parameters", "all", None)

# The watchers, and the one optimizer hook they share. Guarded by _lock: watch() and
# unwatch() may be called from any thread; the hook itself only reads the tuple, which
# is replaced (never mutated) so it can be read without the lock.
_lock = threading.Lock()
_watchers: tuple[_Watcher, ...] = ()
_optimizer_hook: Any = None


class GradNorms:
    """The gradient norms of one sampled step, computed on the device in one pass.

    Taken on the caller's thread: ``torch._foreach_norm`` over every gradient (one fused
    kernel on CUDA), their combined norm, all copied to the host without waiting. Read
    on the stream thread by the :class:`GradNorm` values that index into it.
    """

    def __init__(self, torch: Any, grads: list[Any]) -> None:
        dense = [g for g in grads if g.layout == torch.strided]
        norms: list[Any] = [None] * len(grads)
        if dense:
            try:
                computed = list(torch._foreach_norm(dense, 2, dtype=torch.float64))
            except (RuntimeError, TypeError, AttributeError):  # private API: keep a way out
                computed = [torch.linalg.vector_norm(g, dtype=torch.float64) for g in dense]
            it = iter(computed)
            norms = [next(it) if g.layout == torch.strided else None for g in grads]
        for i, g in enumerate(grads):
            if norms[i] is None:  # sparse gradients (e.g. nn.Embedding(sparse=True))
                values = g.coalesce().values() if g.layout == torch.sparse_coo else g.values()
                norms[i] = torch.linalg.vector_norm(values, dtype=torch.float64)
        device = grads[0].device
        stacked = torch.stack([n.to(device) for n in norms])
        total = torch.linalg.vector_norm(stacked).reshape(1)
        self._host = HostArray.of_torch(torch, torch.cat([stacked, total]))
        self._values: list[float] | None = None
        self._lock = threading.Lock()
        self.nbytes = self._host.nbytes

    def get(self, index: int) -> float:
        with self._lock:  # several GradNorm values read it; compute once
            if self._values is None:
                self._values = [float(v) for v in self._host.get()]
                self._host.release()
            return self._values[index]


class HistogramNorms:
    """The gradient norms of one sampled step, read from the gradients' histograms.

    When ``watch`` takes the gradients' histograms anyway, each one's statistics (computed
    on the stream thread, or on the device) already hold the L2 norm: the norms cost the
    training thread nothing. NaN if the gradient holds a NaN, inf if it holds an infinity,
    as ``torch.nn.utils.clip_grad_norm_`` reports them.
    """

    def __init__(self, histograms: list[Any]) -> None:
        self._histograms = histograms
        self._values: list[float] | None = None
        self._lock = threading.Lock()
        self.nbytes = 0

    def get(self, index: int) -> float:
        with self._lock:  # several GradNorm values read it; compute once
            if self._values is None:
                norms = [_norm_of(decode_value(h.encode(None))) for h in self._histograms]
                self._values = [*norms, math.sqrt(sum(n * n for n in norms))]
            return self._values[index]


def _norm_of(stats: dict[str, Any]) -> float:
    if stats["nan"]:
        return math.nan
    if stats["inf"] or stats["ninf"]:
        return math.inf
    return float(stats["norm"])


class GradNorm:
    """One gradient norm: ``index`` into a :class:`GradNorms` or :class:`HistogramNorms`
    (the last index is the global norm)."""

    __slots__ = ("_index", "_norms", "nbytes")

    def __init__(self, norms: GradNorms | HistogramNorms, index: int) -> None:
        self._norms = norms
        self._index = index
        self.nbytes = 0

    def encode(self, sink: Any = None) -> Any:
        value = self._norms.get(self._index)
        if math.isfinite(value):
            return value
        return {"_type": "float", "value": "NaN" if math.isnan(value) else "Infinity"}


class _Watcher:
    """One watched model: its settings, its step counter and its hooks."""

    def __init__(self, torch: Any, model: Any, log: str | None, log_freq: int, prefix: str) -> None:
        self.torch = torch
        self.model = weakref.ref(model)
        self.grads = log in ("gradients", "all")
        self.norms = log in ("gradients", "all", None)
        self.params = log in ("parameters", "all")
        self.log_freq = log_freq
        self.prefix = prefix
        self.param_ids = frozenset(id(p) for p in model.parameters())
        self.optimizer: weakref.ref[Any] | None = None  # the clock, once one is seen
        self.challenger: weakref.ref[Any] | None = None  # another one that stepped since
        self.foreign: weakref.WeakSet[Any] = weakref.WeakSet()  # optimizers of other params
        self.steps = 0
        self.backward_passes = 0
        self.backward_capture_at = -1  # backward_passes when the backward clock last sampled
        self.backward_hook: Any = None
        self.failed = False
        first = next((p for p in model.parameters() if p.requires_grad), None)
        if first is not None:
            self.backward_hook = first.register_post_accumulate_grad_hook(self._on_backward)

    # --- the clocks -------------------------------------------------------------------

    def on_optimizer_step(self, optimizer: Any) -> None:
        """Before ``optimizer.step()`` applies the gradients (the caller's thread).

        The clock is the first optimizer seen stepping this model's parameters. Another one
        takes over when the clock is gone (garbage collected), or when it steps twice with
        no tick of the clock in between (the old optimizer was replaced but is still
        referenced); two optimizers that alternate (one per part of the model) leave the
        first as the clock, so each training step counts once.
        """
        clock = self.optimizer() if self.optimizer is not None else None
        if optimizer is not clock:
            if optimizer in self.foreign:
                return
            if not any(
                id(p) in self.param_ids for group in optimizer.param_groups for p in group["params"]
            ):
                self.foreign.add(optimizer)
                return
            challenger = self.challenger() if self.challenger is not None else None
            if clock is not None and challenger is not optimizer:
                self.challenger = weakref.ref(optimizer)
                return
            if challenger is optimizer:
                self.steps += 1  # its first step, held back while it was a challenger
            # This optimizer is the clock from now on; backward passes stop counting.
            self.optimizer = weakref.ref(optimizer)
            self.remove_backward_hook()
        self.challenger = None
        step = self.steps
        self.steps = step + 1
        if step % self.log_freq == 0:
            if step == 0 and self.backward_capture_at == self.backward_passes > 0:
                # The backward-pass clock already took these very values at the end of the
                # last backward pass (nothing ran since): taking them twice would only cost.
                return
            self.capture()

    def _on_backward(self, param: Any) -> None:
        """After a backward pass accumulated into one parameter (until an optimizer steps).

        Runs on an autograd thread, mid-backward: the other gradients are not all done, so
        the capture is queued to run when this backward pass ends.
        """
        if self.optimizer is not None:  # an optimizer is the clock (maybe a dead one: so
            return  # be it, the next optimizer step takes over)
        passes = self.backward_passes
        self.backward_passes = passes + 1
        if passes % self.log_freq == 0:
            self.backward_capture_at = passes + 1
            self.torch.autograd.Variable._execution_engine.queue_callback(self.capture)

    def remove_backward_hook(self) -> None:
        if self.backward_hook is not None:
            self.backward_hook.remove()
            self.backward_hook = None

    # --- the capture --------------------------------------------------------------------

    def capture(self) -> None:
        """Take every parameter's values at once and attach them to the next step.

        Runs inside ``optimizer.step()`` or at the end of a backward pass: it must never
        raise into the training loop, so a failure is reported once and the step skipped.
        """
        try:
            self._capture()
        except Exception as exc:
            if not self.failed:
                self.failed = True
                from gradexp.core.output import warn

                warn(
                    f"watch() could not record this step ({type(exc).__name__}: {exc}); "
                    "training goes on, and this is said once per model",
                    stacklevel=3,
                )

    def _capture(self) -> None:
        from gradexp.sdk.facade import current_run

        run = current_run()
        model = self.model()
        if run is None or model is None:
            return
        torch = self.torch
        values: dict[str, Any] = {}
        named_grads: list[tuple[str, Any]] = []  # (key, gradient or its histogram)
        with torch.no_grad():
            for name, p in model.named_parameters():
                key = self.prefix + name
                if self.grads and p.grad is not None:
                    histogram = _histogram_or_none(p.grad)
                    if histogram is not None:
                        values[f"gradients/{key}"] = histogram
                        named_grads.append((key, histogram))
                elif self.norms and p.grad is not None:
                    named_grads.append((key, p.grad))
                if self.params:
                    histogram = _histogram_or_none(p)
                    if histogram is not None:
                        values[f"parameters/{key}"] = histogram
            if named_grads:
                # with histograms, their statistics hold the norms; alone (log=None), one
                # fused norm over every gradient on its device
                sources = [g for _, g in named_grads]
                norms = HistogramNorms(sources) if self.grads else GradNorms(torch, sources)
                for i, (key, _) in enumerate(named_grads):
                    values[f"grad_norm/{key}"] = GradNorm(norms, i)
                values[f"grad_norm/{self.prefix}global"] = GradNorm(norms, len(named_grads))
        if values:
            run._attach_to_next_step(values)


def _histogram_or_none(t: Any) -> Any:
    """A histogram of ``t``, or None for a tensor that cannot have one (never raises)."""
    try:
        return capture_histogram(t)
    except (TypeError, ValueError):
        return None


def _on_optimizer_step(optimizer: Any, args: Any, kwargs: Any) -> None:
    for watcher in _watchers:  # a tuple, replaced whole by watch/unwatch: no lock needed
        watcher.on_optimizer_step(optimizer)


def watch(
    models: Any,
    log: str | None = "gradients",
    log_freq: int = 100,
    *,
    prefix: str | None = None,
) -> None:
    """Record gradient and/or parameter histograms of torch model(s) every ``log_freq`` steps.

    ``models``: a ``torch.nn.Module`` or a list of them. ``log``: ``"gradients"``
    (default), ``"parameters"``, ``"all"``, or ``None`` for the gradient norms alone.
    ``prefix`` goes in front of the parameter names (``gradients/<prefix><name>``); by
    default a model watched alongside others gets its class name and a dot
    (``gradients/Discriminator.fc.weight``), and a lone model none. Watching a model again
    replaces its settings. Safe to call before ``gradexp.init()``: nothing is recorded
    while no run is active.
    """
    global _watchers, _optimizer_hook
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    if log not in _LOG_CHOICES:
        raise ValueError(f'log must be "gradients", "parameters", "all" or None, not {log!r}')
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise ValueError(f"log_freq must be a positive int, not {log_freq!r}")
    many = isinstance(models, (list, tuple))
    model_list = list(models) if many else [models]
    for m in model_list:
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"watch() takes torch.nn.Module models, not {type(m).__name__}")
    if prefix is not None and many and len(model_list) > 1:
        raise ValueError("give each model its own prefix: call watch() once per model")
    with _lock:
        kept = [
            w for w in _watchers if w.model() is not None and not _is_any(w.model(), model_list)
        ]
        for w in _watchers:
            if w not in kept:
                w.remove_backward_hook()
        taken = {w.prefix for w in kept}
        added: list[_Watcher] = []
        for m in model_list:
            if prefix is not None:
                p = prefix if not prefix or prefix[-1] in "./" else prefix + "."
            elif not kept and not added and len(model_list) == 1:
                p = ""
            else:
                p = _free_prefix(type(m).__name__, taken)
            taken.add(p)
            added.append(_Watcher(torch, m, log, log_freq, p))
        _watchers = (*kept, *added)
        if _optimizer_hook is None:
            _optimizer_hook = register_optimizer_step_pre_hook(_on_optimizer_step)


def unwatch(models: Any = None) -> None:
    """Stop watching ``models`` (a module or a list), or every watched model; removes every
    hook ``watch`` added. Values already taken still go into the next step logged."""
    global _watchers, _optimizer_hook
    with _lock:
        if models is None:
            gone, kept = list(_watchers), []
        else:
            targets = list(models) if isinstance(models, (list, tuple)) else [models]
            gone = [w for w in _watchers if _is_any(w.model(), targets)]
            kept = [w for w in _watchers if w not in gone and w.model() is not None]
        for w in gone:
            w.remove_backward_hook()
        _watchers = tuple(kept)
        if not _watchers and _optimizer_hook is not None:
            _optimizer_hook.remove()
            _optimizer_hook = None


def _is_any(model: Any, models: list[Any]) -> bool:
    return any(model is m for m in models)


def _free_prefix(name: str, taken: set[str]) -> str:
    candidate, n = f"{name}.", 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}."
    return candidate
