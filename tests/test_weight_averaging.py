"""EMAWeights (Lightning's EMA weight averaging) with clusterlight's modules: the average it keeps, the
BatchNorm statistics recomputed for it, what validation, checkpoints and a later test see, bit-exact
resume with the cluster centroids, and DDP."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch import Callback, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim.swa_utils import update_bn

import clusterlight
from clusterlight.callbacks import BestAndLastCheckpoint, ClusterCentroids, EMAWeights, FiniteGuard
from clusterlight.cli import main
from clusterlight.features import frontend_input
from clusterlight.lightning_cli import ClusterlightCLI
from clusterlight.losses import ClusterMarginLoss
from clusterlight.modules import Classifier, JointFinetune

DECAY = 0.5


class StepRecorder(Callback):
    """The module's state after every optimiser step (listed before EMAWeights, so before its update),
    and its state when testing starts."""

    def __init__(self) -> None:
        self.steps, self.tested = [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_test_start(self, trainer, pl_module) -> None:
        self.tested = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def ema_reference(steps: list[dict], decay: float) -> dict:
    """torch.optim.swa_utils' EMA: the first step copied, then ``decay * avg + (1 - decay) * weights``;
    floating-point entries only (torch also averages integer counters such as BatchNorm's
    ``num_batches_tracked``, truncated; unused with a momentum)."""
    avg = {k: v for k, v in steps[0].items() if v.is_floating_point()}
    for state in steps[1:]:
        avg = {k: decay * a + (1 - decay) * state[k] for k, a in avg.items()}
    return avg


BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def split_statistics(state: dict) -> tuple[dict, dict]:
    """(BatchNorm statistics, everything else) of a state dict."""
    statistics = {k: v for k, v in state.items() if k.endswith(BATCHNORM_STATISTICS)}
    return statistics, {k: v for k, v in state.items() if k not in statistics}


class FeaturesOf(torch.nn.Module):
    """A module's backbone pass on a batch dict, the call ``torch.optim.swa_utils.update_bn`` makes."""

    def __init__(self, module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> torch.Tensor:
        return self.module.features(frontend_input(batch))


def statistics_recomputed_by_torch(state: dict, dm, epoch: int) -> dict:
    """``update_bn`` over the training loader of ``epoch`` (its clip order), for the weights in ``state``."""
    model = Classifier(*tiny_parts(), dm.class_names)
    model.load_state_dict(state)
    trainer, dm.trainer = dm.trainer, SimpleNamespace(current_epoch=epoch, global_rank=0, world_size=1)
    update_bn(dm.train_dataloader(), FeaturesOf(model))
    dm.trainer = trainer
    return split_statistics(model.state_dict())[0]


def checkpointer(dirpath) -> BestAndLastCheckpoint:
    return BestAndLastCheckpoint(
        dirpath=str(dirpath), monitor="val/macro_err", save_last=True, filename="best-{epoch}"
    )


def assert_states_equal(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        if exact or not value.is_floating_point():
            assert torch.equal(value, b[name]), name
        else:
            assert torch.allclose(value, b[name], atol=1e-6), name


def test_validation_checkpoints_and_test_use_the_average_of_every_step(synth_root, tmp_path):
    seed_everything(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = Classifier(*tiny_parts(), dm.class_names, lr=3e-3)  # LSTM with batch norm, class-count buffer
    recorder, checkpoint = StepRecorder(), checkpointer(tmp_path / "ckpt")
    trainer = tiny_trainer(
        tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[recorder, EMAWeights(DECAY), checkpoint]
    )
    trainer.fit(model, dm)

    last = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    assert len(recorder.steps) == 16  # 120 clips / 16 per batch, 2 epochs
    reference = ema_reference(recorder.steps, DECAY)
    statistics, weights = split_statistics(last["state_dict"])
    assert_states_equal(
        {k: v for k, v in weights.items() if v.is_floating_point()},
        split_statistics(reference)[1],
        exact=False,
    )
    # BatchNorm statistics: not averaged but recomputed for the averaged weights (last validation, epoch 1)
    assert_states_equal(
        statistics, statistics_recomputed_by_torch(last["state_dict"], dm, epoch=1), exact=False
    )
    assert not torch.allclose(statistics["backbone.norm.running_var"], reference["backbone.norm.running_var"])
    assert_states_equal(last["current_model_state"], recorder.steps[-1])
    assert int(last["averaging_state"]["n_averaged"]) == 16
    assert not torch.equal(last["state_dict"]["head.weight"], last["current_model_state"]["head.weight"])
    assert_states_equal(model.state_dict(), last["state_dict"])  # after fit the module holds the average

    # after fit, in the same trainer (as `clusterlight fit`/`experiment` do): the checkpoint's average
    best = checkpoint.best_model_path
    trainer.validate(model, dm, ckpt_path=best, verbose=False)
    assert float(trainer.callback_metrics["val/macro_err"]) == pytest.approx(
        float(checkpoint.best_model_score)
    )
    trainer.test(model, dm, ckpt_path=best, verbose=False)
    selected = torch.load(best, weights_only=True)
    assert_states_equal(recorder.tested, selected["state_dict"])


def test_without_validation_the_checkpoints_still_hold_statistics_fitted_to_the_average(synth_root, tmp_path):
    seed_everything(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = Classifier(*tiny_parts(), dm.class_names, lr=3e-3)
    saver = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)  # saves at train epoch end
    trainer = tiny_trainer(
        tmp_path, enable_checkpointing=True, limit_val_batches=0, callbacks=[EMAWeights(DECAY), saver]
    )
    trainer.fit(model, dm)
    last = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    statistics = split_statistics(last["state_dict"])[0]
    assert_states_equal(
        statistics, statistics_recomputed_by_torch(last["state_dict"], dm, epoch=0), exact=False
    )
    assert_states_equal(model.state_dict(), last["state_dict"])


def test_recomputing_batchnorm_without_a_datamodule_is_refused_before_training(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    dm.setup("fit")
    model = Classifier(*tiny_parts(), dm.class_names)
    trainer = tiny_trainer(tmp_path, callbacks=[EMAWeights(DECAY)])
    with pytest.raises(ValueError, match="recompute_batchnorm reads the training batches of a DataModule"):
        trainer.fit(model, dm.train_dataloader(), dm.val_dataloader())
    assert trainer.global_step == 0


def test_without_recomputing_batchnorm_statistics_are_averaged_like_the_weights(synth_root, tmp_path):
    seed_everything(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = Classifier(*tiny_parts(), dm.class_names, lr=3e-3)
    recorder = StepRecorder()
    callbacks = [recorder, EMAWeights(DECAY, recompute_batchnorm=False), checkpointer(tmp_path / "ckpt")]
    tiny_trainer(tmp_path, enable_checkpointing=True, callbacks=callbacks).fit(model, dm)
    last = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    averaged = {k: v for k, v in last["state_dict"].items() if v.is_floating_point()}
    assert_states_equal(averaged, ema_reference(recorder.steps, DECAY), exact=False)


def finetune_run(synth_root, tmp_path, epochs: int, ema: bool, ckpt_path=None) -> dict:
    """A one-stage JointFinetune (cluster loss against re-clustered EMA centroids); its last.ckpt."""
    seed_everything(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = JointFinetune(
        *tiny_parts(),
        dm.class_names,
        cluster_loss=ClusterMarginLoss(),
        cluster_loss_weight=0.5,
        centroids=ClusterCentroids(0.9),
        lr=3e-3,
    )
    callbacks = [checkpointer(tmp_path / "ckpt")] + ([EMAWeights(DECAY)] if ema else [])
    trainer = tiny_trainer(tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=callbacks)
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)


def test_resume_is_bit_exact_and_the_average_leaves_training_and_centroids_alone(synth_root, tmp_path):
    whole = finetune_run(synth_root, tmp_path / "whole", epochs=2, ema=True)
    finetune_run(synth_root, tmp_path / "cut", epochs=1, ema=True)
    resumed = finetune_run(
        synth_root, tmp_path / "cut", epochs=2, ema=True, ckpt_path=str(tmp_path / "cut/ckpt/last.ckpt")
    )
    plain = finetune_run(synth_root, tmp_path / "plain", epochs=2, ema=False)

    assert whole["epoch"] == resumed["epoch"] == 1
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert_states_equal(whole[key], resumed[key])
    centroids = {name: ckpt["callbacks"]["ClusterCentroids"] for name, ckpt in (("w", whole), ("p", plain))}
    assert torch.equal(centroids["w"]["centroids"], resumed["callbacks"]["ClusterCentroids"]["centroids"])
    # the average is for evaluation only: the trained weights and the centroids are those of a run without it
    assert_states_equal(whole["current_model_state"], plain["state_dict"])
    assert torch.equal(centroids["w"]["centroids"], centroids["p"]["centroids"])
    assert "centroids" not in str(list(whole["state_dict"]))


def test_a_skipped_step_moves_no_average():
    guard = FiniteGuard(on_nonfinite="skip")
    ema = EMAWeights(DECAY)
    ema._average_model = SimpleNamespace(
        update_parameters=lambda module: pytest.fail("averaged a skipped step")
    )
    trainer = SimpleNamespace(callbacks=[guard, ema], global_step=1)
    guard.skipped_this_step = True
    ema.on_train_batch_end(trainer, None, None, None, 0)
    guard.skipped_this_step = False
    updated = []
    ema._average_model = SimpleNamespace(update_parameters=updated.append)
    ema.on_train_batch_end(trainer, "module", None, None, 0)
    assert updated == ["module"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"decay": 1.0}, "EMAWeights.decay must be in"), ({"update_every_n_steps": 0}, "update_every_n_steps")],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EMAWeights(**kwargs)


@pytest.mark.slow
def test_ddp_ranks_hold_the_same_average(synth_root, tmp_path):
    from helpers.rank_probe import RankProbe

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    dm.prepare_data()
    model = Classifier(*tiny_parts(), dm.class_names, lr=3e-3)
    trainer = tiny_trainer(
        tmp_path,
        max_epochs=1,
        devices=2,
        strategy="ddp_spawn",
        enable_checkpointing=True,
        callbacks=[EMAWeights(DECAY), RankProbe(str(tmp_path / "probe")), checkpointer(tmp_path / "ckpt")],
    )
    trainer.fit(model, dm)
    ranks = [torch.load(tmp_path / f"probe/rank{r}-fit.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    assert_states_equal(ranks[0]["weights"], ranks[1]["weights"])
    last = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    assert int(last["averaging_state"]["n_averaged"]) == 4  # 120 clips, 2 ranks x 16 per batch
    assert_states_equal(last["state_dict"], ranks[0]["weights"])


def test_cli_preset_fit_test_and_load_see_the_average(tmp_path):
    args = [
        "--config", str(CONFIGS / "trainer/cpu.yaml"),
        "--config", str(CONFIGS / "trainer/callbacks/ema.yaml"),
        "--config", write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
        *model_configs("baseline", "lstm"),
        "--model.init_args.backbone.init_args.hidden", "16",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    main(["fit", *args, "--trainer.max_epochs", "2"])
    best = next((tmp_path / "run").rglob("best-*.ckpt"))
    saved = torch.load(best, weights_only=True)
    assert not torch.equal(saved["state_dict"]["head.weight"], saved["current_model_state"]["head.weight"])

    tested = ClusterlightCLI(args=["test", *args, "--ckpt_path", "best"])
    assert Path(tested.trainer.ckpt_path) == best
    assert_states_equal(tested.model.state_dict(), saved["state_dict"])
    assert_states_equal(clusterlight.load(best).state_dict(), saved["state_dict"])
