"""A recipe run on toy data, as one process (``python``) or as each process of a launch (``torchrun``,
``accelerate launch``), for tests/train/test_distributed.py.

    python distributed_worker.py regression|prm MODEL_DIR OUT_DIR
    python distributed_worker.py grads MODEL_DIR OUT_FILE     # one step's gradients through Parallel
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: (chosen, rejected) token ids of one step: different lengths, shared prompts of different lengths
GRAD_PAIRS = [
    ([5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12, 13]),
    ([20, 21, 22], [30, 31, 32, 33, 34, 35, 36, 37]),
    ([5, 6, 7], [5, 6, 7, 8, 9]),
    ([14, 15, 16, 17, 18, 19, 20, 21, 22, 23], [14, 15, 16, 40]),
    ([9, 9, 9, 9], [9, 9, 9, 8]),
]


def step_gradients(net, pairs, pad_id: int, budget: int, par=None):
    """Gradients of one BT step over ``pairs`` (the global batch) through ``par`` (None: plain
    backward of each micro-batch, the one-process reference)."""
    import torch

    from rewardkit.train.common import bt_loss, pair_head_outputs, pair_micro_batches

    mine = par.share(pairs) if par else list(pairs)
    micro = pair_micro_batches(mine, budget, True)

    def idle():
        hc, hr = net(pair_head_outputs, pairs[:1], pad_id, True)
        return (hc + hr).sum() * 0.0

    for idx in (par.micro_steps(net, micro, idle) if par else micro):
        chunk = [mine[i] for i in idx]
        hc, hr = net(pair_head_outputs, chunk, pad_id, True)
        loss = bt_loss(hc[:, 0], hr[:, 0], torch.zeros(len(chunk))).sum() / len(pairs)
        par.backward(loss) if par else loss.backward()


def main() -> None:
    import torch

    what, model_dir, out = sys.argv[1:4]
    if what == "grads":
        from rewardkit.models import load_model
        from rewardkit.train.parallel import Parallel

        par = Parallel()
        hf = load_model(model_dir, "sequence-classification", num_labels=1, seed=0, device="cpu").train()  # the new head seeded
        optimizer = torch.optim.SGD(hf.parameters(), lr=0.0)
        net, _ = par.prepare(hf, optimizer)
        grads = {}
        # a micro-batch per pair: 3 pairs on the first process, 2 on the second (it idles once); then
        # a step of one pair, which the second process has no share of at all
        for name, pairs in (("five", GRAD_PAIRS), ("one", GRAD_PAIRS[:1])):
            hf.zero_grad(set_to_none=True)
            step_gradients(net, pairs, hf.config.pad_token_id, 1, par)
            grads[name] = {k: p.grad.detach().clone() for k, p in hf.named_parameters()}
        if par.is_main:
            torch.save(grads, out)
        return

    from rewardkit.train.parallel import is_main_process

    if what == "regression":
        from test_regression import toy_quality_pairs, toy_ratings

        from rewardkit.train.regression import RegressionConfig, train

        cfg = RegressionConfig(attributes=("quality", "brevity"), model=model_dir, output_dir=out, mode="lora", learning_rate=3e-3,
                               max_steps=6, samples_per_step=9, pairs_per_step=5, eval_every=3, save_every=3, progress=False,
                               max_length=96, max_tokens_per_micro_batch=200, combination="learned")
        summary = train(cfg, toy_ratings(60, missing_every=3), toy_quality_pairs(30))
    else:
        from test_prm_train import toy_solutions

        from rewardkit.train.prm import PRMConfig, train

        cfg = PRMConfig(model=model_dir, output_dir=out, mode="full", learning_rate=3e-3, max_steps=6, samples_per_step=7,
                        eval_every=3, save_every=3, progress=False, max_length=96, max_tokens_per_micro_batch=150)
        summary = train(cfg, toy_solutions(60), toy_solutions(12, seed=1))
    if is_main_process():
        print("steps", summary["steps"])


if __name__ == "__main__":
    main()
