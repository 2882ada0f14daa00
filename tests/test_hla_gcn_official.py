"""HLA-GCN's ``variant = "official"``: the forward pass of the authors' released Jittor code
(``shedy-pub/hlagcn-jittor``, ``utils_jittor/hlagcn_layer.py`` and ``model.py``), pinned on cases small
enough to compute by hand, plus the parameter counts the released model has with ResNet-50."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aesthete.models import get_model
from aesthete.models.hla_gcn import (
    OfficialBlock,
    OfficialSecondModule,
    official_spatial_relation,
    spatial_relation,
)

# Counted by hand from the released code (model.py:185-189, hlagcn_layer.py:19-31, 112-124) with
# torchvision's ResNet-50 trunk (23,508,032 without its FC layer):
#   conv1x1 2048*1024 = 2,097,152; each 1st-module block 3 * 1024^2 = 3,145,728;
#   2nd module conv_state 1024^2 + 1024, conv_proj 1024*25 + 25, gcn 3 * 1024^2, conv_extend 1024^2,
#   BatchNorm 2 * 1024 = 5,271,577; heads 2 * (1024 * S + S).
TRUNK = 23_508_032
SECOND_MODULE = 1024 * 1024 + 1024 + 1024 * 25 + 25 + 3 * 1024 * 1024 + 1024 * 1024 + 2 * 1024


def heads(bins: int) -> int:
    return 2 * (1024 * bins + bins)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, 40_334_445),  # the released default, gcnlayer = 3 (parameter.py:27)
        ({"blocks": 1}, 34_042_989),  # resnet50hlagcn's own default gcn_num = 1 (model.py)
        ({"bins": 5}, TRUNK + 2_097_152 + 3 * 3_145_728 + SECOND_MODULE + heads(5)),  # AADB
        ({"variant": "paper"}, 38_235_245),  # the paper's text: Table 4's 38.2M
    ],
)
def test_parameter_counts(config: dict, expected: int) -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = get_model("hla-gcn", **config)
    assert model.num_parameters() == expected
    if not config:
        assert expected == TRUNK + 2_097_152 + 3 * 3_145_728 + SECOND_MODULE + heads(10)


def test_official_is_the_default_and_is_recorded_in_the_config() -> None:
    with torch.device("meta"):
        model = get_model("hla-gcn")
    assert model.config["variant"] == "official"
    assert {name for name, _ in model.named_children()} >= {"conv1x1", "lagcn1", "lagcn2", "aesfc1", "aesfc2"}
    assert model.conv1x1.bias is None


def test_bad_variant_and_static_projection_are_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        get_model("hla-gcn", variant="jittor")
    with pytest.raises(ValueError, match="paper variant"):
        get_model("hla-gcn", backbone="resnet18", channels=8, projection="static")


def test_spatial_kernel_on_a_1x3_grid_gives_the_middle_node_only_itself() -> None:
    # Distances along one row, r = 1: node 0 -> [0, 1, 2], row max 2 -> closeness [2, 1, 0] / 3;
    # node 1 -> [1, 0, 1], max 1 -> [0, 1, 0]: the kernel gives its farthest neighbours exactly 0.
    adjacency = official_spatial_relation(torch.tensor([1.0]), 1, 3)[0]
    expected = torch.tensor([[2 / 3, 1 / 3, 0.0], [0.0, 1.0, 0.0], [0.0, 1 / 3, 2 / 3]])
    torch.testing.assert_close(adjacency, expected)


def test_spatial_kernel_on_a_2x2_grid_scales_the_row_offset_by_r() -> None:
    # Nodes row-major: (0,0), (0,1), (1,0), (1,1). From node 0 with r = w/h = 2:
    # a = sqrt(d_row^2 * 4 + d_col^2) = [0, 1, 2, sqrt(5)]; closeness sqrt(5) - a; row sum 3 sqrt(5) - 3.
    s5 = math.sqrt(5.0)
    adjacency = official_spatial_relation(torch.tensor([2.0, 1.0]), 2, 2)
    torch.testing.assert_close(adjacency[0, 0], torch.tensor([s5, s5 - 1, s5 - 2, 0.0]) / (3 * s5 - 3))
    # r = 1: a = [0, 1, 1, sqrt(2)], closeness sqrt(2) - a, row sum 3 sqrt(2) - 2.
    s2 = math.sqrt(2.0)
    torch.testing.assert_close(adjacency[1, 0], torch.tensor([s2, s2 - 1, s2 - 1, 0.0]) / (3 * s2 - 2))
    torch.testing.assert_close(adjacency.sum(dim=-1), torch.ones(2, 4))
    # The paper's Eq. 4 kernel is a different graph: row-softmax of minus the distance.
    assert not torch.allclose(spatial_relation(torch.tensor([2.0]), 2, 2)[0], adjacency[0])


def _identity_block(content: bool, spatial: bool) -> OfficialBlock:
    block = OfficialBlock(2, content=content, spatial=spatial)
    with torch.no_grad():
        for layer in (block.W, *((block.trans_1, block.trans_2) if content else ())):
            layer.weight.copy_(torch.eye(2))
    return block


def test_block_content_similarity_is_a_raw_dot_product_plus_the_node_itself() -> None:
    # x = [[1, 0], [0, 2]], trans = W = I: x x^T = [[1, 0], [0, 4]], row-softmaxed (no cosine: a cosine
    # would give [[1, 0], [0, 1]] and the same row twice). Output W(A x + x).
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    e = math.e
    a = torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (1 + e**4), e**4 / (1 + e**4)]])
    expected = a @ x[0] + x[0]
    out = _identity_block(content=True, spatial=False)(x, None)
    torch.testing.assert_close(out[0], expected)


def test_block_halves_content_plus_spatial_so_rows_sum_to_two_with_the_residual() -> None:
    # Zero trans weights: content similarity is uniform, [[.5, .5], [.5, .5]]; spatial = I.
    # A = (U + I) / 2 = [[.75, .25], [.25, .75]]; A x + x = [[1.75, .5], [.25, 3.5]] for x = [[1, 0], [0, 2]].
    block = _identity_block(content=True, spatial=True)
    with torch.no_grad():
        block.trans_1.weight.zero_()
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    out = block(x, torch.eye(2).unsqueeze(0))
    torch.testing.assert_close(out[0], torch.tensor([[1.75, 0.5], [0.25, 3.5]]))


def test_second_module_on_one_channel_one_latent_node_by_hand() -> None:
    # C = 1, K = 1, two spatial nodes x = [1, 2]. conv_state: 1*x + 0 = [1, 2]; conv_proj: 1*x + 1 = [2, 3]
    # (bias kept, no softmax); Z = 1*2 + 2*3 = 8; one node: softmax = 1, W = 0.5 -> 0.5 * (8 + 8) = 8;
    # back = 8 * [2, 3] = [16, 24]; conv_extend 0.25 -> [4, 6]; BatchNorm (eval: mean 0, var 1,
    # eps 1e-4) -> [4, 6] / sqrt(1.0001). No residual: with one, the result would be near [5, 8].
    module = OfficialSecondModule(1, 1, 1).eval()
    with torch.no_grad():
        module.conv_state.weight.fill_(1.0)
        module.conv_state.bias.fill_(0.0)
        module.conv_proj.weight.fill_(1.0)
        module.conv_proj.bias.fill_(1.0)
        module.gcns[0].W.weight.fill_(0.5)
        module.conv_extend.weight.fill_(0.25)
    assert module.conv_extend.bias is None and module.blocker.eps == 1e-4
    out = module(torch.tensor([[[[1.0, 2.0]]]]))
    torch.testing.assert_close(out.flatten(), torch.tensor([4.0, 6.0]) / math.sqrt(1.0001))


def test_official_forward_averages_the_two_heads_softmax() -> None:
    torch.manual_seed(0)
    model = get_model("hla-gcn", backbone="resnet18", input_size=64, channels=16).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), torch.tensor([1.5, 0.75]))
    expected = (out["logits_coordinate"].softmax(-1) + out["logits_latent"].softmax(-1)) / 2
    torch.testing.assert_close(out["probs"], expected)
    # Released init: every 1x1 convolution Kaiming-normal fan-out, the BatchNorm at weight 1, bias 0.
    assert isinstance(model.lagcn2.blocker, nn.BatchNorm2d)
    assert torch.equal(model.lagcn2.blocker.weight, torch.ones(16))


def test_official_ablations_build_and_run() -> None:
    torch.manual_seed(0)
    images = torch.randn(1, 3, 64, 64)
    for config in ({"hierarchical": False}, {"content": False}, {"spatial": False}, {"blocks": 1}):
        model = get_model("hla-gcn", backbone="resnet18", input_size=64, channels=8, **config).eval()
        with torch.no_grad():
            probs = model(images, torch.tensor([1.0]))["probs"]
        torch.testing.assert_close(probs.sum(-1), torch.ones(1))
        assert ("logits_latent" in model(images)) == config.get("hierarchical", True)


def test_official_recipes_carry_the_released_scripts_values_each_with_its_source() -> None:
    from aesthete.training.recipes import list_recipes, recipes_dir, resolve

    recipes = {name: resolve(recipe) for name, recipe in list_recipes().items()}
    for name, bins, batch, threshold, min_ratings in (
        ("hla-gcn-r50-ava-official", 10, 100, 5.0, 2),
        ("hla-gcn-r50-aadb-official", 5, 16, 2.5, 1),
    ):
        r = recipes[name]
        assert r["model_config"]["variant"] == "official" and r["model_config"]["bins"] == bins
        assert (r["optim"]["name"], r["optim"]["lr"], r["optim"]["momentum"]) == ("sgd", 0.01, 0.9)
        assert (r["optim"]["nesterov"], r["optim"]["weight_decay"]) == (True, 1e-4)
        assert (r["schedule"]["kind"], r["schedule"]["unit"], r["schedule"]["milestones"]) == (
            "multistep",
            "epoch",
            [8],
        )
        assert (r["train"]["epochs"], r["train"]["batch_size"], r["train"]["amp"], r["train"]["sync_bn"]) == (
            20,
            batch,
            "none",
            True,
        )
        assert round(300 * r["augment"]["scale"]) == 320  # warp to 320, random crop 300
        assert (r["eval"]["threshold"], r["data"]["min_ratings"]) == (threshold, min_ratings)
        # Every value outside the paper's own table carries a comment naming where it comes from.
        text = (recipes_dir() / f"{name}.toml").read_text(encoding="utf-8").split("\n[paper]")[0]
        for line in text.splitlines():
            if "=" in line and not line.startswith(("#", "[")) and line.split("=")[0].strip() != "description":
                assert "  # " in line or line.split("=")[0].strip() in (
                    "model",
                    "dataset",
                    "kind",
                    "unit",
                    "threshold",
                    "rule",
                ), line


def test_models_json_lists_each_variants_parameter_count() -> None:
    import json

    from typer.testing import CliRunner

    from aesthete.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.stdout)["models"] if r["name"] == "hla-gcn")
    assert row["variant"] == "official" and row["parameters"] == 40_334_445
    assert row["variants"] == {"official": 40_334_445, "paper": 38_235_245}
