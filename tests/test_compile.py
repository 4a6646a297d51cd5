"""`gan train --compile`: torch.compile'd training passes train, resume exactly and export the same networks; and an
optimiser saved on the GPU (fused, channels_last) resumes right elsewhere."""
import copy
import json

import torch
from tiny_families import train_split_and_whole

from gancli.training.trainer import Trainer, TrainOptions


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


def test_an_optimiser_saved_fused_and_channels_last_resumes_exactly_elsewhere():
    """A CUDA checkpoint (fused Adam over channels_last weights) resumed on the CPU (contiguous weights, foreach Adam)
    must update as the run would have: loaded as it was saved, the fused flag and the layout came along."""
    from gancli.training.checkpoints import as_this_session

    torch.manual_seed(0)
    w0 = torch.randn(8, 3, 4, 4)
    grads = [torch.randn(8, 3, 4, 4) for _ in range(6)]

    def steps(p, opt, gs):
        for g in gs:
            p.grad = g.clone().contiguous(memory_format=torch.channels_last) if p.is_contiguous(
                memory_format=torch.channels_last) and not p.is_contiguous() else g.clone()
            opt.step()

    gpu_like = w0.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    opt = torch.optim.Adam([gpu_like], lr=1e-2, fused=True)
    steps(gpu_like, opt, grads[:3])
    saved, weights = copy.deepcopy(opt.state_dict()), gpu_like.detach().clone()

    reference = weights.clone().contiguous().requires_grad_()  # the same run continued, one layout throughout
    ref_opt = torch.optim.Adam([reference], lr=1e-2)
    ref_opt.load_state_dict(saved)
    as_this_session(ref_opt)
    steps(reference, ref_opt, grads[3:])

    resumed = weights.clone().contiguous().requires_grad_()
    res_opt = torch.optim.Adam([resumed], lr=1e-2)
    res_opt.load_state_dict(saved)
    assert res_opt.param_groups[0]["fused"]  # what load_state_dict alone would run
    as_this_session(res_opt)
    assert not res_opt.param_groups[0]["fused"] and res_opt.state[resumed]["exp_avg"].is_contiguous()
    steps(resumed, res_opt, grads[3:])
    assert torch.allclose(resumed, reference, atol=1e-7)
    gpu_like_cont = gpu_like
    steps(gpu_like_cont, opt, grads[3:])  # and the uninterrupted fused run agrees to rounding
    assert torch.allclose(resumed, gpu_like_cont.contiguous(), atol=1e-5)
