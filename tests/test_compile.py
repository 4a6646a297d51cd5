"""`gan train --compile`: torch.compile'd training passes train, resume exactly and export the same networks."""
import json

import torch

from gancli.train import Trainer, TrainOptions
from tiny_families import train_split_and_whole


def test_a_compiled_run_resumes_exactly_and_says_it_was_compiled(image_folder, tmp_path):
    def options(out, **kw):
        return TrainOptions(**(dict(data=str(image_folder), out=str(out), g_width=4, d_width=4, latent_dim=8,
                                    batch_size=8, device="cpu", compile=True, log_every=1) | kw))

    export, weights = train_split_and_whole(options, tmp_path)
    assert "compiled (torch.compile)" in (tmp_path / "whole" / "log.txt").read_text()
    assert all(k.startswith(("generator.", "discriminator.")) and "_orig_mod" not in k for k in weights)
    rows = [json.loads(l) for l in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(torch.isfinite(torch.tensor(r["loss_g"])) for r in rows)
    eager = Trainer(options(tmp_path / "eager", steps=4, compile=False))
    assert not eager.ctx.compiled
    eager.run()
    plain = torch.load(sorted((tmp_path / "eager" / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    compiled = torch.load(sorted((tmp_path / "whole" / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    assert plain["networks"].keys() == compiled["networks"].keys()  # a compiled run's checkpoint loads eagerly
