"""A method chosen on validation (``choose_on_validation``): the rule, its config checks, the row it gets
in the experiment's own results, and the journey through ``clusterlight experiment``."""

import json

import pytest
from helpers.configs import CONFIGS, tiny_experiment, write_yaml
from omegaconf import OmegaConf

from clusterlight.cli import main
from clusterlight.experiment.choice import ValidationChoice, choose_on_validation, validation_error
from clusterlight.experiment.configs import stage_hashes
from clusterlight.experiment.report import write_results


def _val(errs: dict[int, float | None]) -> dict[int, dict]:
    return {s: {"selected_val_macro_err": e} for s, e in errs.items()}


def test_the_lowest_mean_validation_error_on_shared_seeds_is_chosen():
    runs = {
        "a": _val({0: 0.30, 1: 0.30, 2: 0.10}),  # mean on 0-1: 0.30; on 0-2 it would be 0.233
        "b": _val({0: 0.25, 1: 0.25}),  # mean 0.25 on the shared seeds 0-1
        "c": _val({0: 0.20}),  # one seed: not eligible with min_seeds 2
    }
    chosen, means, seeds = choose_on_validation(runs, ["a", "b", "c"], min_seeds=2)
    assert chosen == "b" and seeds == [0, 1]
    assert means == pytest.approx({"a": 0.30, "b": 0.25})
    assert choose_on_validation(runs, ["a", "b", "c"], min_seeds=1)[0] == "c"  # seed 0 only: c's 0.20


def test_no_choice_without_enough_seeds_or_validation_errors():
    assert choose_on_validation({"a": _val({0: 0.1})}, ["a", "b"], min_seeds=2) == (None, {}, [])
    runs = {"a": _val({0: 0.1, 1: None}), "b": _val({0: 0.3, 1: 0.3})}  # a lacks a validation error
    assert choose_on_validation(runs, ["a", "b"], min_seeds=2)[0] == "b"
    disjoint = {"a": _val({0: 0.1}), "b": _val({1: 0.2})}
    assert choose_on_validation(disjoint, ["a", "b"])[0] is None


def test_the_selected_checkpoints_own_validation_pass_counts_over_a_smoothed_score():
    smoothed = {0: {"selected_val_macro_err": 0.30, "val": {"metrics": {"macro_err": 0.10}}}}
    runs = {"smooth": smoothed, "plain": _val({0: 0.20})}
    assert choose_on_validation(runs, ["plain", "smooth"]) == ("smooth", {"plain": 0.2, "smooth": 0.1}, [0])


def test_a_tie_goes_to_the_candidate_named_first():
    runs = {"a": _val({0: 0.2}), "b": _val({0: 0.2})}
    assert choose_on_validation(runs, ["b", "a"])[0] == "b"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "c", "among": ["a"]}, "at least two different"),
        ({"name": "c", "among": ["a", "a"]}, "at least two different"),
        ({"name": "c", "among": ["a", "zz"]}, "no method(s) ['zz']"),
        ({"name": "c", "among": "a"}, "must be a list"),
        ({"among": ["a", "b"]}, ".name must name the choice's row"),
        ({"name": "a", "among": ["a", "b"]}, "already a method's name"),
        ({"name": "c", "among": ["a", "b"], "min_seeds": 0}, "at least 1, got 0"),
        ({"name": "c", "among": ["a", "b"], "min_seeds": None}, "at least 1, got None"),
        ({"name": "c", "among": ["a", "b"], "seeds": 3}, "unknown key(s) ['seeds']"),
        ("a, b", "must be a mapping"),
    ],
)
def test_a_malformed_choice_is_named(spec, message):
    exp = OmegaConf.create({"name": "t", "choose_on_validation": spec, "methods": {"a": {}, "b": {}}})
    with pytest.raises(ValueError, match="choose_on_validation") as e:
        ValidationChoice.from_experiment(exp, exp.methods)
    assert message in str(e.value)


def _run(err: float, val: float, labels: list[int]) -> dict:
    wrong = round(err * 10)  # the first `wrong` clips of each class are misclassified
    preds = [1 - y if i % 10 < wrong else y for i, y in enumerate(labels)]
    metrics = {"err_a": err, "err_b": err, "macro_err": err, "acc": 1 - err}
    return {
        "metrics": metrics,
        "predictions": preds,
        "labels": labels,
        "selected_val_macro_err": val,
        "wall_s": 1.0,
    }


