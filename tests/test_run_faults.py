"""Faults during a run: non-finite losses, gradients, embeddings and weights (FiniteGuard, the checkpoint
rule, k-means and the centroid EMA), unsafe or wrong checkpoint files (safe loading), and experiments
whose runs fail. Names that only exist with the fault handling are imported inside the tests, so on a
tree without it each test fails on the behaviour it checks."""

import json
import math
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import ROOT
from helpers.data import tiny_datamodule
from helpers.faults import NaNBatch, NaNGradient
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from clusterlight import ClusterCentroids, EmbeddingPretrain, JointFinetune
from clusterlight.callbacks import BestAndLastCheckpoint
from clusterlight.clusters import ClusterAssignments
from clusterlight.clusters.kmeans import kmeans
from clusterlight.modules import Classifier

STEPS_PER_EPOCH = 8  # 120 tiny training clips, batch 16


def _checkpointed_trainer(tmp_path, epochs=3, callbacks=(), **ckpt):
    ckpt = {"monitor": "val/macro_err", "save_last": True, "filename": "best-{epoch:03d}", **ckpt}
    checkpoint = BestAndLastCheckpoint(dirpath=str(tmp_path / "ckpt"), **ckpt)
    trainer = tiny_trainer(
        tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=[*callbacks, checkpoint]
    )
    return trainer, checkpoint


