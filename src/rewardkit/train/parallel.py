"""Data-parallel training under accelerate: what the recipes need to run the same step on N processes.

``accelerate launch`` (or ``torchrun``) starts one process per device, each running the whole recipe on
the same data. :class:`Parallel` wraps the :class:`accelerate.Accelerator` of the run (DDP over gloo on
CPUs or nccl on GPUs; FSDP2 when accelerate is configured so; bf16 autocast when its
``mixed_precision`` says so; DeepSpeed is refused for now) and keeps a step's arithmetic that of one
process:

- every process computes the step's global batch (the same seeded order everywhere) and takes every
  N-th item of it (:meth:`Parallel.share`): disjoint, deterministic shares;
- a recipe's loss is a sum over its share divided by the size of the *global* batch, and the engines
  average gradients over processes, so :meth:`Parallel.backward` multiplies by N: the average of
  the N shares' gradients is then the one-process gradient of the step, whatever the sizes of the
  micro-batches (only the order of the float additions differs);
- the gradient all-reduce runs once per step, in the last micro-batch's backward (``no_sync``
  before it; :meth:`Parallel.micro_steps`). Every process runs as many micro-batches as the busiest
  one (a zero-loss forward where it has none left), because the sharded engines gather weights in
  every forward, a collective all processes must join;
- only the main process writes (checkpoints, exports, results, logs); all read the same checkpoint
  when resuming, after the main one has recovered it.

One process (plain ``rewardkit train``) is the same code with N = 1.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


@functools.cache
def _net_class():
    import torch

    class Net(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            # the blocks FSDP wraps one by one (accelerate reads this of the module it wraps)
            self._no_split_modules = getattr(model, "_no_split_modules", None)

        def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
            out = fn(self.model, *args)
            # copies, not views (a pair's chosen and rejected halves, a head's column): FSDP hooks its
            # backward onto the outputs, and an in-place op on a view would slip past that hook
            return tuple(o.clone() for o in out) if isinstance(out, tuple) else out.clone()

    return Net


def Net(model):  # noqa: N802 - a class, built on first use so that importing this module does not import torch
    """The model as one module whose ``forward`` runs a readout ``fn(model, *args)`` (the head read at
    the last token, at pair ends, at step ends). The engines act in the forward of the module they
    wrap (DDP readies its gradient all-reduce there, FSDP gathers the weights), so every forward of
    training and evaluation goes through this module, wrapped or not: ``net(fn, *args)``."""
    return _net_class()(model)


def launched() -> bool:
    """Whether this process is one of several started by a distributed launcher (accelerate, torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Whether this process is the first of its run (the one that writes), from the launcher's ``RANK``."""
    return int(os.environ.get("RANK", "0")) == 0


class Parallel:
    """The processes of one training run (see the module docstring); one process when not launched
    by a distributed launcher."""

    def __init__(self):
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        if self.accelerator.gradient_accumulation_steps != 1:
            raise ValueError(f"the accelerate configuration sets gradient_accumulation_steps={self.accelerator.gradient_accumulation_steps}; "
                             "rewardkit accumulates gradients itself (micro-batches of --max-tokens-per-micro-batch within "
                             "--pairs-per-step): set it to 1")
        kind = self.accelerator.distributed_type
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        # accelerate (1.15) leaves FSDP to accelerator devices and runs a CPU launch of an FSDP
        # configuration as DDP; rewardkit applies the same FSDP2 (torch's fully_shard) itself there
        self.fsdp_on_cpu = kind == DistributedType.MULTI_CPU and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        fsdp = kind == DistributedType.FSDP or self.fsdp_on_cpu
        if fsdp and os.environ.get("FSDP_VERSION", "1") != "2":
            raise ValueError("rewardkit trains under FSDP2 (fsdp_version: 2 in the accelerate config, as in examples/accelerate/fsdp.yaml); "
                             f"this launch asks for FSDP version {os.environ.get('FSDP_VERSION', '1')}")
        if kind == DistributedType.DEEPSPEED:
            raise NotImplementedError("DeepSpeed: rewardkit does not yet save DeepSpeed's partitioned optimizer state in its checkpoints; "
                                      "train with examples/accelerate/ddp.yaml or fsdp.yaml (FSDP2 shards weights, gradients and "
                                      "optimizer state like ZeRO-3)")
        #: the engine shards the weights and optimizer state: saving gathers them from every process
        self.sharded = fsdp
        self.engine = ("FSDP2" if fsdp else {DistributedType.NO: "one process", DistributedType.MULTI_CPU: "DDP",
                                              DistributedType.MULTI_GPU: "DDP"}.get(kind, str(kind)))
        if self.world > 1:
            self.engine += f" ({torch.distributed.get_backend()})"

    def describe(self) -> str:
        precision = self.accelerator.mixed_precision
        return f"{self.engine}, {self.world} process{'es' if self.world > 1 else ''} on {self.device.type}" + (
            f", mixed precision {precision}" if precision != "no" else "")

    # ---------------------------------------------------------------- the model

    def prepare(self, model, optimizer):
        """(the :class:`Net` over ``model`` wrapped by the engine, the optimizer it steps). Load a
        checkpoint after this (:func:`~rewardkit.train.common.first_state`): sharding replaces the
        parameters the optimizer steps."""
        net = Net(model)
        if self.fsdp_on_cpu:
            return _fully_shard(net, optimizer), optimizer
        # parameters the optimizer steps outside the model (regression's combination logits) are set
        # aside while the engine wraps the model, which maps every parameter it steps to the wrapped ones
        inside = {id(p) for p in net.parameters()}
        outside = [[p for p in g["params"] if id(p) not in inside] for g in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) in inside]
        net, stepper = self.accelerator.prepare(net, optimizer)
        for group, extra in zip(optimizer.param_groups, outside):
            group["params"] += extra
        return net, stepper

    def unsharded(self, model, hf, build: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
        """``(model, hf)`` whole, for the export on the main process: themselves, unless the engine
        shards them; then every process gathers the weights and the main process loads them into a
        fresh copy from ``build()`` (``(None, None)`` in the others)."""
        if not self.sharded:
            return model, hf
        from .checkpoint import whole

        weights = {k: whole(v) for k, v in model.named_parameters()}  # a collective: every process
        if not self.is_main:
            return None, None
        fresh, fresh_hf = build()
        missing = fresh.load_state_dict(weights, strict=False).missing_keys
        params = {k for k, _ in fresh.named_parameters()}
        if params - set(weights) or any(k in params for k in missing):
            raise RuntimeError(f"the gathered weights do not fit a fresh copy of the model ({sorted(params - set(weights))[:3]} ...)")
        return fresh, fresh_hf

    # ---------------------------------------------------------------- a step

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's share of a step's global batch: every N-th item from its rank on."""
        return list(items[self.rank :: self.world])

    def most(self, n: int) -> int:
        """The largest ``n`` over the processes."""
        if self.world == 1:
            return n
        import torch

        return int(self.accelerator.reduce(torch.tensor([n], device=self.device), "max").item())

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the processes (a step's loss and counts, for the logs)."""
        if self.world == 1:
            return list(values)
        import torch

        return self.accelerator.reduce(torch.tensor(list(values), dtype=torch.float64, device=self.device), "sum").tolist()

    def backward(self, loss) -> None:
        """Backward of a loss that is this process's share of the step's sum over the global batch
        divided by its size: times N, because the engines average gradients over the N processes."""
        self.accelerator.backward(loss * self.world)

    def _no_sync(self, net):
        if self.fsdp_on_cpu:
            return _fsdp_no_sync(net)
        return self.accelerator.no_sync(net)

    def micro_steps(self, net, batches: Sequence[T], idle: Callable[[], Any]) -> Iterator[T]:
        """Each of ``batches`` (this process's micro-batches of a step), the loop body running without
        the gradient all-reduce except for the step's last micro-batch. A process with fewer
        micro-batches than the busiest runs ``idle()`` (a zero loss through ``net``) for the rest,
        so every process joins every forward's collectives (DDP's buffer broadcast, FSDP's weight
        gathers) and the last backward's gradient reduction."""
        most = self.most(len(batches))
        for i in range(most):
            with contextlib.nullcontext() if i == most - 1 else self._no_sync(net):
                if i < len(batches):
                    yield batches[i]
                else:
                    self.backward(idle())

    def average_grad(self, param) -> None:
        """Average the gradient of a parameter that lives outside the wrapped model over the processes."""
        if self.world == 1 or not param.requires_grad:
            return
        import torch

        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        param.grad = self.accelerator.reduce(grad, "mean")

    # ---------------------------------------------------------------- files

    def wait(self) -> None:
        """Wait until every process gets here."""
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self, path: Path, model, optimizer, state: dict[str, Any]) -> None:
        """Write a checkpoint from the main process; under a sharded engine every process first
        gathers its shards (the weights and optimizer state are whole in every process under DDP)."""
        from .checkpoint import gather_checkpoint, save_checkpoint

        if self.sharded:
            gathered = gather_checkpoint(model, optimizer)
            if self.is_main:
                save_checkpoint(path, model, optimizer, state, gathered)
        elif self.is_main:
            save_checkpoint(path, model, optimizer, state)


def _fully_shard(net, optimizer):
    """FSDP2 as accelerate applies it (each transformer block its own unit, then the whole ``net``),
    with ``optimizer`` switched to the sharded parameters."""
    from torch.distributed.fsdp import fully_shard

    before = dict(net.named_parameters())
    blocks = set(getattr(net.model, "_no_split_modules", None) or ())
    for module in list(net.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(net)
    after = dict(net.named_parameters())
    switch = {id(before[k]): after[k] for k in before}
    for group in optimizer.param_groups:
        group["params"] = [switch.get(id(p), p) for p in group["params"]]
    return net


@contextlib.contextmanager
def _fsdp_no_sync(net):
    net.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        net.set_requires_gradient_sync(True)