def test_results_compare_the_chosen_variant_under_its_own_name(tmp_path):
    labels = [0] * 10 + [1] * 10
    runs = {
        "ref": {s: _run(0.3, 0.3, labels) for s in range(3)},
        "x": {s: _run(0.1, 0.4, labels) for s in range(3)},  # best on test, worse on validation
        "y": {s: _run(0.2, 0.2, labels) for s in range(3)},
    }
    exp = OmegaConf.create(
        {"name": "t", "choose_on_validation": {"name": "picked", "among": ["x", "y"], "min_seeds": 3}}
    )
    choice = ValidationChoice.from_experiment(exp, runs)
    result = write_results(tmp_path, exp, runs, ["a", "b"], "ref", choice=choice)
    assert result["choice"]["chosen"] == "y" and result["choice"]["seeds"] == [0, 1, 2]
    assert result["summary"]["picked"] == result["summary"]["y"]
    compared = result["comparison"]["methods"]
    assert compared["picked"]["reduction"] == compared["y"]["reduction"]
    assert result["reduction"]["picked"]["macro_err"] == pytest.approx(1 / 3)
    assert set(result["runs"]) == {"ref", "x", "y"}  # only real methods have runs (and folders)
    md = (tmp_path / "results.md").read_text()
    assert "| picked |" in md and "picked is **y**" in md and "y 0.200, x 0.400" in md

    fewer = {m: {s: r for s, r in per.items() if s < 2} for m, per in runs.items()}
    result = write_results(tmp_path, exp, fewer, ["a", "b"], "ref", choice=choice)
    assert result["choice"]["chosen"] is None and "picked" not in result["summary"]
    assert "picked: no choice yet" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_experiment_reports_the_variant_chosen_on_validation(tmp_path, capsys):
    """The journey: two clustered read-outs sharing one pretraining; the results name the one validation
    picked and compare it with the baseline like a method."""
    exp = tiny_experiment(tmp_path)
    ncm = json.loads(json.dumps(exp["methods"]["clustered"]))
    ncm["stages"][1]["configs"].append(str(CONFIGS / "model/readout/nearest_centroid.yaml"))
    exp["methods"]["clustered_ncm"] = ncm
    exp["choose_on_validation"] = {"name": "chosen", "among": ["clustered", "clustered_ncm"], "min_seeds": 1}
    exp_file = write_yaml(tmp_path, "exp.yaml", exp)
    main(["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out"), "--seeds", "0"])
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "out/results.json").read_text())
    chosen = result["choice"]["chosen"]
    vals = {m: validation_error(result["runs"][m]["0"]) for m in ("clustered", "clustered_ncm")}
    assert chosen == min(vals, key=vals.get)  # ties: clustered, named first
    assert result["summary"]["chosen"] == result["summary"][chosen]
    assert "chosen" in result["comparison"]["methods"] and "| chosen |" in printed
    assert f"chosen is **{chosen}**" in printed


def test_the_quickstart_chooses_among_the_method_variants(tmp_path, capsys):
    """The README's main job: three read-outs of one pretraining (trained once per seed), the choice
    among them, printed by the dry run; a malformed choice is a usage error before anything trains."""
    exp_file = CONFIGS / "experiment/quickstart.yaml"
    exp = OmegaConf.load(exp_file)
    choice = ValidationChoice.from_experiment(exp, exp.methods)
    assert choice.among[0] == "clustered" and len(choice.among) == 3 and choice.min_seeds == len(exp.seeds)
    pretrain = {stage_hashes(exp, exp.methods[m], 0, exp_file)[0] for m in choice.among}
    assert len(pretrain) == 1
    main(["experiment", "--config", str(exp_file), "--output_dir", str(tmp_path), "--dry_run"])
    assert "then clustered_chosen_on_val: whichever of clustered, clustered_ncm, clustered_centroid_head" in (
        capsys.readouterr().out
    )


def test_a_malformed_choice_is_a_usage_error(tmp_path, capsys):
    exp = tiny_experiment(tmp_path)
    exp["choose_on_validation"] = {"name": "chosen", "among": ["clustered", "nope"]}
    exp_file = write_yaml(tmp_path, "exp.yaml", exp)
    with pytest.raises(SystemExit) as e:
        main(["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out")])
    assert e.value.code == 2 and "no method(s) ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
