"""The training batches (gancli.training.batches): the very pixels the loop drew before they moved to the device, and runs made
before that change still resuming and exporting."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gancli.training.batches import Batches
from gancli.training.trainer import Trainer, TrainOptions

BEFORE = Path(__file__).parent / "fixtures" / "before_fast_path"


def test_the_batches_are_the_pixels_the_loop_drew_before(tmp_path):
    """tests/fixtures/before_fast_path/batches.npz was drawn by the per-image loop this module replaced (make.py there):
    random 24 px crops of 28 px images, mirrored, two domains of 7 and 5 images (the shorter wraps), 9 steps of
    batch 3 over several epochs."""
    t = Trainer(TrainOptions(data=str(BEFORE / "data"), out=str(tmp_path / "run"), arch="cyclegan", size=24,
                             load_size=28, g_width=4, d_width=4, n_blocks=1, batch_size=3, steps=100, device="cpu"))
    try:
        before = np.load(BEFORE / "batches.npz")
        for domain, (images, seed) in enumerate(zip(t.images, (11, 13))):
            for index in range(9):
                x, idx = t.ctx.take(images, seed, seed, index)
                assert x.shape == (3, 3, 24, 24) and x.min() >= -1 and x.max() <= 1
                assert idx.tolist() == before[f"d{domain}_s{index}_idx"].tolist()
                pixels = ((x + 1) * 127.5).round().to(torch.uint8).numpy()
                assert np.array_equal(pixels, before[f"d{domain}_s{index}"]), (domain, index)
    finally:
        t.lock.release()


@pytest.mark.parametrize("random_crop,mirror", [(False, False), (False, True), (True, False)])
def test_centre_crops_and_flips_are_what_slicing_gives(random_crop, mirror):
    images = torch.randint(0, 256, (10, 3, 12, 12), dtype=torch.uint8)
    batches = Batches(4, 2, 8, random_crop, mirror)
    seen_flip = seen_plain = False
    for index in range(6):
        x, idx = batches.take(images, 5, 6, index, torch.device("cpu"))
        for img, i in zip(x, idx):
            src = images[i].float() / 127.5 - 1
            windows = [src[:, r:r + 8, c:c + 8] for r in range(5) for c in range(5)] if random_crop \
                else [src[:, 2:10, 2:10]]
            plain = any(torch.equal(img, w) for w in windows)
            flipped = any(torch.equal(img, w.flip(-1)) for w in windows)
            assert plain or flipped
            seen_plain |= plain and not flipped
            seen_flip |= flipped and not plain
    assert seen_plain and seen_flip == mirror


def test_no_crop_and_no_mirror_takes_whole_images_in_epoch_order():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    batches = Batches(3, 2, 4, False, False)
    epoch = [int(i) for k in range(2) for i in batches.take(images, 1, 2, k, torch.device("cpu"))[1]]
    assert sorted(epoch) == list(range(6))  # an epoch sees every image once
    x, idx = batches.take(images, 1, 2, 0, torch.device("cpu"))
    assert torch.equal(((x[:, 0, 0, 0] + 1) * 127.5).round().long(), idx)


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
def test_a_run_made_before_the_device_data_path_resumes_and_exports(tmp_path, family):
    """runs/ there were stopped at step 3 of 6 by the code before gancli.training.batches and the batched image pool."""
    from gancli import load
    run = shutil.copytree(BEFORE / "runs" / family, tmp_path / family)
    options = json.loads((run / "options.json").read_text())
    options |= {"data": str(BEFORE / "data"), "out": str(run)}
    (run / "options.json").write_text(json.dumps(options))
    t = Trainer(TrainOptions(out=str(run), resume=True, steps=6, device="cpu"))
    assert t.step == 3
    export = t.run()
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss_d"]) for r in rows)
    model = load(export)
    if family == "cyclegan":
        y = model.translate(torch.rand(1, 3, 24, 28) * 2 - 1)
        assert y.shape == (1, 3, 24, 28) and torch.isfinite(y).all()
    else:
        assert model.sample(4, seed=0).shape == (4, 1, 16, 16)


def _ids(images: torch.Tensor) -> list[int]:
    return sorted(int(v) for v in images[:, 0, 0, 0])


@pytest.mark.parametrize("batch", [4, 7])
def test_the_image_pool_keeps_every_image_it_is_given_and_lends_half_of_them_out(batch):
    """Images are tagged by their value. Until the pool is full, images enter it and also go to D; once it is full,
    what goes to D plus what the pool holds is what was fed in plus what it held (nothing lost, nothing doubled),
    and about half of what D sees comes from the history."""
    from gancli.families.cyclegan import ImagePool

    pool, g, fed, from_history = ImagePool(5), torch.Generator().manual_seed(0), 0, 0
    for step in range(40):
        x = torch.arange(fed, fed + batch, dtype=torch.float32).view(batch, 1, 1, 1).expand(batch, 2, 3, 3)
        full, before = pool.count == 5, _ids(pool.state()) if pool.count else []
        out = pool.query(x, g)
        assert out.shape == x.shape and pool.count == min(5, fed + batch)
        if full:
            assert sorted(_ids(out) + _ids(pool.state())) == sorted(before + _ids(x))
        if step == 0 and batch > 5:
            assert torch.equal(out[:5], x[:5]) and set(_ids(pool.state())) <= set(range(7))
        else:
            from_history += sum(v < fed for v in _ids(out)) if full else 0
        fed += batch
    assert 0.35 < from_history / (38 * batch) < 0.65


def test_the_image_pool_resumes_from_its_state_and_from_an_earlier_versions():
    from gancli.families.cyclegan import ImagePool

    pool = ImagePool(3)
    pool.query(torch.rand(2, 3, 4, 4), torch.Generator().manual_seed(0))
    again = ImagePool(3)
    again.load(pool.state())
    assert again.count == 2 and torch.equal(again.state(), pool.state())
    for p in (pool, again):  # the same draws from the same state: the same images out
        p.out = p.query(torch.ones(3, 3, 4, 4), torch.Generator().manual_seed(1))
    assert torch.equal(pool.out, again.out) and torch.equal(pool.state(), again.state())
    old = torch.load(sorted((BEFORE / "runs" / "cyclegan" / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    earlier = ImagePool(3)
    earlier.load(old["objective"]["pool_a"])
    assert earlier.count == 3 and earlier.state().shape == (3, 3, 24, 24)