def _all_finite(path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ckpt"))}


class Snapshot(Callback):
    """The checkpoint folder's files as they were after each training epoch (and its checkpoints)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.at = folder, {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.at[trainer.current_epoch - 1] = _files(self.folder)


# --- FiniteGuard -------------------------------------------------------------------------------------


def test_a_nan_loss_stops_training_with_epoch_step_and_the_intact_last_checkpoint(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    snap = Snapshot(tmp_path / "ckpt")
    trainer, _ = _checkpointed_trainer(tmp_path, callbacks=[NaNBatch(steps=[10]), snap])
    model = Classifier(*tiny_parts(), dm.class_names)
    with pytest.raises(RuntimeError, match=r"epoch 1, global step 10: the loss is nan") as caught:
        trainer.fit(model, dm)
    from clusterlight import NonFiniteError

    err = caught.value
    assert isinstance(err, NonFiniteError) and err.epoch == 1 and err.step == 10 and "loss" in err.what
    last = tmp_path / "ckpt/last.ckpt"
    assert str(last) in str(err) and err.checkpoint == str(last)
    assert "the optimizer step was not taken" in str(err)
    assert _files(tmp_path / "ckpt") == snap.at[0], "a checkpoint was written after the non-finite step"
    assert _all_finite(last) and torch.load(last, weights_only=True)["epoch"] == 0
    assert all(torch.isfinite(p).all() for p in model.parameters()), "the NaN step reached the weights"


def test_a_nan_gradient_names_the_parameter(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    name = "backbone.lstm.weight_hh_l0"
    trainer = tiny_trainer(tmp_path, max_epochs=1, callbacks=[NaNGradient(name, step=2)])
    with pytest.raises(
        RuntimeError, match=rf"global step 2: the gradient of {name} \(nan\) of \d+ parameters"
    ) as e:
        trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert "the loss is" not in str(e.value) and "no checkpoint was written before it" in str(e.value)


def test_deferred_check_raises_one_step_later_and_before_any_checkpoint(synth_root, tmp_path):
    """The GPU path (flag read one step later, no host sync per step), run on the CPU: a NaN at the last
    step of epoch 1 is caught before that epoch's validation and checkpoints."""
    from clusterlight import FiniteGuard, NonFiniteError

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    snap = Snapshot(tmp_path / "ckpt")
    step = 2 * STEPS_PER_EPOCH - 1
    trainer, _ = _checkpointed_trainer(
        tmp_path, callbacks=[FiniteGuard(deferred=True), NaNBatch([step]), snap]
    )
    with pytest.raises(NonFiniteError, match=rf"epoch 1, global step {step}: the loss is nan.*one step late"):
        trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert _files(tmp_path / "ckpt") == snap.at[0]
    assert _all_finite(tmp_path / "ckpt/last.ckpt")

    trainer, _ = _checkpointed_trainer(tmp_path / "b", callbacks=[FiniteGuard(deferred=True), NaNBatch([3])])
    with pytest.raises(NonFiniteError, match="epoch 0, global step 3: the loss is nan"):
        trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert not list((tmp_path / "b/ckpt").glob("*.ckpt"))


def test_skip_mode_skips_counts_logs_and_warns(synth_root, tmp_path):
    from clusterlight import FiniteGuard

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    guard = FiniteGuard(on_nonfinite="skip")
    tracker = ClusterCentroids()
    trainer, _ = _checkpointed_trainer(tmp_path, epochs=2, callbacks=[guard, NaNBatch([3, 11])])
    model = EmbeddingPretrain(*tiny_parts(), dm.class_names, centroids=tracker, plot_embeddings=False)
    with pytest.warns(UserWarning, match=r"FiniteGuard skipped 2 optimizer step"):
        trainer.fit(model, dm)
    assert guard.skipped_steps == 2 and trainer.global_step == 2 * STEPS_PER_EPOCH
    assert float(trainer.callback_metrics["train/skipped_steps"]) == 2.0
    assert [c for c in trainer.callbacks if isinstance(c, FiniteGuard)] == [guard], (
        "the trainer's guard is kept"
    )
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(tracker.centroids).all(), "a skipped step moved the centroids"
    state = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    assert next(v for k, v in state["callbacks"].items() if k.startswith("FiniteGuard")) == {
        "skipped_steps": 2
    }


def test_every_module_adds_the_guard_once(synth_root, tmp_path):
    from clusterlight import FiniteGuard

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert sum(isinstance(c, FiniteGuard) for c in trainer.callbacks) == 1
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        FiniteGuard(on_nonfinite="ignore")


# --- the checkpoint rule -------------------------------------------------------------------------------


class ProbeMetric(Classifier):
    """Logs ``val/probe`` from a list, one value per epoch."""

    def __init__(self, *args, values=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.values = list(values)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.trainer.sanity_checking:
            self.log("val/probe", self.values[self.current_epoch])


def test_a_nan_or_inf_validation_error_is_never_the_best_checkpoint(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    values = [math.nan, math.nan]
    trainer, ckpt = _checkpointed_trainer(tmp_path / "a", epochs=2, monitor="val/probe")
    trainer.fit(ProbeMetric(*tiny_parts(), dm.class_names, values=values), dm)
    assert ckpt.best_model_path == "" and ckpt.best_model_score is None
    assert sorted(p.name for p in (tmp_path / "a/ckpt").glob("*.ckpt")) == ["last.ckpt"]

    values = [math.nan, 0.4, math.inf, 0.6]
    trainer, ckpt = _checkpointed_trainer(tmp_path / "b", epochs=4, monitor="val/probe")
    trainer.fit(ProbeMetric(*tiny_parts(), dm.class_names, values=values), dm)
    assert Path(ckpt.best_model_path).name == "best-epoch=001.ckpt" and float(
        ckpt.best_model_score
    ) == pytest.approx(0.4)
    assert sorted(p.name for p in (tmp_path / "b/ckpt").glob("*.ckpt")) == [
        "best-epoch=001.ckpt",
        "last.ckpt",
    ]


class PoisonWeights(Callback):
    """Puts a NaN into a weight after validation of ``epoch`` (before the checkpoint callback runs)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            with torch.no_grad():
                pl_module.backbone.proj[1].weight[0, 0] = float("nan")


def test_non_finite_weights_never_overwrite_last_ckpt(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    snap = Snapshot(tmp_path / "ckpt")
    trainer, _ = _checkpointed_trainer(tmp_path, callbacks=[PoisonWeights(epoch=1), snap])
    refused = r"refusing to write .*: the weights are non-finite \(backbone.proj.1.weight"
    with pytest.raises(RuntimeError, match=refused) as caught:
        trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert _files(tmp_path / "ckpt") == snap.at[0] and _all_finite(tmp_path / "ckpt/last.ckpt")
    from clusterlight import NonFiniteError

    assert isinstance(caught.value, NonFiniteError)


def test_save_on_exception_saves_nothing_on_a_non_finite_step(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    plain = ModelCheckpoint(dirpath=str(tmp_path / "plain"), save_on_exception=True, save_top_k=0)
    snap = Snapshot(tmp_path / "ckpt")
    trainer, _ = _checkpointed_trainer(
        tmp_path, callbacks=[plain, NaNBatch([10]), snap], save_on_exception=True
    )
    with pytest.raises(RuntimeError, match="global step 10: the loss is nan"):
        trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert _files(tmp_path / "ckpt") == snap.at[0] and not list((tmp_path / "plain").glob("*.ckpt"))


# --- k-means and the centroid EMA ------------------------------------------------------------------------


def test_kmeans_and_rebuild_refuse_non_finite_embeddings():
    z = torch.nn.functional.normalize(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    z[3, 1] = float("nan")
    z[7, 0] = float("inf")
    with pytest.raises(ValueError, match=r"2 of 10 embedding rows are non-finite"):
        kmeans(z, 2)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    clusters = ClusterAssignments(cluster_size=2)
    clusters.set_training_clips(labels, ["a", "b"])
    with pytest.raises(ValueError, match=r"re-clustering at epoch 4 .*a: 1, b: 1.*2 of 10 embedding rows"):
        clusters.rebuild(z, None, epoch=4)
    assert not clusters.built, "a refused rebuild changed the assignments"


def test_centroid_update_leaves_non_finite_rows_out_and_says_how_many():
    tracker = ClusterCentroids(momentum=0.5)
    tracker.reset(torch.nn.functional.normalize(torch.ones(2, 3), dim=1), n_clips=8)
    z = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    z[[2, 5]] = float("nan")
    tracker.update(z, torch.tensor([0, 0, 0, 1, 1, 1, 0, 1]), torch.arange(8))
    assert torch.isfinite(tracker.centroids).all(), "a non-finite embedding reached the centroids"
    from clusterlight import NonFiniteError

    with pytest.raises(NonFiniteError, match=r"2 of the 8 training embeddings in epoch 0 were non-finite"):
        tracker.check_finite("in epoch 0")
    tracker.check_finite()  # counted once


class NaNEmbeddings(EmbeddingPretrain):
    """A finite loss, but non-finite embeddings handed to the centroid callback at step 2."""

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if self.global_step == 2:
            out["embeddings"] = out["embeddings"].clone()
            out["embeddings"][:3] = float("nan")
        return out


def test_non_finite_embeddings_stop_pretraining_at_the_epoch_end(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    tracker = ClusterCentroids()
    model = NaNEmbeddings(*tiny_parts(), dm.class_names, centroids=tracker, plot_embeddings=False)
    with pytest.raises(RuntimeError, match=r"ClusterCentroids: 3 of the 120 training embeddings in epoch 0"):
        tiny_trainer(tmp_path, max_epochs=2).fit(model, dm)
    assert torch.isfinite(tracker.centroids).all()


# --- safe loading --------------------------------------------------------------------------------------


class CreatesAFile:
    """Unpickling this object would create ``path`` (``open(path, "w")``)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pretrained(tmp_path, synth_root):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = EmbeddingPretrain(*tiny_parts(), dm.class_names, plot_embeddings=False)
    return dm, model


def test_an_unsafe_checkpoint_runs_nothing_and_says_so(tmp_path, synth_root):
    dm, pre = _pretrained(tmp_path, synth_root)
    created = tmp_path / "created-by-unpickling"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": pre.state_dict(), "extra": CreatesAFile(created)}, evil)
    with pytest.raises(ValueError, match=r"evil.ckpt contains objects outside the allow-list.*not loaded"):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(evil))
    assert not created.exists(), "loading the checkpoint ran code from it"
    from clusterlight.checkpoints import CheckpointError, load_checkpoint

    with pytest.raises(CheckpointError, match=r"io.open|builtins.open") as caught:
        load_checkpoint(evil)
    assert caught.value.path == str(evil) and not created.exists()


def test_load_checkpoint_names_the_file_and_what_was_expected(tmp_path, synth_root):
    from clusterlight.checkpoints import CheckpointError, load_checkpoint

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all " * 20)
    a_zip = tmp_path / "a_zip.ckpt"
    with zipfile.ZipFile(a_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    a_pickle = tmp_path / "a_pickle.ckpt"
    a_pickle.write_bytes(pickle.dumps({"state_dict": {}}))
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"junk")  # struct.error inside torch.load
    cut = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:2000])  # an interrupted copy
    no_state = tmp_path / "no_state.ckpt"
    torch.save({"epoch": 3}, no_state)
    cases = {
        garbage: "is not a PyTorch checkpoint",
        a_zip: "is not a PyTorch checkpoint",
        a_pickle: "is not a PyTorch checkpoint",
        empty: r"is empty \(0 bytes\)",
        junk: "is not a PyTorch checkpoint",
        cut: "is not a PyTorch checkpoint",
        tmp_path: "is not a file",
        no_state: r"has no 'state_dict' \(its keys: \['epoch'\]\)",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value)
    with pytest.raises(FileNotFoundError, match="missing.ckpt does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_pretrained_checkpoint_errors_name_file_parameter_and_shapes(tmp_path, synth_root):
    dm, pre = _pretrained(tmp_path, synth_root)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ValueError, match="garbage.ckpt is not a PyTorch checkpoint"):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(garbage))

    no_backbone = tmp_path / "head_only.ckpt"
    torch.save({"state_dict": {"head.weight": torch.zeros(4, 16)}}, no_backbone)
    with pytest.raises(ValueError, match=r"head_only.ckpt holds no backbone.\* weights"):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(no_backbone))

    wider = tmp_path / "wider.ckpt"
    torch.save(
        {"state_dict": EmbeddingPretrain(*tiny_parts(embed_dim=24), dm.class_names).state_dict()}, wider
    )
    shapes = r"backbone.proj.1.weight: checkpoint \(24, 64\), this model \(16, 64\)"
    with pytest.raises(ValueError, match=rf"wider.ckpt does not fit this backbone: {shapes}"):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(wider))

    state = pre.state_dict()
    state["backbone.lstm.weight_ih_l0"][0, :2] = float("nan")
    diverged = tmp_path / "diverged.ckpt"
    torch.save({"state_dict": state}, diverged)
    with pytest.raises(
        ValueError, match=r"diverged.ckpt holds non-finite .*backbone.lstm.weight_ih_l0 \(2 of"
    ):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(diverged))


