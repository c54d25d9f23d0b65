"""The rare4 protocol (benchmarks/rare4.py): the data root and its two layouts, both fold directions,
validation inside each training fold, the data-size curve, the plan and its cost, the report pooled over
directions. Tiny manifests only."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT
from helpers.benchmarks import load_benchmark
from helpers.data import write_fold_manifest
from helpers.results import run
from jsonargparse import ArgumentParser
from omegaconf import OmegaConf

from clusterlight.data import AudioDataModule
from clusterlight.experiment import run_hash, summarize
from clusterlight.experiment.configs import stage_config, stage_hashes
from clusterlight.experiment.markdown import reduction_cell
from clusterlight.experiment.runner import record_stage
from clusterlight.experiment.statistics import compare

DATA_CONFIGS = ROOT / "configs" / "data"


rare4 = load_benchmark("rare4")


@pytest.fixture(scope="module")
def manifest_root(tmp_path_factory):
    groups = {
        "dog_bark": 6,
        "car_horn": 5,
        "gun_shot": 5,
        "siren": 6,
        "drilling": 6,
    }  # the last two: background
    return write_fold_manifest(tmp_path_factory.mktemp("us8k_like"), groups)


def data_config(name: str) -> dict:
    return yaml.safe_load((DATA_CONFIGS / name).read_text())


def instantiate(name: str, root, tmp_path, **init_args) -> AudioDataModule:
    """The shipped data config ``name`` with the source root, cache and ``init_args`` replaced."""
    cfg = data_config(name)
    cfg["data"]["init_args"]["source"]["init_args"]["root"] = str(root)
    cfg["data"]["init_args"].update(cache_dir=str(tmp_path / "cache"), **init_args)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    parser = ArgumentParser()
    parser.add_subclass_arguments(AudioDataModule, "data")
    dm = parser.instantiate_classes(parser.parse_path(str(path))).data
    dm.setup()
    return dm


def folds_and_groups(dm: AudioDataModule, split: str) -> tuple[set, set]:
    clips = [dm.store.clips[i] for i in dm.datasets[split].rows]
    return {c.fold for c in clips}, {c.group for c in clips}


def test_the_two_direction_configs_differ_only_in_their_folds():
    one, two = data_config("us8k_rare4.yaml"), data_config("us8k_rare4_fold2.yaml")
    assert (one["data"]["init_args"]["train_folds"], one["data"]["init_args"]["test_folds"]) == (
        ["fold1"],
        ["fold2"],
    )
    for key in ("train_folds", "test_folds"):
        two["data"]["init_args"][key] = one["data"]["init_args"][key]
    assert two == one


@pytest.mark.parametrize(
    ("name", "train", "test"),
    [("us8k_rare4.yaml", "fold1", "fold2"), ("us8k_rare4_fold2.yaml", "fold2", "fold1")],
)
def test_each_direction_validates_inside_its_training_fold(name, train, test, manifest_root, tmp_path):
    dm = instantiate(name, manifest_root, tmp_path)
    (train_folds, train_groups), (val_folds, val_groups) = (folds_and_groups(dm, s) for s in ("train", "val"))
    assert train_folds == val_folds == {train} and folds_and_groups(dm, "test")[0] == {test}
    assert not train_groups & val_groups  # carved by source recording
    assert all(dm.counts["val"][c] > 0 for c in dm.class_names)


def test_cross_validation_works_inside_fold_2(manifest_root, tmp_path):
    """rare4_*_cv.yaml in direction 2to1: seed s validates on part s of fold 2; fold 1 is only tested on."""
    for backbone in rare4.BACKBONES:
        exp_file, exp = rare4.experiment(rare4.Setting(backbone, "2to1", cv=True))
        assert exp.cross_validate and [str(c) for c in exp.common][-1] == "../data/us8k_rare4_fold2.yaml"
    vals = []
    for part in range(5):
        dm = instantiate("us8k_rare4_fold2.yaml", manifest_root, tmp_path, val_part=part, seed=part)
        assert folds_and_groups(dm, "train")[0] == folds_and_groups(dm, "val")[0] == {"fold2"}
        assert folds_and_groups(dm, "test")[0] == {"fold1"}
        vals.append(set(dm.datasets["val"].rows.tolist()))
    fold2 = {i for i, c in enumerate(dm.store.clips) if c.fold == "fold2"}
    assert set().union(*vals) == fold2 and sum(map(len, vals)) == len(fold2)


def test_experiment_of_a_setting_sets_direction_ratio_and_fraction():
    _, exp = rare4.experiment(rare4.Setting("lstm", "2to1", "6:1:2:16", 0.25))
    assert "../data/us8k_rare4_fold2.yaml" in list(exp.common) and "../data/us8k_rare4.yaml" not in list(
        exp.common
    )
    init = exp.overrides.data.init_args
    assert init.train_fraction == 0.25 and dict(init.class_ratio) == dict(zip(rare4.CLASSES, [6, 1, 2, 16]))
    assert exp.name == "rare4_lstm_6-1-2-16_2to1_f0.25"
    _, full = rare4.experiment(rare4.Setting("cnn", "1to2"))
    assert "train_fraction" not in full.overrides.data.init_args  # shared with every plan at 100%
    assert "../data/us8k_rare4.yaml" in list(full.common)


@pytest.mark.parametrize(
    "setting",
    [
        rare4.Setting("lstm", "1to2"),
        rare4.Setting("cnn", "2to1", "natural", 0.5),
        rare4.Setting("cnn", "2to1", cv=True),
    ],
)
def test_setting_names_parse_back(setting):
    assert rare4.parse_name(setting.name) == setting
    assert rare4.parse_name("rare4_lstm_2-2-1-26") is None  # the one-direction protocol's folders


def write_urbansound8k_layout(manifest_root, root):
    """The clips of a tiny manifest laid out as the original UrbanSound8K download."""
    with open(manifest_root / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    (root / "metadata").mkdir(parents=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        for r in rows:
            fold = r["fold"].removeprefix("fold")
            name = Path(r["path"]).name
            (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
            shutil.copy(manifest_root / r["path"], root / "audio" / f"fold{fold}" / name)
            writer.writerow([name, r["source_id"], 0, 0.1, 1, fold, 0, r["label"]])
    return root


def split_files(data: rare4.Data, direction: str, tmp_path) -> dict[str, list[str]]:
    """The file names of each split of the first stage of ``weighted_ce`` in ``direction`` with ``data``,
    from the stage config the experiment runner would write (the class ratio left out: tiny data)."""
    exp_file, exp = rare4.experiment(rare4.Setting("lstm", direction), data=data)
    stage = exp.methods["weighted_ce"].stages[0]
    cfg = stage_config(exp, stage, 0, tmp_path / "stage", exp_file, {}, None, "weighted_ce")
    cfg["data"]["init_args"].update(class_ratio=None, cache_dir=str(tmp_path / "cache"))
    path = tmp_path / "data.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"data": cfg["data"]}))
    parser = ArgumentParser()
    parser.add_subclass_arguments(AudioDataModule, "data")
    dm = parser.instantiate_classes(parser.parse_path(str(path))).data
    dm.setup()
    return {
        split: sorted(Path(dm.store.clips[i].path).name for i in dm.datasets[split].rows)
        for split in ("train", "val", "test")
    }


@pytest.mark.parametrize("direction", ["1to2", "2to1"])
def test_both_layouts_give_the_same_splits(direction, manifest_root, tmp_path):
    """--layout urbansound8k reads the original download through UrbanSound8KSource (folds named 1, 2):
    the same clips in the same splits as the manifest layout of the same clips."""
    us8k = write_urbansound8k_layout(manifest_root, tmp_path / "UrbanSound8K")
    _, exp = rare4.experiment(rare4.Setting("cnn", direction), data=rare4.Data(str(us8k), "urbansound8k"))
    source = exp.overrides.data.init_args.source
    assert source.class_path == "clusterlight.data.UrbanSound8KSource" and source.init_args.root == str(us8k)
    manifest = split_files(rare4.Data(str(manifest_root)), direction, tmp_path / "manifest")
    original = split_files(rare4.Data(str(us8k), "urbansound8k"), direction, tmp_path / "original")
    assert original == manifest and all(manifest.values())


def test_the_data_root_is_an_argument_or_the_environment(tmp_path, monkeypatch):
    """Without a root the benchmark stops with the layouts it accepts; with one, it names the missing
    index file of the chosen layout; the environment variable stands for --data_root."""
    small = ["--backbones", "lstm", "--directions", "1to2", "--methods", "weighted_ce", "--seeds", "0"]
    small += ["--out", str(tmp_path / "runs")]
    monkeypatch.delenv(rare4.ROOT_ENV, raising=False)
    with pytest.raises(SystemExit) as e:
        rare4.main(small)
    assert "no data root. Give --data_root PATH (or set CLUSTERLIGHT_RARE4_ROOT)" in str(e.value)
    assert "--layout manifest: a folder with labels.csv" in str(e.value)
    assert "--layout urbansound8k: the original UrbanSound8K download: metadata/UrbanSound8K.csv" in str(
        e.value
    )
    with pytest.raises(SystemExit) as e:
        rare4.main([*small, "--data_root", str(tmp_path), "--layout", "urbansound8k"])
    assert f"{tmp_path / 'metadata' / 'UrbanSound8K.csv'} not found" in str(e.value)
    monkeypatch.setenv(rare4.ROOT_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(SystemExit) as e:
        rare4.main(small)
    assert f"{tmp_path / 'elsewhere' / 'labels.csv'} not found. --layout manifest expects" in str(e.value)
    assert not (tmp_path / "runs").exists()  # nothing ran
    with pytest.raises(SystemExit) as e:
        rare4.main(["--render", "--out", str(tmp_path / "runs")])  # never an empty report over a real one
    assert "no results under" in str(e.value)


def test_the_data_root_stays_out_of_the_report():
    argv = ["--data_root", "/datasets/rare4", "--seeds", "0", "--data_root=/x"]
    assert rare4.shown_command(argv) == "--data_root DATA_ROOT --seeds 0 --data_root=DATA_ROOT"
    _, exp = rare4.experiment(rare4.Setting("lstm", "1to2"), data=rare4.Data("/datasets/rare4"))
    result = {"experiment": OmegaConf.to_container(exp), "seeds": [0]}
    shown = rare4.without_data_root(result)
    assert shown["experiment"]["overrides"]["data"]["init_args"]["source"]["init_args"]["root"] == "DATA_ROOT"
    assert "/datasets/rare4" not in json.dumps(shown) and "/datasets/rare4" in json.dumps(result)  # a copy


def test_each_block_records_where_and_when_it_ran(tmp_path, monkeypatch):
    """run_blocks appends the date, machine kind, version and command to the setting's folder; the report
    header sums them up."""
    calls = []
    monkeypatch.setattr(rare4, "run_experiment", lambda *args, **kw: calls.append(kw["methods"]))
    block = rare4.Block(rare4.Setting("cnn", "2to1"), ("weighted_ce",), (0,))
    data = rare4.Data(str(tmp_path / "data"))
    assert rare4.run_blocks([block], tmp_path, {}, None, data, "--seeds 0") == [] and calls == [
        ["weighted_ce"]
    ]
    record = json.loads((tmp_path / block.setting.name / rare4.PROVENANCE).read_text())
    assert record["machine"].endswith("CPU") and record["clusterlight"] == rare4.__version__
    assert record["command"] == "--seeds 0" and len(record["date"]) == 10
    (tmp_path / block.setting.name / "results.json").write_text(json.dumps(fake_result(0.0)))
    found = rare4.saved_results(tmp_path)
    assert found[block.setting]["provenance"] == [record]
    found[block.setting]["provenance"].append({**record, "date": "2000-01-01", "clusterlight": "0.0.1"})
    text = rare4.provenance_text(found)
    assert (
        text
        == f"{record['machine']}, clusterlight 0.0.1, {rare4.__version__}, 2000-01-01 to {record['date']}"
    )
    assert rare4.provenance_text({block.setting: fake_result(0.0)}).endswith("not recorded")


def test_default_plan_takes_about_3_hours_and_puts_the_headline_first(tmp_path):
    blocks, what = rare4.select_plan(rare4_args())
    assert what == "the default plan"
    first = [b for b in blocks if b.methods == (rare4.REFERENCE, rare4.RECIPE) and b.setting.fraction == 1]
    assert blocks[: len(first)] == first and len(first) == 4 and all(len(b.seeds) >= 5 for b in first)
    assert {(b.setting.backbone, b.setting.direction) for b in first} == {
        (bb, d) for bb in rare4.BACKBONES for d in rare4.DIRECTIONS
    }
    runs = rare4.planned_runs(blocks, tmp_path, {}, None)
    assert 2.5 * 3600 < sum(r.seconds for r in runs) <= 3.25 * 3600
    assert not any(r.block.setting.direction == "2to1" for r in runs if r.method in rare4.CHOSEN_ON_FOLD1)
    fractions = {b.setting.fraction for b in blocks if b.methods == (rare4.REFERENCE, rare4.RECIPE)}
    assert fractions == {0.25, 0.5, 1.0}


def rare4_args(**kw):
    defaults = dict(
        backbones=None,
        directions=None,
        ratios=None,
        fractions=None,
        methods=None,
        seeds=None,
        full=False,
        cv=False,
    )
    return type("Args", (), {**defaults, **kw})()


def test_fractions_select_the_curve_for_both_directions():
    blocks, what = rare4.select_plan(rare4_args(fractions=[0.25, 0.5, 1.0], backbones=["lstm"]))
    assert what == "the data-size curve"
    assert {(b.setting.direction, b.setting.fraction) for b in blocks} == {
        (d, f) for d in ("1to2", "2to1") for f in (0.25, 0.5, 1.0)
    }
    assert all(b.methods == ("weighted_ce", "clustered") and b.seeds == tuple(range(5)) for b in blocks)


def test_plan_counts_smaller_fractions_cheaper_and_reuses_finished_runs(tmp_path):
    full = rare4.Block(rare4.Setting("lstm", "1to2"), ("weighted_ce", "clustered"), (0, 1))
    quarter = rare4.Block(rare4.Setting("lstm", "1to2", fraction=0.25), ("weighted_ce",), (0,))
    runs = rare4.planned_runs([full, quarter], tmp_path, {"trainer.max_epochs": 2}, None)
    cost = {(r.block.setting.fraction, r.method): r.seconds for r in runs}
    over = rare4.STAGE_OVERHEAD_S["lstm"] + rare4.TEST_S["lstm"]
    assert cost[1.0, "weighted_ce"] == pytest.approx(over + 2 * rare4.EPOCH_S["lstm", "Classifier"])
    assert cost[0.25, "weighted_ce"] < cost[1.0, "weighted_ce"] < cost[1.0, "clustered"]
    # a finished run with the same configs is reused: not counted in the time left
    exp_file, exp = rare4.experiment(full.setting)
    done = tmp_path / exp.name / "seed1" / "clustered" / "result.json"
    done.parent.mkdir(parents=True)
    config_hash = run_hash(exp, exp.methods["clustered"], 1, exp_file, {"trainer.max_epochs": 2})
    done.write_text(json.dumps({"config_hash": config_hash, "status": "finished", "result": {}}))
    runs = rare4.planned_runs([full, quarter], tmp_path, {"trainer.max_epochs": 2}, None)
    assert [(r.method, r.seed) for r in runs if r.finished] == [("clustered", 1)]
    text = rare4.plan_text(runs, "a test")
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert "| 0-1 | 4 | 3 |" not in rows[0] and "| 0, 1 | 4 | 3 |" in rows[0]
    left = sum(r.seconds for r in runs if not r.finished)
    assert "5 runs (4 to run, 1 finished and reused): estimated CPU time" in text
    assert f"({left / 3600:.2f} h)" in text


def test_plan_counts_a_pretraining_shared_by_read_outs_once(tmp_path):
    """clustered_ncm pretrains exactly as clustered does: in one plan the stage is counted for the first
    method only, and not at all once a finished run of either has recorded it (stage.json)."""
    both = rare4.Block(rare4.Setting("lstm", "1to2"), ("clustered", "clustered_ncm"), (0,))
    overrides = {"trainer.max_epochs": 2}
    cost = {r.method: r.seconds for r in rare4.planned_runs([both], tmp_path, overrides, None)}
    pretrain = rare4.STAGE_OVERHEAD_S["lstm"] + 2 * rare4.EPOCH_S["lstm", "EmbeddingPretrain"]
    assert cost["clustered_ncm"] == pytest.approx(cost["clustered"] - pretrain)
    alone = rare4.Block(both.setting, ("clustered_ncm",), (0,))
    unshared = rare4.planned_runs([alone], tmp_path, overrides, None)[0].seconds
    assert unshared == pytest.approx(cost["clustered"])
    exp_file, exp = rare4.experiment(both.setting)
    chain = stage_hashes(exp, exp.methods["clustered"], 0, exp_file, overrides)
    stage = tmp_path / exp.name / "seed0" / "clustered" / "pretrain"
    stage.mkdir(parents=True)
    (stage / "best.ckpt").write_bytes(b"")
    record_stage(stage, chain[0], str(stage / "best.ckpt"))
    shared = rare4.planned_runs([alone], tmp_path, overrides, None)[0].seconds
    assert shared == pytest.approx(cost["clustered_ncm"])


def test_plan_command_prints_the_plan_and_what_it_leaves_out(tmp_path, capsys):
    rare4.main(["--plan", "--backbones", "cnn", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "rare4 plan (the default plan)" in text and "rare4 plan (left out of the default plan" in text
    assert text.count("estimated CPU time") == 2 and "| lstm |" not in text
    assert not list(tmp_path.iterdir())  # nothing ran
    with pytest.raises(SystemExit):
        rare4.main(["--plan", "--fractions", "0", "0.5"])
    assert "--fractions must be in (0, 1], got [0.0]" in capsys.readouterr().err


def test_plan_warns_when_a_fold_1_choice_runs_in_2to1(tmp_path):
    block = rare4.Block(rare4.Setting("cnn", "2to1"), ("clustered_joint",), (0,))
    text = rare4.plan_text(rare4.planned_runs([block], tmp_path, {}, None), "a test")
    assert "clustered_joint were chosen by cross-validation inside fold 1" in text


def fake_result(direction_shift: float, n_seeds: int = 3) -> dict:
    """A results.json-like dict for weighted_ce and clustered on 40 test clips of the four classes."""
    rng = np.random.default_rng(int(direction_shift * 100))
    labels = np.arange(40) % 4
    runs = {}
    for method, err in (("weighted_ce", 0.4 + direction_shift), ("clustered", 0.3 + direction_shift)):
        runs[method] = {}
        for s in range(n_seeds):
            preds = np.where(rng.random(40) < err, (labels + 1) % 4, labels)
            r = run(preds, labels, rare4.CLASSES)
            runs[method][s] = {**r, "wall_s": 1.0}
    result = {
        "seeds": list(range(n_seeds)),
        "reference": "weighted_ce",
        "classes": rare4.CLASSES,
        "wall_s": 6.0,
    }
    result.update(summarize(runs, rare4.CLASSES, "weighted_ce"))
    result["comparison"] = compare(runs, "weighted_ce", rare4.CLASSES, n_boot=100)
    result["runs"] = {m: {str(s): r for s, r in per.items()} for m, per in runs.items()}
    return result


def test_report_pools_the_directions_and_draws_the_curve(tmp_path):
    results = {
        rare4.Setting("lstm", d, fraction=f): fake_result(0.1 if d == "2to1" else 0.0)
        for d in ("1to2", "2to1")
        for f in (0.5, 1.0)
    }
    results[rare4.Setting("cnn", "1to2")] = fake_result(0.0)  # one direction only: not pooled
    for d in ("1to2", "2to1"):  # the second training ratio gets a headline table of its own
        results[rare4.Setting("cnn", d, "6:1:2:16")] = fake_result(0.05)
    rare4.write_report(results, "--test", tmp_path, "rare4")
    md = (tmp_path / "rare4.md").read_text()
    assert md.index("## Headline: 2:2:1:26") < md.index("## Headline: 6:1:2:16")
    second = md.split("## Headline: 6:1:2:16")[1].split("\n\n")[2].splitlines()
    assert len(second) == 3 and second[2].startswith("| CNN | clustered | ")
    assert "## LSTM, train ratio 2:2:1:26, 100% of the training fold: pooled over both directions" in md
    headline = md.split("## Headline")[1].split("\n\n")[2].splitlines()
    assert len(headline) == 3 and headline[2].startswith("| LSTM | clustered | ")  # CNN: one direction
    assert headline[2].endswith("| +17.0% [-18.1, +40.7] | 0.50 [0.11, 1.80] | 4.5/6 |")  # a tie: half
    assert "## CNN, train ratio 2:2:1:26" not in md.split("## Data-size curve")[0]
    curve = md.split("## Data-size curve")[1].split("\n\n")[1].splitlines()
    assert [row.split(" | ")[2] for row in curve[2:]] == ["50%", "100%"]
    assert all(row.rstrip(" |").endswith("| 6") for row in curve[2:])  # 3 seeds x 2 directions
    full = md.split("## LSTM, train ratio 2:2:1:26, 100%")[1].split("| clustered |")[1].split("\n")[0]
    assert curve[3].split(" | ")[6] == full.split(" | ")[6]  # the pooled table's std ratio
    assert '"predictions"' not in (tmp_path / "rare4.json").read_text()  # they stay under --out
    assert "Figure: `rare4.png`" in md and (tmp_path / "rare4.png").read_bytes()[:4] == b"\x89PNG"
    panels = rare4.forest_panels(rare4.pooled_comparisons(results))  # the figure: 100% share only
    assert list(panels) == ["LSTM, train ratio 2:2:1:26, whole training fold, pooled over 1to2, 2to1"]
    (row,) = next(iter(panels.values()))
    assert (row.method, row.runs, row.directions) == ("clustered", 6, ("1to2", "2to1"))
    assert f"{row.estimate:+.1f}% [{row.low:+.1f}, {row.high:+.1f}]" in headline[2]
    saved = json.loads((tmp_path / "rare4.json").read_text())
    assert len(saved["settings"]) == 7 and {p["fraction"] for p in saved["pooled"]} == {0.5, 1.0}
    pooled = next(p for p in saved["pooled"] if p["backbone"] == "lstm" and p["fraction"] == 1)
    pooled = pooled["methods"]["clustered"]
    assert pooled["shared_seeds"] == [f"{d}/{s}" for d in ("1to2", "2to1") for s in range(3)]


def test_variance_reduction_is_compared_on_equal_terms():
    """Per rule: its effect on the reference and on the recipe, then the recipe against the reference when
    both use it. Here the rule changes nothing (each *_ema method repeats its plain method's runs), so the
    two effects are nil and the equal-terms row is the headline's recipe against the reference."""
    results = {}
    for d in ("1to2", "2to1"):
        result = fake_result(0.1 if d == "2to1" else 0.0)
        result["runs"]["weighted_ce_ema"] = result["runs"]["weighted_ce"]
        result["runs"]["clustered_ema"] = result["runs"]["clustered"]
        results[rare4.Setting("lstm", d)] = result
    rows = rare4.equal_terms_table(results)[6:-1]
    assert [row.split(" | ")[2] for row in rows] == [
        "weighted_ce_ema vs weighted_ce",
        "clustered_ema vs clustered",
        "clustered_ema vs weighted_ce_ema",
    ]  # no smoothed-rule runs: no rows for it
    for row in rows[:2]:
        assert row.endswith("| 1to2, 2to1 | +0.0% [+0.0, +0.0] | 1.00 [1.00, 1.00] | 3/6 |")  # ties: half
    headline = rare4.pooled_comparisons(results)["lstm", "2:2:1:26", 1.0]["methods"]["clustered"]
    assert rows[2].split(" | ")[4] == reduction_cell(headline["reduction"]["macro_err"])
    assert rows[2].split(" | ")[4] != "+0.0% [+0.0, +0.0]"
    assert rare4.equal_terms_table({rare4.Setting("lstm", "1to2"): fake_result(0.0)}) == []
    one = rare4.equal_terms_table({rare4.Setting("lstm", "1to2"): results[rare4.Setting("lstm", "1to2")]})
    assert [row.split(" | ")[3] for row in one[6:-1]] == ["1to2"] * 3  # pooled over the directions run


def test_read_outs_are_compared_with_the_linear_head():
    """Each read-out against the recipe (its own linear head, same pretraining), not against the
    reference: a read-out repeating the recipe's runs is a nil effect, one run in 1to2 only says so."""
    results = {}
    for d in ("1to2", "2to1"):
        result = fake_result(0.1 if d == "2to1" else 0.0)
        result["runs"]["clustered_ncm"] = result["runs"]["clustered"]
        if d == "1to2":
            result["runs"]["clustered_joint"] = result["runs"]["weighted_ce"]
        results[rare4.Setting("cnn", d)] = result
    rows = rare4.readout_table(results)[6:-1]
    assert [row.split(" | ")[2:4] for row in rows] == [
        ["clustered_ncm vs clustered", "1to2, 2to1"],
        ["clustered_joint vs clustered", "1to2"],
    ]
    assert rows[0].endswith("| +0.0% [+0.0, +0.0] | 1.00 [1.00, 1.00] | 3/6 |")
    per_direction = results[rare4.Setting("cnn", "1to2")]["comparison"]["methods"]["clustered"]
    recipe_vs_ref = per_direction["reduction"]["macro_err"]["estimate"]  # joint = the reference's runs
    joint = rows[1].split(" | ")[4]
    assert float(joint.split("%")[0]) == pytest.approx(-100 * recipe_vs_ref / (1 - recipe_vs_ref), abs=0.06)
    rows = rare4.forest_panels(rare4.pooled_comparisons(results))
    labels = [r.label for rows in rows.values() for r in rows]
    assert "clustered_joint (3 runs, 1to2 only)" in labels  # the figure says so


@pytest.mark.parametrize("backbone", ["lstm", "cnn"])
def test_every_clustered_variant_shares_the_recipes_pretraining(backbone):
    """The read-outs, EMA and smoothed-rule variants fine-tune from the recipe's own pretraining (same
    stage hash): trained once per seed, and the comparison is of the fine-tuning alone."""
    exp_file, exp = rare4.experiment(rare4.Setting(backbone, "1to2"))
    recipe = stage_hashes(exp, exp.methods["clustered"], 0, exp_file)[0]
    variants = [m for m in (*rare4.READOUTS, *rare4.SMOOTHED) if m.startswith("clustered")]
    assert len(variants) == 5
    for m in variants:
        assert stage_hashes(exp, exp.methods[m], 0, exp_file)[0] == recipe, m


def test_validation_picks_the_clustered_variant_per_direction_never_the_test(tmp_path):
    """Per direction the clustered variant with the lowest mean validation error (5+ seeds) is chosen,
    whatever its test error; in 2to1 a variant chosen on fold 1 is no candidate. The choice is compared
    with the reference like a method, direction by direction."""
    val = {  # method -> (1to2, 2to1) mean validation macro error of the selected checkpoints
        "weighted_ce": (0.1, 0.1),  # not a clustered variant: never chosen
        "clustered": (0.40, 0.40),
        "clustered_ncm": (0.30, 0.45),
        "clustered_joint": (0.20, 0.20),  # chosen on fold 1: a candidate in 1to2 only
        "clustered_knn": (0.05, 0.05),  # 4 seeds: no candidate
    }
    results = {}
    for d, col in (("1to2", 0), ("2to1", 1)):
        result = fake_result(0.0, n_seeds=5)
        runs = result["runs"]
        for m in ("clustered_ncm", "clustered_joint", "clustered_knn"):
            runs[m] = json.loads(json.dumps(runs["weighted_ce"]))  # the test errors of the reference
        del runs["clustered_knn"]["4"]
        for m, per in runs.items():
            for r in per.values():
                r["selected_val_macro_err"] = val[m][col]
        results[rare4.Setting("lstm", d)] = result
    choice = {s.direction: rare4.validation_choice(s, rare4._runs(r)) for s, r in results.items()}
    assert choice["1to2"] == (
        "clustered_joint",
        pytest.approx({"clustered": 0.4, "clustered_ncm": 0.3, "clustered_joint": 0.2}),
    )
    assert choice["2to1"][0] == "clustered" and set(choice["2to1"][1]) == {"clustered", "clustered_ncm"}
    pooled = rare4.pooled_comparisons(results)["lstm", "2:2:1:26", 1.0]["methods"]
    chosen = pooled[rare4.CHOSEN]["macro_err_diff"]
    assert chosen == {
        **{k: v for k, v in pooled["clustered_joint"]["macro_err_diff"].items() if k.startswith("1to2/")},
        **{k: v for k, v in pooled["clustered"]["macro_err_diff"].items() if k.startswith("2to1/")},
    }
    assert len(chosen) == 10 and all(v == 0 for k, v in chosen.items() if k.startswith("1to2/"))
    rare4.write_report(results, "--test", tmp_path, "rare4")
    md = (tmp_path / "rare4.md").read_text()
    assert (
        "| lstm | 1to2 | 2:2:1:26 | 100% | clustered_joint | "
        "clustered_joint 0.200, clustered_ncm 0.300, clustered 0.400 |" in md
    )
    assert f"| {rare4.CHOSEN} |" in md
    (rows,) = rare4.forest_panels(rare4.pooled_comparisons(results)).values()  # the choice is drawn too
    assert [r.method for r in rows[:2]] == ["clustered", rare4.CHOSEN]  # the highlighted pair first
    chosen = next(r for r in rows if r.method == rare4.CHOSEN)
    expected = pooled[rare4.CHOSEN]["reduction"]["macro_err"]
    assert (chosen.estimate, chosen.runs) == (pytest.approx(100 * expected["estimate"]), 10)
