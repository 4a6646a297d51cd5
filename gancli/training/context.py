"""What a family's objective may use of the run it trains: the ``TrainingContext``, and torchrun's environment.

An objective (``gancli.families.base.Objective``) gets a ``TrainingContext`` as ``self.ctx``, not the loop: the data
and the networks on the device, the batches and the noise of each step (pure functions of the seed, the rank and the
step, which is what makes a resumed run exact), the optimisers' updates, autocast and the log. Nothing else of the
loop is reachable from a step, so the loop can change without the families noticing.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import torch

from gancli import devices, latents
from gancli.devices import describe, preferred_memory_format
from gancli.options import Options
from gancli.training.batches import Batches
from gancli.training.checkpoints import RunState
from gancli.training.clock import MEMORY_SHARE, UNPLANNED
from gancli.training.rundir import RunDir, TrainError

TORCH_BYTES = 0.45 * 2**30  # what torch itself holds in a training process here, before any network or data


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: torch.device) -> torch.device:
        if not self.active:
            return device
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def barrier(self):
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def stop(self):
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class TrainingContext:
    """One run's data, networks and step tools, as an objective sees them. Its whole surface:

    - ``opts`` (the run's Options), ``family``, ``device``, ``dist`` (``world``, ``rank``, ``main``), ``out``
      (RUN_DIR, for an objective's own pictures), ``step`` (the loop's current step, read-only);
    - ``data`` (``gancli.families.base.TrainingData``), ``images`` (each domain's uint8 images, on the GPU when
      they fit), ``crop`` (the training size), ``arch_args``, ``conditional``;
    - ``nets`` (name -> network, as ``family.build`` returned them) and ``train_nets`` (the same, wrapped for DDP
      under torchrun: forward passes that train go through these), ``memory_format``, ``amp``;
    - ``total_steps`` (set by the loop, which plans it with its clock, and under --time may plan it again after the
      first steps), ``optimizers`` (set by ``make_optimizers``);
    - ``take()``, ``noise()``, ``optimize()``, ``autocast()``, ``log()``.

    The rest (``make_optimizers``, ``scale_lr``, ``log_setup``, ``release``, ``base_lr``, ``batches_per_epoch``)
    is the loop's.
    """

    def __init__(self, opts: Options, family, dist: Distributed, device: torch.device, run: RunDir,
                 state: RunState):
        self.opts, self.family, self.dist, self.device = opts, family, dist, device
        self._run, self._state = run, state
        self.total_steps = 0
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lr: dict[str, float] = {}
        self._build(opts)

    @property
    def step(self) -> int:
        return self._state.step

    @property
    def out(self) -> Path:
        return self._run.out

    def log(self, message: str):
        """A line of log.txt (written by the main process only)."""
        self._run.log(message)

    def _build(self, opts: Options):
        """The family's data and networks, placed on the device (and wrapped for DDP)."""
        try:
            self.data = self.family.load_data(opts)
            self.arch_args = self.family.arch_args(opts, self.data)
            torch.manual_seed(opts.seed)  # weight init, dropout and the gradient penalty's mixing: all from the seed
            nets = self.family.build(**self.arch_args)
        except TrainError:
            raise
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.crop = self.data.crop
        self._fit_batch_size(opts)
        self._check_step_memory(opts)
        self.conditional = self.family.is_conditional(self.arch_args)
        self.images = [self._place_data(d.images) for d in self.data.domains]
        self.batches_per_epoch = len(self.data) // (opts.batch_size * self.dist.world)
        self.batches = Batches(opts.batch_size, self.batches_per_epoch, self.crop, opts.random_crop, opts.mirror,
                               self.dist.rank, self.dist.world)
        self.memory_format = preferred_memory_format(nets["generator"], self.device)
        self.nets = {k: net.to(self.device, memory_format=self.memory_format) for k, net in nets.items()}
        self.train_nets = dict(self.nets)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Batch-norm running statistics stay per process (they only matter for sampling, and rank 0's are
            # saved); broadcasting them on every forward breaks D's separate real and fake passes.
            self.train_nets = {k: DDP(net, device_ids=ids, broadcast_buffers=False) for k, net in self.nets.items()}
        # on by default on CUDA; on the CPU only when asked for: 1.6-1.75x here (avx512_bf16), but it lowered recall
        # in a three-seed check against fp32 (bench/RESULTS.md)
        self.amp = opts.bf16 if opts.bf16 is not None else self.device.type == "cuda"
        if self.amp and self.device.type not in ("cuda", "cpu"):
            raise TrainError(f"--bf16 autocast is for CUDA devices and the CPU, not {self.device.type}")
        self.compiled = opts.compile if opts.compile is not None else self.device.type == "cuda"

    def _fit_batch_size(self, opts: Options):
        """Without --batch-size, a batch the data can fill: at least four to an epoch (of the smallest domain), in a
        power of two, when the default is too many; said in the run's first lines. A batch size given, or a resumed
        run's own, is kept (and refused, if the data cannot fill one step)."""
        if "batch_size" in opts.given:
            return
        n = min(len(d) for d in self.data.domains)
        per_batch = self.dist.world * (opts.get("d_steps") or 1)
        if n >= 4 * opts.batch_size * per_batch:
            return
        fitted = 1 << max(0, (n // (4 * per_batch)).bit_length() - 1)
        pack = opts.get("pack") or 1  # --pack M: D takes the batch in packs of M
        fitted = max(pack, fitted - fitted % pack)
        self.data.first.notes.append(f"--batch-size {fitted} chosen: {n} training images make "
                                        f"{n // (fitted * per_batch)} batches an epoch (the default "
                                        f"{opts.batch_size} would make {n // (opts.batch_size * per_batch)})")
        opts.values["batch_size"] = fitted

    def _check_step_memory(self, opts: Options):
        """Before the networks are built: a training step's memory on the CPU, from the family's measured bytes per
        pixel, the batch and the crop; one that cannot fit beside the data in 90% of this machine's memory is
        refused in one line, naming the largest --size that would."""
        per_pixel, have = self.family.step_bytes_per_pixel, devices.machine_memory_bytes()
        if not per_pixel or not have or self.device.type != "cpu":
            return
        data = sum(d.images.numel() for d in self.data.domains)
        room = MEMORY_SHARE * have - TORCH_BYTES - data
        need = per_pixel * opts.batch_size * self.crop ** 2
        if need > room:
            fits = int((max(room, 0) / (per_pixel * opts.batch_size)) ** 0.5)
            largest = self.family.size_rule.largest(fits) if self.family.size_rule else fits // 4 * 4
            raise TrainError(f"a {opts.arch} training step at {self.crop} px and batch {opts.batch_size} needs about "
                             f"{need / 2**30:,.1f} GB (measured at the family's own size, scaled by pixels), more "
                             f"than this machine's {have / 2**30:.1f} GB holds beside the data: the largest --size "
                             f"that fits is about {max(largest, 4)} (or lower --batch-size)")

    def compile_nets(self):
        """``--compile``: each network's forward (and with it its backward) compiled in place by torch.compile, so
        every use of it (the objective's, the DDP wrapper's) runs the compiled code and its weights keep their
        names. On CUDA each compiled pass is replayed as a CUDA graph (``reduce-overhead``): a step's hundreds of
        kernel launches become a few. A compilation that fails falls back to eager for that pass, with a warning,
        rather than ending the run. (Process-wide settings: a process trains one run.)"""
        if not self.compiled:
            return
        import torch._dynamo
        import torch._inductor.config

        torch._dynamo.config.suppress_errors = True
        # no kernel chosen by timing it where the choice changes the numbers: a resumed process must compute what
        # the killed one did, bit for bit
        torch._inductor.config.deterministic = True
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        for net in self.nets.values():
            net.compile(mode=mode)

    def begin_step(self):
        """Before a step's first pass: CUDA graphs' outputs from the last step may be overwritten now."""
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()

    def log_setup(self):
        """The session's first lines of log.txt: the device, the data, and what of the data was skipped."""
        data = self.data
        self.log(f"device {describe(self.device)} x{self.dist.world}; data {data.source}: {len(data)} images "
                 f"{data.channels}x{self.crop}x{self.crop}"
                 + (f", {len(data.class_names)} classes" if self.conditional else "")
                 + f"; {self.batches_per_epoch} batches per epoch; "
                 + (f"{self.total_steps} steps" if self.total_steps < UNPLANNED else
                    f"the length planned from the first steps' pace to end within --time {self.opts.time}")
                 + ("; bf16 autocast" if self.amp else "")
                 + ("; compiled (torch.compile" + (", CUDA graphs)" if self.device.type == "cuda" else ")")
                    if self.compiled else "")
                 + (f"; data kept in host memory ({sum(x.numel() for x in self.images) / 2**30:.1f} GiB)"
                    if self.data_device != self.device else ""))
        for note in (n for d in data.domains for n in d.notes):
            self.log(note)
        for f, why in data.skipped:
            self.log(f"skipped {f}: {why}")
        if data.skipped:
            self.log(f"skipped {len(data.skipped)} file(s), unreadable or far smaller than the rest")

    def _place_data(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 data on the GPU when it fits in a third of the free memory, else in pinned host memory."""
        self.data_device = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() > free // 3:
                self.data_device = torch.device("cpu")
                return images.pin_memory()
        return images.to(self.data_device)

    def release(self, objective):
        """Leave the process group. The DDP wrappers hold it and its gloo threads; left for the interpreter's exit
        to free, they abort the process ("terminate called without an active exception", SIGABRT) and torchrun
        calls a finished run failed. So they are unwrapped everywhere and freed first, while Python is alive."""
        if not self.dist.active:
            return
        wrapped = {id(w): w.module for w in self.train_nets.values() if hasattr(w, "module")}
        for holder in [self, objective, *getattr(objective, "terms", ())]:
            for key, value in list(vars(holder).items()):
                if id(value) in wrapped:
                    setattr(holder, key, wrapped[id(value)])
        self.train_nets = dict(self.nets)
        import gc

        gc.collect()
        self.dist.stop()

    def make_optimizers(self, objective):
        """An Adam per entry of ``objective.optimizers()``; the loop scales their rates from ``base_lr``."""
        for name, (params, lr, betas) in objective.optimizers().items():
            # on CUDA one fused kernel updates every parameter; elsewhere PyTorch's default (foreach), as always
            fused = self.device.type == "cuda" and all(p.is_cuda for p in params) or None
            self.optimizers[name] = torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)
            self.base_lr[name] = lr

    def scale_lr(self, factor: float):
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[name] * factor

    # ------------------------------------------------------------------ what a step calls
    def take(self, images: torch.Tensor, order_seed: int, aug_seed: int, index: int):
        """This process's share of batch ``index`` from ``images``, cropped, mirrored, in [-1, 1]; and its indices
        (on the images' device). A data set shorter than an epoch of another (CycleGAN's smaller domain) wraps
        around. See ``gancli.training.batches``: the draws are a function of (seed, index, rank), applied on the
        device."""
        return self.batches.take(images, order_seed, aug_seed, index, self.device, self.memory_format)

    def noise(self, index: int, n: int, dim: int) -> torch.Tensor:
        """Latents for batch ``index`` of this process: a pure function of (seed, index, rank)."""
        g = torch.Generator(self.device).manual_seed(latents.mix(self.opts.seed + 1, index * self.dist.world
                                                                  + self.dist.rank))
        return torch.randn(n, dim, device=self.device, generator=g)

    def optimize(self, name: str, loss: torch.Tensor):
        """One update of the optimiser ``name`` on ``loss``."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        if self.dist.active or not params:  # DDP's reducer waits for every parameter its forward saw
            loss.backward()
        else:
            # Only this optimiser's gradients: the others' would be thrown away by their own zero_grad before any
            # step reads them. In G's step that skips D's weight gradients (~10% of a DCGAN step on the CPU).
            loss.backward(inputs=params)
        opt.step()

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