def test_checkpoints_of_this_project_load_with_the_allow_list(tmp_path, synth_root):
    """What a real checkpoint needs: a pretraining run with the memory bank, mixing and every default
    callback (random states, the guard, centroids, the plot) saved by the checkpoint rule."""
    from clusterlight.checkpoints import load_checkpoint
    from clusterlight.data import BackgroundMix

    dm = tiny_datamodule(synth_root, tmp_path / "cache", mixing=BackgroundMix())
    trainer, ckpt = _checkpointed_trainer(tmp_path, epochs=1)
    trainer.fit(
        EmbeddingPretrain(*tiny_parts(), dm.class_names, centroids=ClusterCentroids(embedding_source="bank")),
        dm,
    )
    for path in (ckpt.best_model_path, ckpt.last_model_path):
        state = load_checkpoint(path)
        assert {"state_dict", "callbacks", "optimizer_states"} <= set(state)
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    fine = JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=ckpt.last_model_path)
    assert torch.equal(fine.backbone.proj[1].weight, trainer.lightning_module.backbone.proj[1].weight)


def test_ckpt_path_best_reads_last_ckpt_safely(tmp_path):
    from clusterlight import runs
    from clusterlight.checkpoints import CheckpointError

    created = tmp_path / "created"
    torch.save({"state_dict": {}, "x": CreatesAFile(created)}, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match="last.ckpt contains objects outside the allow-list"):
        runs.best_in(tmp_path)
    assert not created.exists()


