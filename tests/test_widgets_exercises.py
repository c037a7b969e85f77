"""Widget builders react to their controls; exercise checks explain mistakes and accept the solutions."""

import numpy as np
import pytest
import torch

from coda_edu import exercises
from coda_edu.viz import widgets
from coda_edu.viz.figures import figure_png


def changes(explorer, control, value, key):
    before_png, before = figure_png(explorer.figure), explorer.data[key]
    explorer.controls[control].value = value
    assert explorer.redraws == 1
    after_png, after = figure_png(explorer.figure), explorer.data[key]
    assert before_png != after_png
    return before, after


def test_imbalance_explorer_updates_shares():
    explorer = widgets.imbalance_explorer(seed=0, patients=4, slices=4)
    before, after = changes(explorer, "imbalance", 0.9, "shares")
    assert after["background"] > before["background"]


def test_simplex_explorer_alpha_zero_is_identity():
    from coda_edu.viz.simplex import toy_predictions

    probs, truth = toy_predictions(120, seed=1)
    pi_l = np.bincount(truth, minlength=3) / len(truth)
    explorer = widgets.simplex_explorer(probs, pi_l, ["bg", "organ", "lesion"])
    aligned_full = explorer.data["aligned"]
    explorer.controls["alpha"].value = 0.0
    assert np.allclose(explorer.data["aligned"], probs, atol=1e-6)
    assert not np.allclose(aligned_full, probs)


def test_alignment_explorer_momentum_and_alpha():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(16, 3, 8, 8, generator=g) + torch.tensor([2.0, 0, 0]).view(1, 3, 1, 1), 1)
    marginals = torch.stack([probs[i:i + 4].mean((0, 2, 3)) for i in range(0, 16, 4)])
    targets = {"predictions": probs.mean((0, 2, 3)), "labels": torch.tensor([0.6, 0.25, 0.15])}
    explorer = widgets.alignment_explorer(marginals, probs, targets, ["bg", "a", "b"], truth=probs.argmax(1))
    before, after = changes(explorer, "momentum", 0.0, "pi_u")
    assert torch.allclose(torch.as_tensor(after), marginals[-1], atol=1e-6)  # momentum 0: the last batch
    explorer.controls["target"].value = "labels"
    assert explorer.data["after"][0] < explorer.data["before"][0]  # towards the less background-heavy target
    assert explorer.data["accuracy_before"] == 1.0
    explorer.controls["alpha"].value = 0.0
    assert np.allclose(explorer.data["after"], explorer.data["before"])


def test_mask_explorer_filters_differ():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 3, 16, 16, generator=g) * 2, 1)
    truth = probs.argmax(1)
    images = np.random.default_rng(0).random((3, 16, 16))
    explorer = widgets.mask_explorer(images, probs, truth, ["bg", "a", "b"])
    kept_oe = explorer.data["kept"]
    explorer.controls["filter"].value = "none"
    assert explorer.data["kept"] == 1.0 and kept_oe < 1.0
    explorer.controls["filter"].value = "fixed"
    kept_fixed = explorer.data["kept"]
    explorer.controls["threshold"].value = 0.6
    assert explorer.data["kept"] > kept_fixed
    explorer.controls["index"].value = 2
    assert explorer.redraws == 4


@pytest.mark.parametrize("name", list(exercises.CHECKS))
def test_solutions_pass_and_stubs_do_not(name, capsys):
    assert exercises.check(name, exercises.solution(name)) is True

    def stub(*args):
        raise NotImplementedError

    assert exercises.check(name, stub) is False
    assert "not done yet" in capsys.readouterr().out


def test_checks_explain_typical_mistakes(capsys):
    def counts(labels, k):
        return torch.bincount(labels.reshape(-1), minlength=k).float()

    assert not exercises.check("class_shares", counts)
    assert "pixel counts" in capsys.readouterr().out

    def unnormalised(probs, pi_l, pi_u, alpha):
        return probs * ((pi_l / pi_u) ** alpha).view(1, -1, 1, 1)

    assert not exercises.check("alignment", unnormalised)
    assert "divide by the sum over classes" in capsys.readouterr().out

    def inverted(probs, pi_l, pi_u, alpha):
        return exercises.solution("alignment")(probs, pi_u, pi_l, alpha)

    assert not exercises.check("alignment", inverted)
    assert "upside down" in capsys.readouterr().out

    def strict(conf, labels, k):
        from coda_edu.method import class_expectations

        return conf > class_expectations(conf, labels, k)[labels]

    assert not exercises.check("over_expectation_mask", strict)
    assert "use >=" in capsys.readouterr().out

    def population(values):
        return float(np.mean(values)), float(np.std(values))

    assert not exercises.check("mean_std", population)
    assert "ddof" in capsys.readouterr().out

    def crashes(*args):
        raise ValueError("boom")

    assert not exercises.check("mean_dice", crashes)
    assert "raised ValueError: boom" in capsys.readouterr().out
