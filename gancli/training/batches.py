"""Training batches cut from uint8 images that stay where they are (on the GPU when they fit): sample order, crops
and mirror flips as batched tensor operations on the images' device, with no per-image Python and no host-to-device
copy per step.

What a step takes is a pure function of (seed, step, rank), drawn exactly as the loop always drew it: each epoch's
order from ``randperm`` under a generator seeded by (order seed, epoch), each step's crop offsets and flips from a
generator seeded by (augmentation seed, step, rank). Those draws are cheap host work, so they are made for a whole
epoch at once (an ``EpochPlan``) and moved to the device in one copy; a step then slices the plan and gathers its
crops in one indexing operation. The CPU gets the very same batches as before this module existed
(tests/fixtures/before_fast_path holds them), and a resumed run the very same batches as an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from gancli import latents
from gancli.data.reading import to_model_range

ORDER_OFFSET = 1_000_003  # keeps the epoch orders' seeds apart from the per-step augmentation seeds


@dataclass
class EpochPlan:
    """One epoch's draws for one process, on the images' device: ``index[k]`` the images of step k of the epoch,
    ``offsets[k]`` their crops' top-left corners (or None: centred, or no room to crop), ``flips[k]`` whether each
    is mirrored (or None: --no-mirror)."""
    index: torch.Tensor                 # int64 (steps, batch)
    offsets: torch.Tensor | None        # int64 (steps, batch, 2)
    flips: torch.Tensor | None          # bool (steps, batch)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of an epoch: a function of (seed, epoch)."""
    g = torch.Generator().manual_seed(latents.mix(seed, ORDER_OFFSET + epoch))
    return torch.randperm(n, generator=g)


class Batches:
    """This process's batches of a run: ``take(images, order_seed, aug_seed, index)``.

    ``steps_per_epoch`` batches of ``batch_size`` make an epoch (of the run's largest domain: a shorter data set,
    CycleGAN's smaller domain, wraps around within it); ``crop`` is the training size, cut at random
    (``random_crop``) or from the centre of larger images; ``mirror`` flips half of them."""

    def __init__(self, batch_size: int, steps_per_epoch: int, crop: int, random_crop: bool, mirror: bool,
                 rank: int = 0, world: int = 1):
        self.batch_size, self.steps_per_epoch, self.crop = batch_size, steps_per_epoch, crop
        self.random_crop, self.mirror, self.rank, self.world = random_crop, mirror, rank, world
        self._plans: dict = {}

    def plan(self, n: int, side: int, order_seed: int, aug_seed: int, epoch: int, device) -> EpochPlan:
        """The draws of one epoch (cached: every step of the epoch reads it; the last few epochs' are kept, one per
        data set and seed a run takes batches from)."""
        key = (n, side, order_seed, aug_seed, epoch, str(device))
        if key not in self._plans:
            if len(self._plans) >= 8:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = self._draw(n, side, order_seed, aug_seed, epoch, device)
        return self._plans[key]

    def _draw(self, n: int, side: int, order_seed: int, aug_seed: int, epoch: int, device) -> EpochPlan:
        b, world, steps = self.batch_size, self.world, self.steps_per_epoch
        order = epoch_order(n, order_seed, epoch)
        starts = (torch.arange(steps) * world + self.rank) * b
        index = order[(starts[:, None] + torch.arange(b)) % n]
        room = side - self.crop
        offsets = torch.empty(steps, b, 2, dtype=torch.long) if room and self.random_crop else None
        flips = torch.empty(steps, b, dtype=torch.bool) if self.mirror else None
        if offsets is not None or flips is not None:
            for k in range(steps):  # the generator of step k, drawn in the order the loop has always drawn them
                g = torch.Generator().manual_seed(latents.mix(aug_seed, (epoch * steps + k) * world + self.rank))
                if offsets is not None:
                    offsets[k] = torch.randint(0, room + 1, (b, 2), generator=g)
                if flips is not None:
                    flips[k] = torch.rand(b, generator=g) < 0.5
        move = lambda t: None if t is None else t.to(device)
        return EpochPlan(index.to(device), move(offsets), move(flips))

    def take(self, images: torch.Tensor, order_seed: int, aug_seed: int, index: int, device,
             memory_format=torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of ``images`` (uint8, N x C x S x S) for this process: cropped, mirrored, in [-1, 1], on
        ``device``; and the indices of its images (on the images' device)."""
        epoch, k = divmod(index, self.steps_per_epoch)
        side = images.shape[-1]
        plan = self.plan(len(images), side, order_seed, aug_seed, epoch, images.device)
        idx, room, c = plan.index[k], side - self.crop, self.crop
        if room == 0 and plan.flips is None:
            x = images[idx]
        else:
            span = torch.arange(c, device=images.device)
            corner = plan.offsets[k] if plan.offsets is not None else \
                torch.full((len(idx), 2), room // 2, dtype=torch.long, device=images.device)
            rows = corner[:, :1] + span                       # (b, c)
            cols = corner[:, 1:] + span
            if plan.flips is not None:
                cols = torch.where(plan.flips[k, :, None], cols.flip(-1), cols)
            channel = torch.arange(images.shape[1], device=images.device)
            x = images[idx[:, None, None, None], channel[None, :, None, None], rows[:, None, :, None],
                       cols[:, None, None, :]]
        x = to_model_range(x.to(device, non_blocking=True))
        return x.contiguous(memory_format=memory_format), idx