# --- experiments with failed runs -------------------------------------------------------------------------


def _experiment_with_a_diverging_method(tmp_path) -> str:
    from helpers.configs import tiny_experiment, write_yaml

    exp = tiny_experiment(tmp_path)
    baseline = exp["methods"]["baseline"]["stages"][0]
    exp["methods"] = {
        "baseline": {"stages": [baseline]},
        "diverges": {
            "stages": [{**baseline, "overrides": {"model": {"init_args": {"lr": 1.0e9}}}}],
        },
    }
    exp["seeds"] = [0]
    return write_yaml(tmp_path, "exp.yaml", exp)


def test_a_failed_run_is_recorded_shown_not_averaged_and_retried(tmp_path, capsys):
    from clusterlight.cli import main

    exp_file = _experiment_with_a_diverging_method(tmp_path)
    out = tmp_path / "out"
    args = ["experiment", "--config", exp_file, "--output_dir", str(out)]
    with pytest.raises(SystemExit) as exited:  # the command ends with one line and exit status 1
        main(args)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    printed = captured.out
    assert re.search(r"1 of 2 run\(s\) failed.*seed 0 \| diverges: stage fit: NonFiniteError", captured.err)
    assert (
        "seed 0 (1/1) | diverges: FAILED in stage fit: NonFiniteError: non-finite values at epoch 0"
        in printed
    )
    assert "seed 0 (1/1) | baseline: test macro error" in printed, "the other run did not go on"
    saved = json.loads((out / "seed0/diverges/result.json").read_text())
    assert saved["status"] == "failed" and saved["stage"] == "fit" and "NonFiniteError" in saved["error"]
    result = json.loads((out / "results.json").read_text())
    assert list(result["runs"]) == ["baseline"] and list(result["summary"]) == ["baseline"]
    assert result["failed"]["diverges"]["0"]["stage"] == "fit"
    md = (out / "results.md").read_text()
    assert "| seeds | failed |" in md and "| diverges | failed | failed |" in md
    assert "- diverges, seed 0, stage fit: NonFiniteError" in md

    main([*args, "--dry_run"])
    plan = capsys.readouterr().out
    assert "diverges | fit (1 epoch) | run (retries a failed run: stage fit: NonFiniteError" in plan
    assert "baseline | fit (1 epoch) | reuse the finished run" in plan

    with pytest.raises(SystemExit):
        main(args)
    captured = capsys.readouterr()
    printed = captured.out
    assert "1 of 1 run(s) failed" in captured.err
    assert "baseline: reusing the finished run" in printed and "diverges: FAILED" in printed
    assert json.loads((out / "results.json").read_text())["runs"] == result["runs"]


