"""From a trained checkpoint to answers: load it alone, classify files and folders, detect events."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.cli import clusterlight, train_tiny_classifier
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from helpers.data import write_tone

from clusterlight.callbacks.split_predictions import clip_paths
from clusterlight.data.long_synth import generate_long
from clusterlight.inference import load, predict_files
from clusterlight.lightning_cli import ClusterlightCLI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier trained through the CLI (the shipped configs), and its data folder."""
    tmp = tmp_path_factory.mktemp("trained")
    return train_tiny_classifier(tmp, epochs=2), tmp


@pytest.mark.slow
def test_load_needs_only_the_checkpoint(trained):
    ckpt, _ = trained
    model = load(ckpt)
    assert type(model).__name__ == "Classifier" and not model.training
    assert model.card["class_names"] == ["dog_bark", "baby_cry", "gunshot", "background"]
    assert model.card["audio"] == {"sample_rate": 8000, "duration": 1.0, "padding": "loop"}
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.slow
def test_predict_files_matches_the_model_and_pools_long_files(trained, tmp_path):
    ckpt, data = trained
    model = load(ckpt)
    clip = sorted((data / "synth").rglob("*.wav"))[0]
    wave, sr = sf.read(clip, dtype="float32")
    long_file = tmp_path / "long.wav"
    sf.write(long_file, np.concatenate([wave, wave, wave]), sr)  # 3 s: windows at 0, 0.5, ..., 2 s
    rows = predict_files(model, [clip, long_file])
    with torch.no_grad():
        direct = torch.softmax(model.scores_from_features(model.features(torch.from_numpy(wave)[None])), 1)[0]
    assert rows[0]["windows"] == 1
    assert [rows[0][f"prob_{c}"] for c in model.card["class_names"]] == pytest.approx(
        direct.tolist(), abs=1e-5
    )
    assert rows[1]["windows"] == 5 and sum(
        rows[1][f"prob_{c}"] for c in model.card["class_names"]
    ) == pytest.approx(1)


@pytest.mark.slow
def test_predict_command_writes_as_it_goes_and_skips_bad_files(trained, tmp_path, monkeypatch):
    ckpt, data = trained
    monkeypatch.setenv("CLUSTERLIGHT_PROGRESS_EVERY", "0")  # a progress line per file, however fast
    folder = tmp_path / "in"
    for i in range(3):
        write_tone(folder / f"sub/t{i}.wav", sr=8000, seconds=0.7, freq=300 + 100 * i)
    (folder / "broken.wav").write_bytes(b"RIFF not audio")
    out = tmp_path / "pred.csv"
    done = clusterlight(
        [
            "predict",
            "--ckpt_path",
            str(ckpt),
            str(folder),
            "--out",
            str(out),
            "--embeddings",
            str(tmp_path / "e.npy"),
        ]
    )
    assert "wrote 3 predictions" in done.stdout and "skipped 1 file(s)" in done.stdout
    assert "broken.wav" in done.stderr
    assert "[clusterlight] predict: 4/4 files (100%)" in done.stderr  # the progress line (not a terminal)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and rows[0]["predicted"] in ("dog_bark", "baby_cry", "gunshot", "background")
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == 3
    assert np.load(tmp_path / "e.npy").shape == (3, 64)
    assert json.loads(out.with_suffix(".jsonl").read_text().splitlines()[0])["path"].endswith(".wav")


@pytest.mark.slow
def test_detect_command_on_a_generated_long_recording(trained, tmp_path, monkeypatch):
    ckpt, _ = trained
    monkeypatch.setenv("CLUSTERLIGHT_PROGRESS_EVERY", "0")
    generate_long(tmp_path / "long", n_recordings=1, minutes=0.5, seed=1, sample_rate=8000)
    out = tmp_path / "events.csv"
    done = clusterlight(
        ["detect", "--ckpt_path", str(ckpt), str(tmp_path / "long"), "--out", str(out), "--thresholds", "0.5"]
    )
    assert "recording(s)" in done.stdout
    assert "[clusterlight] detect: 1/1 recordings (100%)" in done.stderr
    rows = list(csv.DictReader(out.open()))
    for row in rows:  # whatever a 2-epoch model finds, the events are well formed
        assert 0 <= float(row["onset"]) < float(row["offset"]) <= 30.0 + 1e-6
        assert row["event_label"] in ("dog_bark", "baby_cry", "gunshot")


def test_a_checkpoint_without_a_card_says_so(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="has no model card"):
        load(path)
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.ckpt"):
        load(tmp_path / "junk.ckpt")


@pytest.mark.slow
def test_export_command_writes_an_onnx_model_that_onnxruntime_runs(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    ckpt, data = trained
    out = tmp_path / "model.onnx"
    done = clusterlight(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert "wrote" in done.stdout and out.is_file()
    sidecar = json.loads(out.with_name("model.onnx.json").read_text())
    clip = sorted((data / "synth").rglob("*.wav"))[0]
    wave = sf.read(clip, dtype="float32")[0][None]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: wave})[0][0]
    expected = predict_files(load(ckpt), [clip])[0]
    assert probs.tolist() == pytest.approx([expected[f"prob_{c}"] for c in sidecar["class_names"]], abs=1e-4)


@pytest.mark.slow
def test_a_cli_pretraining_checkpoint_predicts_files_as_its_validation_read_them(tmp_path):
    """EmbeddingPretrain classifies by nearest centroid: ``clusterlight predict`` on the validation
    files, from the checkpoint alone, gives the classes the selected checkpoint's validation gave."""
    args = [
        "fit",
        "--config", str(CONFIGS / "trainer/cpu.yaml"),
        "--config", write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path)),
        *model_configs("pretrain", "lstm"),
        "--model.init_args.backbone.init_args.hidden", "16",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--model.init_args.plot_embeddings", "false",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    cli = ClusterlightCLI(args=args)  # in this process: the module's validation results are at hand
    best = cli.trainer.checkpoint_callback.best_model_path
    val = cli.datamodule.datasets["val"]
    paths = clip_paths(val, list(range(len(val))))
    out = tmp_path / "val.csv"
    clusterlight(["predict", "--ckpt_path", best, *paths, "--out", str(out)])
    rows = {r["path"]: r["predicted"] for r in csv.DictReader(out.open())}
    names = cli.model.class_names
    assert [rows[p] for p in paths] == [names[i] for i in cli.model.results["val"]["predictions"]]
