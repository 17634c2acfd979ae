import pytest

from pipeline.report.complexity import complexity, layer_table


def test_lenet_first_layer_known_answer():
    first = layer_table("lenet5")[0]
    # conv 5x5, 1 -> 16 channels on 32x32: 28x28x16 outputs of 25 multiply-adds each
    assert first["type"] == "Conv2d" and first["output"] == [16, 28, 28]
    assert first["parameters"] == 16 * 25 + 16
    assert first["multiply_adds"] == 28 * 28 * 16 * 25
    assert first["activation_bytes"] == 28 * 28 * 16 * 4


@pytest.mark.parametrize("name", ["lenet5", "vgg", "googlenet", "proposal"])
def test_totals_and_single_output(name):
    table = complexity([name])["architectures"][name]
    assert table["layers"][-1]["output"] == [1, 1, 1]
    assert table["total_multiply_adds"] == sum(r["multiply_adds"] for r in table["layers"])
    assert table["inference_parameters"] <= table["total_parameters"]


def test_googlenet_aux_classifier_is_training_only():
    table = complexity(["googlenet"])["architectures"]["googlenet"]
    assert not any(r["layer"].startswith("body.aux") for r in table["layers"])
    assert table["inference_parameters"] < table["total_parameters"]