def test_tables_average_finished_runs_only_and_mark_failed_methods():
    from clusterlight.experiment.report import markdown_table, summarize

    def run(err: float) -> dict:
        return {"metrics": {"err_a": err, "err_b": err, "macro_err": err, "acc": 1 - err}}

    runs = {"base": {0: run(0.4), 2: run(0.2)}, "new": {0: run(0.1)}}
    result = summarize(runs, ["a", "b"], "base")
    assert result["summary"]["base"]["macro_err"]["mean"] == pytest.approx(0.3)
    result["failed"] = {
        "base": {"1": {"stage": "fit", "error": "NonFiniteError: nan"}},
        "gone": {
            "0": {"stage": "pretrain", "error": "ValueError: x"},
            "1": {"stage": "pretrain", "error": "E"},
        },
    }
    table = markdown_table(result, ["a", "b"], "base")
    assert "| base | 0.300 ± 0.141 | 0.300 ± 0.141 | 0.300 ± 0.141 | n/a | 2 | 1 (seed 1) |" in table
    assert "| new | 0.100 ± 0.000 | 0.100 ± 0.000 | 0.100 ± 0.000 | n/a | 1 | 0 |" in table
    assert "| gone | failed | failed | failed | failed | 0 | 2 (seed 0, 1) |" in table
    assert "- base, seed 1, stage fit: NonFiniteError: nan" in table


# --- the fault matrix ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fault_benchmark_fast_loses_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/faults.py"), "--fast", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) >= 6, done.stdout
    lost = [r for r in rows if r.rstrip(" |").split("|")[-1].strip() != "no"]
    assert not lost, "\n".join(lost)
    assert "guard overhead" in done.stdout


# --- DDP: one decision on every rank ------------------------------------------------------------------------


def _ddp_fit_args(tmp_path, root, callbacks: list[dict]) -> list[str]:
    from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml

    extra = write_yaml(tmp_path, f"callbacks-{root.name}.yaml", {"trainer": {"callbacks": callbacks}})
    return [
        "fit",
        "--config", str(CONFIGS / "trainer/ddp_cpu.yaml"),
        "--config", write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path)),
        *model_configs("pretrain", "lstm"),
        "--config", extra,
        "--model.init_args.backbone.init_args.hidden", "32",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--model.init_args.plot_embeddings", "false",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root),
        "--seed_everything", "0",
    ]  # fmt: skip


@pytest.mark.slow
def test_ddp_a_nan_on_one_rank_is_skipped_or_stops_every_rank(tmp_path):
    from helpers.cli import clusterlight, subprocess_env

    nan_on_rank1 = {"class_path": "helpers.faults.NaNBatch", "init_args": {"steps": [5], "rank": 1}}
    skip = {"class_path": "clusterlight.FiniteGuard", "init_args": {"on_nonfinite": "skip"}}
    probe = {"class_path": "helpers.rank_probe.RankProbe", "init_args": {"out_dir": str(tmp_path / "skip")}}
    fit = clusterlight(_ddp_fit_args(tmp_path, tmp_path / "skip", [skip, nan_on_rank1, probe]), timeout=400)
    assert "FiniteGuard skipped 1 optimizer step" in fit.stderr
    ranks = [torch.load(tmp_path / f"skip/rank{r}-fit.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["metrics"]["train/skipped_steps"] == ranks[1]["metrics"]["train/skipped_steps"] == 1.0
    for name, value in ranks[0]["weights"].items():
        assert torch.isfinite(value.float()).all() and torch.equal(value, ranks[1]["weights"][name]), name
    assert torch.equal(ranks[0]["centroids"], ranks[1]["centroids"])

    env = subprocess_env()
    args = _ddp_fit_args(tmp_path, tmp_path / "raise", [nan_on_rank1])
    done = subprocess.run(
        [sys.executable, "-m", "clusterlight", *args], capture_output=True, text=True, timeout=400, env=env
    )
    assert done.returncode != 0
    assert re.search(
        r"epoch 1, global step 5: the loss is (nan on rank 1|non-finite on 1 other rank)", done.stderr
    )
    last = tmp_path / "raise/lightning_logs/version_0/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0 and _all_finite(last)
