"""cbam.experiments: paired seeds, resumable grids, the statistics, and the stored runs.

The stored runs (cbam/results/*.json) are checked for what the course claims of them (paired
seeds, a plateau, a reference variant off the floor and the ceiling, a small baseline spread,
provenance), and one (variant, seed) of each is re-run: on the machine that made them the
numbers must come back to the bit, elsewhere within a point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import subprocess
import sys

import pytest
import torch

import cbam.experiments.settings as settings_module
from cbam import experiments
from cbam.experiments import runner, store
from cbam.experiments.stats import mean_interval, plateau_change, sample_sd, summarize

TINY = dataclasses.replace(experiments.QUICK, n_train=96, n_val=48, epochs=2, batch_size=32)


@pytest.fixture
def tiny(monkeypatch):
    """Quick mode shrunk to seconds: the runs exercise the code, not the task."""
    monkeypatch.setitem(settings_module.SETTINGS, "quick", TINY)
    runner.datasets.cache_clear()
    yield TINY
    runner.datasets.cache_clear()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Paired seeds


def backbone(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if ".attention." not in k}


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_variant_starts_from_the_same_backbone(name):
    experiment = experiments.get_experiment(name)
    settings = experiments.QUICK
    for seed in (0, 1):
        models = [
            experiments.build_model(experiment, v, seed, settings, 4) for v in experiment.variants
        ]
        first = backbone(models[0])
        assert len(first) > 10
        for model in models[1:]:
            other = backbone(model)
            assert other.keys() == first.keys()
            for key in first:
                assert torch.equal(other[key], first[key]), f"{name}, seed {seed}: {key} differs"
    # ... and seeds do differ.
    a = backbone(experiments.build_model(experiment, experiment.reference, 0, settings, 4))
    b = backbone(experiments.build_model(experiment, experiment.reference, 1, settings, 4))
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])


def test_attention_weights_depend_on_the_seed_not_on_other_modules():
    experiment = experiments.get_experiment("attention")
    one = experiments.build_model(experiment, "cbam", 3, experiments.QUICK, 4)
    again = experiments.build_model(experiment, "cbam", 3, experiments.QUICK, 4)
    other = experiments.build_model(experiment, "cbam", 4, experiments.QUICK, 4)
    key = "layer1.0.attention.spatial.conv.weight"
    assert torch.equal(one.state_dict()[key], again.state_dict()[key])
    assert not torch.equal(one.state_dict()[key], other.state_dict()[key])


def test_variants_see_the_same_batches_in_the_same_order(tiny, monkeypatch):
    seen: dict[str, list[torch.Tensor]] = {}
    make_loaders = runner.make_loaders

    def recording(train, val, batch_size, **options):
        train_loader, val_loader = make_loaders(train, val, batch_size, **options)

        class Recorder:
            def __len__(self):
                return len(train_loader)

            def __iter__(self):
                for batch in train_loader:
                    seen.setdefault(variant, []).append(batch[1].clone())
                    yield batch

        return Recorder(), val_loader

    monkeypatch.setattr(runner, "make_loaders", recording)
    for variant in ("baseline", "cbam"):
        runner.run_one("attention", variant, 5, tiny)
    assert len(seen["baseline"]) == len(seen["cbam"]) == TINY.epochs * 3
    for a, b in zip(seen["baseline"], seen["cbam"], strict=True):
        assert torch.equal(a, b)


# Variants with no channel MLP: no module, a 1-D convolution (ECA), or no weights at all (SimAM).
WITHOUT_MLP = {"baseline", "max-head", "spatial", "eca", "eca-max", "coordinate", "simam"}


def test_every_channel_mlp_has_at_least_four_hidden_units():
    for name, experiment in experiments.EXPERIMENTS.items():
        for variant in experiment.variants:
            model = experiments.build_model(experiment, variant, 0, experiments.QUICK, 4)
            widths = [m.hidden_channels for m in model.modules() if hasattr(m, "hidden_channels")]
            assert all(w >= 4 for w in widths), (name, variant, widths)
            assert (widths != []) == (variant not in WITHOUT_MLP), (name, variant)


def test_each_variant_builds_the_module_it_names():
    def modules(name, variant):
        experiment = experiments.get_experiment(name)
        model = experiments.build_model(experiment, variant, 0, experiments.QUICK, 4)
        return model.layer2[0].attention

    assert modules("pooling", "max").pool_types == ("max",)
    assert modules("attention", "se").pool_types == ("avg",)
    assert modules("attention", "channel").pool_types == ("avg", "max")
    assert modules("spatial", "conv1x1-k3").spatial.reduce.in_channels == 32
    assert modules("spatial", "conv1x1-k3").spatial.kernel_size == 3
    assert modules("spatial", "pool-k7").spatial.reduce is None
    assert modules("arrangement", "parallel").arrangement == "parallel"


# ---------------------------------------------------------------------------------------------
# Running a grid


def test_a_grid_is_resumed_not_redone(tiny, tmp_path, monkeypatch):
    out = tmp_path / "pooling.json"
    first = experiments.run_experiment("pooling", seeds=[0, 1], out=out, progress=False)
    assert {(r["variant"], r["seed"]) for r in first["runs"]} == {
        (v, s) for v in ("avg", "max", "avg+max") for s in (0, 1)
    }
    stored = store.load(out)
    assert stored["runs"] == store.normalise(first)["runs"]
    assert stored["provenance"]["seconds"] > 0

    calls = []
    worker = runner._worker
    monkeypatch.setattr(runner, "_worker", lambda task: calls.append(task[1:3]) or worker(task))
    again = experiments.run_experiment("pooling", seeds=[0, 1, 2], out=out, progress=False)
    assert sorted(calls) == [("avg", 2), ("avg+max", 2), ("max", 2)]
    assert len(again["runs"]) == 9
    assert [r for r in again["runs"] if r["seed"] < 2] == stored["runs"]


def test_a_file_of_other_settings_is_refused(tiny, tmp_path):
    out = tmp_path / "spatial.json"
    out.write_text(json.dumps({
        "experiment": "spatial", "mode": "quick", "settings": {"epochs": 1},
        "provenance": {}, "runs": [],
    }))  # fmt: skip
    before = out.read_text()
    with pytest.raises(ValueError, match="other settings"):
        experiments.run_experiment("spatial", seeds=[0], out=out, progress=False)
    assert out.read_text() == before


def test_parallel_jobs_give_the_same_runs_as_one_process(tiny, tmp_path):
    one = experiments.run_experiment("arrangement", seeds=[0], jobs=1, progress=False)
    two = experiments.run_experiment(
        "arrangement", seeds=[0], jobs=2, out=tmp_path / "a.json", keep_models=[0],
        progress=False,
    )  # fmt: skip
    strip = lambda runs: sorted(  # noqa: E731
        ({k: v for k, v in r.items() if k != "seconds"} for r in runs), key=lambda r: r["variant"]
    )
    assert strip(one["runs"]) == strip(two["runs"])
    kept = sorted(p.name for p in (tmp_path / "a-models").iterdir())
    assert kept == ["channel-first-seed0.pt", "parallel-seed0.pt", "spatial-first-seed0.pt"]


@pytest.mark.parametrize(
    "arguments, fragments",
    [
        (["nope"], ["invalid choice", "'nope'"]),
        (["attention", "--variants", "cbam,sse"], ["variants", "'sse'"]),
        (["attention", "--seeds", "0-x"], ["seeds must look like", "'0-x'"]),
        (["attention", "--jobs", "0"], ["jobs must be an int >= 1", "0"]),
    ],
)
def test_the_command_names_bad_input(arguments, fragments, capsys):
    from cbam.experiments.cli import main

    try:
        status = main(arguments)
    except SystemExit as exit:  # argparse's own refusals
        status = exit.code
    assert status == 2
    error = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in error


def test_parse_seeds():
    assert experiments.parse_seeds("0-3") == [0, 1, 2, 3]
    assert experiments.parse_seeds("5,1-2,1") == [1, 2, 5]


# ---------------------------------------------------------------------------------------------
# Statistics


def test_the_interval_is_students_t():
    interval = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # t(0.975, 4) = 2.7764; sd = sqrt(2.5)
    half = 2.7764451 * 2.5**0.5 / 5**0.5
    assert interval.mean == pytest.approx(3.0)
    assert interval.low == pytest.approx(3.0 - half, abs=1e-6)
    assert interval.high == pytest.approx(3.0 + half, abs=1e-6)
    assert interval.verdict() == "higher"
    assert mean_interval([-1.0, 1.0, 0.5]).verdict() == "no difference shown"
    assert mean_interval([-1.0, -1.2, -0.9]).verdict() == "lower"
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        mean_interval([1.0])


def fake_result(accuracies: dict[str, list[float]], name: str = "pooling") -> dict:
    runs = [
        {"variant": v, "seed": s, "final_val_acc": a / 100, "val_acc": [a / 100] * 3}
        for v, values in accuracies.items()
        for s, a in enumerate(values)
    ]
    return {"experiment": name, "runs": runs}


def test_differences_are_paired_by_seed():
    # max is always 2 points above avg on the same seed, though seeds spread by 20 points:
    # unpaired, nothing could be told; paired, the difference is exact.
    result = fake_result({"avg": [50, 70, 60, 80], "max": [52, 72, 62, 82]})
    rows = {row.variant: row for row in summarize(result)}
    assert rows["avg"].difference is None and rows["avg"].verdict == "reference"
    assert rows["max"].sd == pytest.approx(sample_sd([52, 72, 62, 82]))
    assert rows["max"].difference.mean == pytest.approx(2.0)
    assert rows["max"].difference.low == pytest.approx(2.0)
    assert rows["max"].verdict == "better than the reference"


def test_plateau_change_reads_the_mean_curve():
    result = {"runs": [
        {"variant": "a", "val_acc": [0.1, 0.50, 0.60, 0.61]},
        {"variant": "a", "val_acc": [0.2, 0.52, 0.62, 0.60]},
    ]}  # fmt: skip
    assert plateau_change(result, "a") == pytest.approx(10.0)
    assert plateau_change(result, "a", last=2) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# The stored runs

STORED = list(experiments.EXPERIMENTS)


@pytest.mark.parametrize("name", STORED)
def test_the_stored_runs_are_what_the_course_says(name):
    result = experiments.load(name)
    experiment = experiments.get_experiment(name)
    settings = experiment.settings("quick")
    assert result["experiment"] == name and result["mode"] == "quick"
    assert result["settings"] == store.normalise({"s": settings.as_dict()})["s"], (
        "the quick settings changed since these runs were made: re-make them with "
        f"`make experiments` (cbam-course experiment {name} ...)"
    )
    seeds = {}
    for run in result["runs"]:
        seeds.setdefault(run["variant"], set()).add(run["seed"])
        assert len(run["val_acc"]) == len(run["train_loss"]) == settings.epochs
        assert run["final_val_acc"] == run["val_acc"][-1]
    assert set(seeds) == set(experiment.variants)
    paired = set.intersection(*seeds.values())
    assert len(paired) >= experiment.seeds and all(s == paired for s in seeds.values())
    for variant in experiment.variants:
        assert plateau_change(result, variant) <= 1.0, f"{variant} has not plateaued"
    rows = {row.variant: row for row in summarize(result)}
    assert 50 <= rows[experiment.reference].mean <= 92
    for key in ("commit", "command", "torch", "python", "device", "cpu", "threads", "date"):
        assert result["provenance"][key], key
    assert result["provenance"]["seconds"] > 0
    assert result["provenance"]["command"].startswith(f"cbam-course experiment {name}")


def test_the_baseline_spread_is_small_enough_to_tell():
    rows = {row.variant: row for row in summarize(experiments.load("attention"))}
    assert rows["baseline"].sd <= 1.5


def test_lesson_06_models_are_stored():
    experiment = experiments.get_experiment("attention")
    for variant in experiment.variants:
        state = experiments.load_model_state("attention", variant, 0)
        model = experiments.build_model(experiment, variant, 0, experiments.QUICK, 4)
        model.load_state_dict(state)


def check_reproduced(stored: dict, run: dict) -> None:
    expected = next(
        r for r in stored["runs"] if (r["variant"], r["seed"]) == (run["variant"], run["seed"])
    )
    if store.same_machine(stored):
        assert run["val_acc"] == expected["val_acc"], (
            "the stored runs no longer come out of the code that trains: re-make them "
            "(`make experiments`) in the same commit as the change"
        )
        return
    # Elsewhere (another processor's kernels round differently) the same seed is another draw
    # of rounding noise, which training amplifies epoch by epoch: the first epoch must agree
    # closely, the last within the spread the stored seeds show for this variant.
    assert abs(run["val_acc"][0] - expected["val_acc"][0]) <= 0.01
    finals = [r["final_val_acc"] for r in stored["runs"] if r["variant"] == run["variant"]]
    spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
    assert abs(run["final_val_acc"] - expected["final_val_acc"]) <= max(0.01, 3 * spread)


# One re-run of each stored experiment, about a minute each; the first one through the command.
RERUNS = {
    "pooling": ("max", 3),
    "spatial": ("conv1x1-k3", 7),
    "arrangement": ("parallel", 9),
    "controls": ("max-head", 2),
    "budget": ("channel", 4),
    "successors": ("simam", 6),
}


def test_the_command_reproduces_a_stored_run(tmp_path):
    out = tmp_path / "attention.json"
    command = [sys.executable, "-m", "cbam.course.cli", "experiment", "attention",
               "--variants", "cbam", "--seeds", "0", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cbam seed 0: final validation accuracy" in done.stdout
    (run,) = json.loads(out.read_text())["runs"]
    check_reproduced(experiments.load("attention"), run)


@pytest.mark.parametrize("name", sorted(RERUNS))
def test_a_stored_run_is_reproduced(name):
    variant, seed = RERUNS[name]
    run = runner.run_one(name, variant, seed, experiments.get_experiment(name).settings("quick"))
    check_reproduced(experiments.load(name), run)


def test_the_paper_comparison_sets_both_side_by_side():
    result = fake_result({"avg": [80, 81, 82], "max": [79, 80, 82], "avg+max": [83, 84, 85]})
    text = experiments.paper_comparison(result)
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "23.14" in lines["avg"] and "reference" in lines["avg"]
    assert "23.20" in lines["max"] and "-0.06" in lines["max"]  # the paper: max is worse
    assert "22.80" in lines["avg+max"] and "+0.34" in lines["avg+max"]
    assert "+3.0 [+3.0, +3.0]" in lines["avg+max"]


def test_the_difference_plot_colours_by_the_verdict():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = fake_result({"avg": [80, 81, 82, 80], "max": [79, 82, 81, 81],
                          "avg+max": [83, 84, 85, 83]})  # fmt: skip
    fig, ax = plt.subplots()
    experiments.plot_differences(summarize(result), ax)
    colours = [line.get_color() for line in ax.lines if line.get_marker() == "o"]
    assert colours == ["tab:gray", "tab:green"]  # max: crosses 0; avg+max: above it
    assert [t.get_text() for t in ax.get_yticklabels()] == ["max", "avg+max"]
    plt.close(fig)


def test_the_same_module_and_seed_give_the_same_run_in_two_experiments():
    """pooling's avg is attention's se, its avg+max attention's channel, and spatial's pool-k7
    and arrangement's channel-first attention's cbam: the same modules, built and trained from
    the same seeds in separate runs, must agree to the bit."""
    pooling = {(r["variant"], r["seed"]): r["val_acc"] for r in experiments.load("pooling")["runs"]}
    attention = {
        (r["variant"], r["seed"]): r["val_acc"] for r in experiments.load("attention")["runs"]
    }
    spatial = {(r["variant"], r["seed"]): r["val_acc"] for r in experiments.load("spatial")["runs"]}
    arrangement = {
        (r["variant"], r["seed"]): r["val_acc"] for r in experiments.load("arrangement")["runs"]
    }
    for seed in range(10):
        assert pooling["avg", seed] == attention["se", seed]
        assert pooling["avg+max", seed] == attention["channel", seed]
        assert spatial["pool-k7", seed] == attention["cbam", seed]
        assert arrangement["channel-first", seed] == attention["cbam", seed]


def test_runs_shared_by_the_newer_experiments_agree_or_are_copied():
    """controls and successors hold the plain network and CBAM too: trained on the same kind of
    machine they must agree to the bit; copied (``Experiment.shared``) they say from where."""
    controls, successors = experiments.load("controls"), experiments.load("successors")

    def made_on(result: dict) -> tuple:
        return tuple(result["provenance"].get(k) for k in ("device", "cpu", "cpu_capability",
                                                            "torch", "python"))  # fmt: skip

    assert made_on(controls) == made_on(successors), "re-make both on one machine"
    for variant in ("baseline", "cbam"):
        a = {r["seed"]: r["val_acc"] for r in controls["runs"] if r["variant"] == variant}
        b = {r["seed"]: r["val_acc"] for r in successors["runs"] if r["variant"] == variant}
        assert a == b, variant
    for result in (controls, successors):
        copied = result["provenance"].get("copied", {})
        experiment = experiments.get_experiment(result["experiment"])
        assert set(copied) <= set(experiment.shared)


def test_an_interval_never_hides_its_side_of_zero():
    from cbam.experiments.stats import Interval

    assert str(Interval(1.3, -0.02, 2.7, 10)) == "+1.3 [-0.02, +2.7]"
    assert str(Interval(-0.04, -1.0, 0.9, 10)) == "-0.04 [-1.0, +0.9]"
    assert str(Interval(0.0, -1.0, 1.0, 10)) == "+0.0 [-1.0, +1.0]"


# ---------------------------------------------------------------------------------------------
# p-values, Holm's correction, equivalence margins


def test_an_interval_whose_bound_touches_zero_has_p_one_minus_its_confidence():
    from cbam.experiments.stats import Interval

    # The bound at 0 means |mean| / se is exactly the interval's own t quantile.
    assert Interval(1.7, 0.0, 3.4, 7).p_value == pytest.approx(0.05, abs=1e-12)
    assert Interval(-1.0, -2.0, 0.0, 5).p_value == pytest.approx(0.05, abs=1e-12)
    assert Interval(1.7, 0.0, 3.4, 7, confidence=0.9).p_value == pytest.approx(0.1, abs=1e-12)


def test_the_p_value_matches_the_t_table():
    from cbam.experiments.stats import Interval

    # Half-width 2.262 = t(0.975, 9) from the table with 10 values: the standard error is 1, so
    # the t statistic is the mean. The table: t = 2.262 -> p = 0.05, t = 3.250 -> p = 0.01.
    assert Interval(2.262, 0.0, 4.524, 10).p_value == pytest.approx(0.05, abs=2e-4)
    assert Interval(3.250, 3.250 - 2.262, 3.250 + 2.262, 10).p_value == pytest.approx(
        0.01, abs=1e-4
    )
    # One degree of freedom is the Cauchy distribution: P(|T| <= 1) = 2 atan(1) / pi = 1/2.
    # Half-width t(0.975, 1) = tan(0.475 pi) makes the standard error 1.
    half = math.tan(0.475 * math.pi)
    assert Interval(1.0, 1.0 - half, 1.0 + half, 2).p_value == pytest.approx(0.5, abs=1e-9)
    # Two degrees of freedom: P(|T| <= t) = t / sqrt(2 + t^2); t(0.975, 2) = 4.303 (table,
    # exactly sqrt(2 / (1/0.95^2 - 1)) from that formula).
    half = math.sqrt(2 / (1 / 0.95**2 - 1))
    assert Interval(1.0, 1.0 - half, 1.0 + half, 3).p_value == pytest.approx(
        1 - 1 / math.sqrt(3), abs=1e-9
    )


def test_a_zero_width_interval_has_p_one_at_zero_and_p_zero_elsewhere():
    from cbam.experiments.stats import Interval

    assert Interval(0.0, 0.0, 0.0, 5).p_value == 1.0
    assert Interval(2.0, 2.0, 2.0, 5).p_value == 0.0


def test_p_below_five_percent_exactly_when_the_interval_excludes_zero():
    for values in (
        [1.0, 2.0, 3.0],
        [0.1, -0.2, 0.5, 0.3],
        [2.0, 2.5, 1.9, 2.2],
        [-1.0, 1.0, 0.5],
        [-3.0, -2.5, -2.0, -2.2, -1.0],
        [0.2, 0.4, -0.1, 0.3, 0.5, 0.1],
    ):
        interval = mean_interval(values)
        assert (interval.p_value < 0.05) == interval.excludes_zero, values


def test_holm_on_hand_worked_families():
    from cbam.experiments.stats import holm

    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (kept
    # non-decreasing); given back in the order the p-values came.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.3 x 2 = 0.6, then 0.5 x 1 = 0.5 -> 0.6.
    assert holm([0.5, 0.3]) == pytest.approx([0.6, 0.6])
    # 0.6 x 2 = 1.2 -> capped at 1, and the larger one cannot go below it.
    assert holm([0.7, 0.6]) == [1.0, 1.0]
    # Ties: 0.02 x 2 = 0.04, then 0.02 x 1 -> 0.04.
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    # A family of one is the raw p; an empty family is empty.
    assert holm([0.037]) == [0.037]
    assert holm([]) == []


def test_holm_is_monotone_capped_and_between_raw_and_bonferroni():
    from cbam.experiments.stats import holm

    generator = torch.Generator().manual_seed(0)
    for m in (2, 3, 5, 8):
        for _ in range(20):
            p = torch.rand(m, generator=generator).mul(0.4).tolist()
            given = list(p)
            adjusted = holm(p)
            assert p == given  # the input is not reordered
            order = sorted(range(m), key=lambda i: p[i])
            assert all(adjusted[order[k - 1]] <= adjusted[order[k]] for k in range(1, m))
            for raw, value in zip(p, adjusted, strict=True):
                assert raw <= value <= min(1.0, m * raw) + 1e-15


def test_the_equivalence_margin_is_the_farther_bound_of_the_90_percent_interval():
    from cbam.experiments.stats import equivalence_margin
    from cbam.experiments.student_t import t_quantile

    # 1..5: mean 3, sd sqrt(2.5); t(0.95, 4) = 2.132 (table): 3 + 2.132 * sqrt(2.5 / 5) = 4.5076.
    assert equivalence_margin([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(4.5076, abs=2e-4)
    for values in (
        [-0.6, 0.4, 0.9, -1.1, 0.2, 0.0, 0.7, -0.3, 0.5, -0.8],
        [-2.0, -1.5, -2.5, -1.0],
    ):
        n = len(values)
        half = t_quantile(0.95, n - 1) * statistics.stdev(values) / math.sqrt(n)
        expected = abs(statistics.mean(values)) + half
        assert equivalence_margin(values) == pytest.approx(expected, rel=1e-12)
        assert equivalence_margin([-v for v in values]) == pytest.approx(expected, rel=1e-12)
        # alpha = 2.5 % makes it the 95 % interval's bound.
        wide = abs(statistics.mean(values)) + t_quantile(0.975, n - 1) * statistics.stdev(
            values) / math.sqrt(n)  # fmt: skip
        assert equivalence_margin(values, alpha=0.025) == pytest.approx(wide, rel=1e-12)


def stored_shape(accuracies: dict[str, list[float]], name: str = "pooling") -> dict:
    """A result as ``cbam.experiments.load`` returns it, accuracies in percent by seed."""
    runs = [
        {"variant": v, "seed": s, "final_val_acc": a / 100, "val_acc": [0.5, a / 100],
         "train_loss": [1.0, 0.5]}
        for v, values in accuracies.items() for s, a in enumerate(values)
    ]  # fmt: skip
    return {"experiment": name, "mode": "quick", "settings": {"epochs": 2},
            "provenance": {"commit": "abc", "device": "cpu"}, "runs": runs}  # fmt: skip


BASE = [80.0, 82.0, 84.0, 86.0, 88.0]


def test_summarize_reads_each_difference_with_holms_correction():
    # max - avg = [1, 2, 1, 0.2, 2.3]: mean 1.3, sd 0.8485, t = 3.426 with 4 df, between
    # t(0.975, 4) = 2.776 and t(0.9875, 4) = 3.495: 0.025 < p < 0.05. avg+max - avg has mean 0,
    # so p = 1; Holm doubles max's p, past 0.05.
    result = stored_shape({
        "avg": BASE,
        "max": [b + d for b, d in zip(BASE, [1.0, 2.0, 1.0, 0.2, 2.3], strict=True)],
        "avg+max": [b + d for b, d in zip(BASE, [0.5, -0.5, 1.0, -1.0, 0.0], strict=True)],
    })  # fmt: skip
    rows = {row.variant: row for row in summarize(result)}
    assert rows["avg"].adjusted_p is None and rows["avg"].verdict == "reference"
    raw = rows["max"].difference.p_value
    assert 0.025 < raw < 0.05 and rows["max"].difference.excludes_zero
    assert rows["avg+max"].difference.p_value == pytest.approx(1.0)
    assert rows["max"].adjusted_p == pytest.approx(2 * raw)
    assert rows["avg+max"].adjusted_p == pytest.approx(1.0)
    assert rows["max"].verdict == "no difference shown"
    assert rows["avg+max"].verdict == "no difference shown"

    # max - avg = [1, 2, 1.5, 0.5, 2.5]: mean 1.5, sd 0.7906, t = 4.243, between t(0.99, 4) =
    # 3.747 and t(0.995, 4) = 4.604: 0.01 < p < 0.02, so 2p < 0.05 still.
    result["runs"] = [r for r in result["runs"] if r["variant"] != "max"] + [
        {"variant": "max", "seed": s, "final_val_acc": (b + d) / 100, "val_acc": [0.5],
         "train_loss": [1.0]}
        for s, (b, d) in enumerate(zip(BASE, [1.0, 2.0, 1.5, 0.5, 2.5], strict=True))
    ]  # fmt: skip
    rows = {row.variant: row for row in summarize(result)}
    raw = rows["max"].difference.p_value
    assert 0.01 < raw < 0.02
    assert rows["max"].adjusted_p == pytest.approx(2 * raw)
    assert rows["max"].verdict == "better than the reference"


def test_a_family_of_one_comparison_is_read_with_its_raw_p():
    result = stored_shape(
        {"avg": BASE, "max": [b - d for b, d in zip(BASE, [1.0, 2.0, 1.0, 0.2, 2.3], strict=True)]}
    )
    rows = {row.variant: row for row in summarize(result)}
    assert rows["max"].adjusted_p == rows["max"].difference.p_value
    assert rows["max"].verdict == "worse than the reference"


def test_the_table_has_the_holm_column():
    from cbam.experiments.stats import format_table

    result = stored_shape({
        "avg": BASE,
        "max": [b + d for b, d in zip(BASE, [1.0, 2.0, 1.0, 0.2, 2.3], strict=True)],
        "avg+max": [b + d for b, d in zip(BASE, [0.5, -0.5, 1.0, -1.0, 0.0], strict=True)],
    })  # fmt: skip
    rows = summarize(result)
    lines = format_table(rows).splitlines()
    assert "p (Holm)" in lines[0]
    column = lines[0].index("p (Holm)") + len("p (Holm)")
    by_variant = {line.split()[0]: line for line in lines[1:]}
    raw = next(r for r in rows if r.variant == "max").difference.p_value
    assert by_variant["max"][:column].endswith(f"{2 * raw:.3f}")
    assert by_variant["avg+max"][:column].endswith("1.000")
    assert by_variant["avg"][:column].endswith("-")
    assert by_variant["max"].endswith("no difference shown")


# ---------------------------------------------------------------------------------------------
# Planning: seeds needed, and whether pairing pays


def test_seeds_needed_by_the_normal_approximation():
    from cbam.experiments.design import seeds_needed

    # z(0.975) = 1.95996, z(0.8) = 0.84162: (2.80158 * 1.66 / 0.5)^2 = 86.51 -> 87.
    assert seeds_needed(0.5, 1.66) == 87
    assert seeds_needed(-0.5, 1.66) == 87
    # (2.80158 * 1.66 / 2)^2 = 5.41 -> 6; a large difference still needs two seeds for an sd.
    assert seeds_needed(2.0, 1.66) == 6
    assert seeds_needed(10.0, 1.0) == 2
    # alpha = 0.01, power = 0.9: z(0.995) = 2.5758, z(0.9) = 1.2816 -> (3.8574 * 2)^2 = 59.52.
    assert seeds_needed(1.0, 2.0, alpha=0.01, power=0.9) == 60


def test_exact_seeds_needed_use_t_quantiles():
    from cbam.experiments.design import seeds_needed
    from cbam.experiments.student_t import t_quantile

    for d, sd in ((0.5, 1.66), (2.0, 1.66), (1.0, 2.0), (1.5, 0.9)):
        normal, exact = seeds_needed(d, sd), seeds_needed(d, sd, exact=True)
        assert exact >= normal

        def enough(n, d=d, sd=sd):
            return ((t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * sd / d) ** 2 <= n

        assert enough(exact) and not enough(exact - 1), (d, sd, exact)
    # Cohen's d_z = 0.5 / 1.66 = 0.30: a paired t-test at 80 % power takes about 89-90 pairs.
    assert 87 <= seeds_needed(0.5, 1.66, exact=True) <= 90


@pytest.mark.parametrize("kwargs, named", [
    ({"difference": 0, "sd": 1.66}, "difference"),
    ({"difference": "0.5", "sd": 1.66}, "difference"),
    ({"difference": True, "sd": 1.66}, "difference"),
    ({"difference": 0.5, "sd": -1.0}, "sd"),
    ({"difference": 0.5, "sd": True}, "sd"),
    ({"difference": 0.5, "sd": 1.66, "alpha": 1.0}, "alpha"),
    ({"difference": 0.5, "sd": 1.66, "power": 0}, "power"),
])  # fmt: skip
def test_seeds_needed_names_bad_input(kwargs, named):
    from cbam.experiments.design import seeds_needed

    kwargs = dict(kwargs)
    difference, sd = kwargs.pop("difference"), kwargs.pop("sd")
    with pytest.raises(ValueError, match=named):
        seeds_needed(difference, sd, **kwargs)


def test_width_ratio():
    from cbam.experiments.design import width_ratio

    # t(0.975, 9) = 2.262 and t(0.975, 18) = 2.101 (table): uncorrelated, pairing widens by 7.7 %.
    assert width_ratio(0.0, 10) == pytest.approx(2.262 / 2.101, abs=1e-3)
    assert width_ratio(0.75, 10) == pytest.approx(2.262 / 2.101 * 0.5, abs=1e-3)
    assert width_ratio(1.0, 10) == 0.0
    ratios = [width_ratio(rho, 10) for rho in (-0.5, 0.0, 0.3, 0.6, 0.9)]
    assert ratios == sorted(ratios, reverse=True)
    for bad, named in ((1.5, "rho"), (True, "rho")):
        with pytest.raises(ValueError, match=named):
            width_ratio(bad, 10)
    for bad in (1, 2.0, True):
        with pytest.raises(ValueError, match="n must be"):
            width_ratio(0.5, bad)


def test_pairing_breaks_even_where_the_ratio_is_one():
    from cbam.experiments.design import break_even_correlation, width_ratio

    # 1 - (2.101 / 2.262)^2 = 0.137 with the table's quantiles.
    assert break_even_correlation(10) == pytest.approx(1 - (2.101 / 2.262) ** 2, abs=1e-3)
    # Two seeds: t(0.975, 1) = 12.706, t(0.975, 2) = 4.303 -> 1 - (4.303 / 12.706)^2 = 0.885.
    assert break_even_correlation(2) == pytest.approx(0.885, abs=1e-3)
    for n in (2, 3, 5, 10, 30):
        rho = break_even_correlation(n)
        assert width_ratio(rho, n) == pytest.approx(1.0, abs=1e-12)
        assert width_ratio(rho + 0.01, n) < 1 < width_ratio(rho - 0.01, n)
    evens = [break_even_correlation(n) for n in (2, 3, 5, 10, 30, 100)]
    assert evens == sorted(evens, reverse=True) and 0 < evens[-1] < 0.05
    with pytest.raises(ValueError, match="n must be"):
        break_even_correlation(1)


# ---------------------------------------------------------------------------------------------
# Runs shared between experiments: copied only from the same machine, mode and settings


def _run(variant: str, seed: int, accuracy: float) -> dict:
    return {"variant": variant, "seed": seed, "val_acc": [0.5, accuracy], "train_loss": [1.0, 0.5],
            "final_val_acc": accuracy, "seconds": 2.5}  # fmt: skip


def _attention_file(settings, mode: str = "quick", commit: str = "abc123") -> dict:
    """A stored result of the attention experiment, as ``store.load`` returns it."""
    return {
        "experiment": "attention", "mode": mode, "settings": store.normalise(settings.as_dict()),
        "provenance": {"commit": commit, "device": "cpu"},
        "runs": [_run("baseline", 0, 0.61), _run("cbam", 0, 0.64), _run("baseline", 1, 0.60),
                 _run("cbam", 1, 0.66), _run("se", 1, 0.62)],
    }  # fmt: skip


@pytest.fixture
def attention_file(monkeypatch):
    """``store.load("attention")`` gives a small fake file; ``store.same_machine`` says yes
    unless a test sets ``machine["same"]``; every look-up is noted."""
    controls = experiments.get_experiment("controls")
    state = {"file": _attention_file(controls.settings("quick")), "same": True, "loaded": [],
             "asked": []}  # fmt: skip
    load = store.load

    def fake_load(name):
        if str(name).endswith(".json"):
            return load(name)
        state["loaded"].append(name)
        if state["file"] is None:
            raise FileNotFoundError(name)
        return json.loads(json.dumps(state["file"]))

    def fake_same_machine(result):
        state["asked"].append(result["experiment"])
        return state["same"]

    monkeypatch.setattr(store, "load", fake_load)
    monkeypatch.setattr(store, "same_machine", fake_same_machine)
    return state


def test_shared_runs_are_copied_from_the_same_machine_mode_and_settings(attention_file):
    controls = experiments.get_experiment("controls")
    settings = controls.settings("quick")
    todo = [("baseline", 0), ("max-head", 0), ("cbam", 0), ("spatial", 0), ("cbam", 2)]
    copies = runner._shared_runs(controls, "quick", settings, todo)
    # max-head and spatial are not shared; the file has no seed 2.
    assert set(copies) == {("baseline", 0), ("cbam", 0)}
    variant, copied_from, record = copies["cbam", 0]
    assert variant == "cbam"
    assert copied_from == {"experiment": "attention", "variant": "cbam", "commit": "abc123"}
    assert record == _run("cbam", 0, 0.64)
    assert set(attention_file["loaded"]) == {"attention"}
    assert attention_file["asked"] and set(attention_file["asked"]) == {"attention"}


def test_a_shared_run_takes_the_name_it_has_here(attention_file):
    experiment = experiments.Experiment(
        "renamed", "q", {"plain": lambda r: None, "with-cbam": lambda r: None}, {},
        shared={"plain": ("attention", "baseline"), "with-cbam": ("attention", "cbam")},
    )  # fmt: skip
    settings = experiments.get_experiment("controls").settings("quick")
    copies = runner._shared_runs(experiment, "quick", settings, [("plain", 1), ("with-cbam", 1)])
    assert copies["plain", 1][2] == _run("baseline", 1, 0.60) | {"variant": "plain"}
    assert copies["with-cbam", 1][2]["variant"] == "with-cbam"
    assert copies["with-cbam", 1][2]["final_val_acc"] == 0.66
    assert copies["plain", 1][1]["variant"] == "baseline"


def test_nothing_is_copied_from_another_machine_mode_or_settings_or_no_file(attention_file):
    controls = experiments.get_experiment("controls")
    settings = controls.settings("quick")
    todo = [("baseline", 0), ("cbam", 1)]
    assert len(runner._shared_runs(controls, "quick", settings, todo)) == 2

    attention_file["same"] = False
    assert runner._shared_runs(controls, "quick", settings, todo) == {}
    attention_file["same"] = True

    attention_file["file"] = _attention_file(settings, mode="full")
    assert runner._shared_runs(controls, "quick", settings, todo) == {}

    other = dataclasses.replace(settings, epochs=settings.epochs + 1)
    attention_file["file"] = _attention_file(other)
    assert runner._shared_runs(controls, "quick", settings, todo) == {}

    attention_file["file"] = None
    assert runner._shared_runs(controls, "quick", settings, todo) == {}


def _controls_file(settings, seeds, copied: dict) -> dict:
    variants = experiments.get_experiment("controls").variants
    return {
        "experiment": "controls", "mode": "quick", "settings": settings.as_dict(),
        "provenance": {"commit": "old", "seconds": 10.0, "copied": copied},
        "runs": [_run(v, s, 0.6) for s in seeds for v in variants],
    }  # fmt: skip


def test_a_resumed_run_keeps_what_was_copied(attention_file, tmp_path):
    settings = experiments.get_experiment("controls").settings("quick")
    earlier = {"baseline": {"experiment": "attention", "variant": "baseline", "commit": "old"}}
    out = tmp_path / "controls.json"
    store.save(_controls_file(settings, [0], earlier), out)

    # Nothing left to run: the provenance is signed anew, what was copied stays said.
    result = experiments.run_experiment("controls", seeds=[0], out=out, progress=False)
    assert result["provenance"]["copied"] == earlier
    assert result["provenance"]["seconds"] == 10.0

    # Seed 1 of cbam is copied now (the fake file holds it); baseline's earlier copy stays.
    result = experiments.run_experiment(
        "controls", variants=["cbam"], seeds=[0, 1], out=out, progress=False
    )
    copied = {"experiment": "attention", "variant": "cbam", "commit": "abc123"}
    assert result["provenance"]["copied"] == earlier | {"cbam": copied}
    assert store.load(out)["provenance"]["copied"] == earlier | {"cbam": copied}
    assert [r for r in result["runs"] if r["seed"] == 1] == [_run("cbam", 1, 0.66)]
    assert result["provenance"]["seconds"] == 12.5
